# SPDX-License-Identifier: GPL-2.0-only
# vm-timeout: 600
# 20 attach/detach cycles in one boot while stress-ng loads both CPUs; each cycle
# runs the workload attached. Afterwards the workload still matches its native run,
# and unloading the module while attached detaches and leaves nothing allocated.
. /test/files/lib.sh

expect_status 0 "insmod kdbt.ko" -- insmod "$KDBT_KMOD"
expect_status 0 "native run of the workload" -- kdbt-guest-workload 10
cp /tmp/out /tmp/native.txt

stress-ng --fork 1 --pipe 1 --timeout 900s >/dev/null 2>&1 &
load=$!
ok_cycles=0
i=0
while [ $i -lt 20 ]; do
	if kdbt attach --tool inscount >/tmp/cycle 2>&1 && kdbt-guest-workload 10 >/tmp/cycle-out 2>&1 \
		&& cmp -s /tmp/native.txt /tmp/cycle-out && kdbt detach >>/tmp/cycle 2>&1; then
		ok_cycles=$((ok_cycles + 1))
	else
		cat /tmp/cycle /tmp/cycle-out
	fi
	i=$((i + 1))
done
kill $load
wait $load 2>/dev/null
expect_status 0 "20 attach/detach cycles under load, workload = native in each ($ok_cycles ok)" -- test $ok_cycles -eq 20
expect_status 0 "kdbt status: detached" -- kdbt status
expect_output "state: +detached" "  ... detached"
expect_status 0 "workload after the cycles" -- kdbt-guest-workload 10
cp /tmp/out /tmp/after.txt
expect_status 0 "  ... = native" -- cmp /tmp/native.txt /tmp/after.txt

# Unloading the module while attached detaches first.
expect_status 0 "attach once more" -- kdbt attach --tool inscount
expect_status 0 "rmmod kdbt while attached" -- rmmod kdbt
dmesg | grep 'kdbt: unloaded' >/tmp/out || true
cat /tmp/out
expect_output "live allocations 0 \(0 bytes\)" "unload leaves zero live allocations"
expect_status 0 "the kernel runs on natively (workload)" -- kdbt-guest-workload 10
cp /tmp/out /tmp/after.txt
expect_status 0 "  ... = native" -- cmp /tmp/native.txt /tmp/after.txt
finish
