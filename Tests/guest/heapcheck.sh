# SPDX-License-Identifier: GPL-2.0-only
# vm-timeout: 900
# heapcheck: every seeded bug class of kdbt_heapbugs.ko found with the right class,
# size, offset, function and source line; a correct use and the kernel-heavy
# workload produce no report; detach and re-attach stay clean.
. /test/files/lib.sh
trigger() { echo "$1" > /sys/module/kdbt_heapbugs/parameters/trigger; }

expect_status 0 "insmod kdbt.ko" -- insmod "$KDBT_KMOD"
expect_status 0 "insmod kdbt_heapbugs.ko" -- insmod /kdbt/kdbt_heapbugs.ko
# Natively the read and write bugs go unnoticed and do no harm; the bad frees
# are refused, as nothing would keep them from the allocator.
for t in uaf-read uaf-write oob-right-read oob-right-write oob-left-read cache-uaf memset-oob memcpy-uaf correct; do
	expect_status 0 "native: $t runs" -- trigger $t
done
expect_status 1 "native: double-free refused" -- trigger double-free
expect_status 0 "kdbt report before any heapcheck: nothing to report" -- sh -c 'kdbt report; test $? -eq 2'

expect_status 0 "kdbt attach --tool heapcheck" -- kdbt attach --tool heapcheck
expect_output "tools: heapcheck" "  ... with heapcheck"
expect_status 0 "correct use" -- trigger correct
expect_status 0 "kdbt report: correct use is not reported" -- kdbt report --format json
cp /tmp/out /tmp/after-correct.json
expect_status 0 "  ... no finding" -- sh -c '! grep -q "\"kind\"" /tmp/after-correct.json'

for t in uaf-read uaf-write oob-right-read oob-right-write oob-left-read double-free invalid-free cache-uaf \
		memset-oob memcpy-uaf; do
	expect_status 0 "trigger $t" -- trigger $t
done
expect_status 0 "kdbt report" -- kdbt report
cp /tmp/out /tmp/report.txt
expect_status 0 "kdbt report --symbolize --modules /kdbt" -- kdbt report --symbolize --modules /kdbt
cp /tmp/out /tmp/symbolized.txt
expect_status 0 "kdbt report --format json" -- kdbt report --format json
cp /tmp/out /tmp/report.json
expect_status 0 "kdbt report --format sarif" -- kdbt report --format sarif
expect_status 1 "kdbt report --fail-on-findings exits 1" -- kdbt report --fail-on-findings

check "BUG: KDBT: use-after-free in uaf_read" "uaf-read: class and function" /tmp/report.txt
check "Read of size 4 at addr" "uaf-read: read of size 4" /tmp/report.txt
check "located 12 bytes inside of" "uaf-read: offset 12 inside" /tmp/report.txt
check "96-byte region" "uaf-read: 96-byte object" /tmp/report.txt
check "BUG: KDBT: use-after-free in uaf_write" "uaf-write: class and function" /tmp/report.txt
check "Write of size 8 at addr" "uaf-write: write of size 8" /tmp/report.txt
check "BUG: KDBT: slab-out-of-bounds in oob_right_read" "oob-right-read: class and function" /tmp/report.txt
check "0 bytes to the right of" "oob-right-read: just past the end" /tmp/report.txt
check "100-byte region" "oob-right-read: 100-byte object" /tmp/report.txt
check "BUG: KDBT: slab-out-of-bounds in oob_right_write" "oob-right-write: class and function" /tmp/report.txt
check "Write of size 2 at addr" "oob-right-write: write of size 2" /tmp/report.txt
check "4 bytes to the right of" "oob-right-write: 4 bytes past the end" /tmp/report.txt
check "BUG: KDBT: slab-out-of-bounds in oob_left_read" "oob-left-read: class and function" /tmp/report.txt
check "1 bytes to the left of" "oob-left-read: 1 byte before" /tmp/report.txt
check "BUG: KDBT: double-free in" "double-free: class" /tmp/report.txt
check "BUG: KDBT: invalid-free in" "invalid-free: class" /tmp/report.txt
check "BUG: KDBT: use-after-free in cache_uaf" "cache-uaf: class and function" /tmp/report.txt
check "cache kdbt_heapbugs_obj" "cache-uaf: the cache named" /tmp/report.txt
# Rep strings (the inline scan of their shadow, then the precise check).
check "BUG: KDBT: slab-out-of-bounds in memset" "memset-oob: class and function" /tmp/report.txt
check "Write of size 108 at addr" "memset-oob: the whole memset, 108 bytes" /tmp/report.txt
check "BUG: KDBT: use-after-free in memcpy" "memcpy-uaf: class and function" /tmp/report.txt
check "Read of size 512 at addr" "memcpy-uaf: read of 512 bytes" /tmp/report.txt
check "Allocated by task" "allocation stacks" /tmp/report.txt
check "Freed by task" "free stacks" /tmp/report.txt
# Every stack reaches the seeded function: the allocator's entry, then its caller.
for what in Allocated Freed; do
	expect_status 0 "$what by: each stack goes on into kdbt_heapbugs" -- \
		awk -v what="$what" '$0 ~ what " by task" { getline; getline; n++; if ($0 !~ /\[kdbt_heapbugs\]/) bad++ }
			END { exit !(n > 0 && bad == 0) }' /tmp/report.txt
