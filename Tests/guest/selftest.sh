# SPDX-License-Identifier: GPL-2.0-only
# The Engine's translator on real kernel code, in the kernel: each built-in workload
# (recursion, lib/sort.c with a comparator, vsnprintf+crc32, a jump-table
# interpreter, kmalloc/kfree) runs natively and from the code cache with inscount,
# on each CPU, and the results must agree. Then the argument checks, and unload
# with nothing left allocated.
. /test/files/lib.sh

expect_status 0 "insmod kdbt.ko" -- insmod "$KDBT_KMOD"
expect_status 0 "kdbt version lists the selftest feature" -- kdbt version
expect_output "features: status,read-text,selftest" "  ... selftest"

for cpu in 0 1; do
	expect_status 0 "kdbt selftest on CPU $cpu" -- taskset -c $cpu kdbt selftest
	for w in recursion sort strings interpreter slab; do
		expect_output "^$w [0-9]+: ok on cpu $cpu: native (-?[0-9]+), translated \1, [1-9][0-9]* instructions" \
			"  ... $w: translated result equals native, instructions counted"
	done
done

# Bigger runs, and JSON.
expect_status 0 "kdbt selftest --workload sort --argument 4096 --format json" -- \
	kdbt selftest --workload sort --argument 4096 --format json
expect_output '^\{"workload":"sort","argument":4096,"passed":true,' "  ... JSON"
expect_status 0 "kdbt selftest --workload interpreter --argument 2000000" -- \
	kdbt selftest --workload interpreter --argument 2000000
expect_output "^interpreter 2000000: ok" "  ... ok"
# The count of the same deterministic run is the same every time.
kdbt selftest --workload recursion --argument 20 --format json >/tmp/a 2>&1
kdbt selftest --workload recursion --argument 20 --format json >/tmp/b 2>&1
expect_status 0 "recursion counts are identical run to run" -- \
	sh -c 'grep -o "\"instructions\":[0-9]*" /tmp/a >/tmp/ia && grep -o "\"instructions\":[0-9]*" /tmp/b >/tmp/ib && cmp /tmp/ia /tmp/ib && cat /tmp/ia'

expect_status 64 "unknown workload exits 64" -- kdbt selftest --workload nosuch
expect_status 64 "--argument 0 exits 64" -- kdbt selftest --workload sort --argument 0
expect_status 64 "--argument over the maximum exits 64" -- kdbt selftest --workload recursion --argument 25

expect_status 0 "rmmod kdbt" -- rmmod kdbt
dmesg | grep 'kdbt: unloaded' >/tmp/out || true
cat /tmp/out
expect_output "live allocations 0 \(0 bytes\)" "unload leaves zero live allocations"

finish
