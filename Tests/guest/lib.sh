# SPDX-License-Identifier: GPL-2.0-only
# Helpers for guest test scripts (sourced; busybox sh). Each assertion prints one
# line; `finish` prints the tally and sets the exit status.
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok - $*"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $*"; }

# expect_status WANT DESCRIPTION -- COMMAND...: runs COMMAND, checks its exit status.
expect_status() {
	want=$1; what=$2; shift 3
	"$@" >/tmp/out 2>&1 && got=0 || got=$?
	sed 's/^/    | /' /tmp/out
	if [ "$got" = "$want" ]; then ok "$what"; else not_ok "$what (exit $got, want $want)"; fi
}

# expect_output PATTERN DESCRIPTION: the last command's output matches PATTERN (grep -E).
expect_output() {
	if grep -qE "$1" /tmp/out; then ok "$2"; else not_ok "$2 (no match for /$1/)"; fi
}

# check PATTERN DESCRIPTION FILE: FILE matches PATTERN (grep -E).
check() {
	if grep -qE "$1" "$3"; then ok "$2"; else not_ok "$2 (no /$1/ in $3)"; fi
}

finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
}