done
check "kdbt_heapbugs.c:[0-9]+" "symbolized: file:line" /tmp/symbolized.txt
# Each bug's own source line: Tests/guest/heapcheck.check, on the host.
check '"kind"' "json: findings" /tmp/report.json

expect_status 0 "kernel-heavy workload under heapcheck" -- kdbt-guest-workload 10
expect_status 0 "stress-ng under heapcheck" -- stress-ng --fork 2 --pipe 2 --mmap 1 --mmap-bytes 4M --timeout 3s --metrics-brief
expect_status 0 "kdbt report --format json after the workload" -- kdbt report --format json
cp /tmp/out /tmp/after-workload.json
n_before=$(grep -c '"kind"' /tmp/report.json); n_after=$(grep -c '"kind"' /tmp/after-workload.json)
expect_status 0 "workload: no new finding ($n_before -> $n_after)" -- test "$n_before" -eq "$n_after"
expect_status 0 "kdbt detach" -- kdbt detach
expect_status 0 "kdbt report after detach keeps the findings" -- kdbt report
expect_output "use-after-free" "  ... still there"

expect_status 0 "re-attach with heapcheck" -- kdbt attach --tool heapcheck --quarantine 1048576 --redzone 32
expect_status 0 "workload again" -- kdbt-guest-workload 5
expect_status 0 "correct use again" -- trigger correct
expect_status 0 "kdbt report --format json: clean" -- kdbt report --format json
cp /tmp/out /tmp/reattach.json
expect_status 0 "  ... no finding after re-attach" -- sh -c '! grep -q "\"kind\"" /tmp/reattach.json'
expect_status 0 "kdbt detach" -- kdbt detach
expect_status 0 "rmmod kdbt_heapbugs" -- rmmod kdbt_heapbugs
expect_status 0 "rmmod kdbt" -- rmmod kdbt

# The chunked shadow (direct maps too big for the flat one) finds the same bugs.
expect_status 0 "insmod kdbt.ko heapcheck_flat_shadow=0" -- insmod "$KDBT_KMOD" heapcheck_flat_shadow=0
expect_status 0 "insmod kdbt_heapbugs.ko" -- insmod /kdbt/kdbt_heapbugs.ko
expect_status 0 "attach with the chunked shadow" -- kdbt attach --tool heapcheck
expect_status 0 "  ... the kernel log names it" -- sh -c 'dmesg | grep -q "heapcheck shadow: chunked"'
for t in correct uaf-read oob-right-write oob-left-read; do
	expect_status 0 "chunked: trigger $t" -- trigger $t
done
expect_status 0 "chunked: kdbt report" -- kdbt report
cp /tmp/out /tmp/chunked.txt
check "BUG: KDBT: use-after-free in uaf_read" "chunked: uaf-read" /tmp/chunked.txt
check "4 bytes to the right of" "chunked: oob-right-write" /tmp/chunked.txt
check "1 bytes to the left of" "chunked: oob-left-read" /tmp/chunked.txt
expect_status 0 "chunked: three findings, the correct use not among them" -- \
	sh -c '[ "$(grep -c "^BUG: KDBT:" /tmp/chunked.txt)" = 3 ]'
expect_status 0 "kdbt detach" -- kdbt detach
expect_status 0 "rmmod kdbt_heapbugs" -- rmmod kdbt_heapbugs
expect_status 0 "rmmod kdbt" -- rmmod kdbt
finish
