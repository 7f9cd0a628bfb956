# SPDX-License-Identifier: GPL-2.0-only
# vm-timeout: 600
# Comprehensive kernel translation: kdbt attach runs every CPU's kernel from the
# code cache (syscalls, interrupts, exceptions, kernel threads), results equal a
# native run of the same workload in the same boot, interrupts delayed to native
# boundaries are all delivered, text patching and module load/unload while
# attached, 20 attach/detach cycles under load, and detach leaves nothing behind.
. /test/files/lib.sh

expect_status 0 "insmod kdbt.ko" -- insmod "$KDBT_KMOD"
expect_status 0 "native run of the workload" -- kdbt-guest-workload 30
cp /tmp/out /tmp/native.txt
expect_output "^efault 120$" "  ... bad user pointers give EFAULT natively"

irq_total() { awk 'NR > 1 { for (i = 2; i <= 3; i++) if ($i ~ /^[0-9]+$/) s += $i } END { print s }' /proc/interrupts; }
vda_irqs() { awk '/virtio1-req|virtio1-requests|vda|virtio1/ { for (i = 2; i <= 3; i++) s += $i } END { print s + 0 }' /proc/interrupts; }
timer_irqs() { awk '$1 == "LOC:" { print $2 + $3 }' /proc/interrupts; }

expect_status 0 "kdbt attach --tool inscount" -- kdbt attach --tool inscount
expect_output "^attached: 2 CPUs" "  ... both CPUs"
expect_status 0 "kdbt status (attached)" -- kdbt status
expect_output "state: +attached" "  ... says attached"

timer0=$(timer_irqs); vda0=$(vda_irqs)
# The same workload on both CPUs at once, under translation.
taskset -c 0 kdbt-guest-workload 30 >/tmp/w0.txt 2>&1 &
taskset -c 1 kdbt-guest-workload 30 >/tmp/w1.txt 2>&1
wait
expect_status 0 "workload on CPU 0 attached = native" -- cmp /tmp/native.txt /tmp/w0.txt
expect_status 0 "workload on CPU 1 attached = native" -- cmp /tmp/native.txt /tmp/w1.txt
# Device interrupts: read the virtio disk with direct I/O.
expect_status 0 "virtio-blk reads (direct I/O)" -- dd if=/dev/vda of=/dev/null bs=4096 count=512 iflag=direct
expect_status 0 "stress-ng fork, pipe, signal, mmap, dev classes, verified" -- \
	stress-ng --fork 2 --pipe 2 --sigq 1 --mmap 1 --mmap-bytes 8M --timeout 4s --verify --metrics-brief
timer1=$(timer_irqs); vda1=$(vda_irqs)
expect_status 0 "timer interrupts kept coming ($timer0 -> $timer1)" -- test "$timer1" -gt "$timer0"
expect_status 0 "virtio-blk interrupts arrived ($vda0 -> $vda1)" -- test "$vda1" -gt "$vda0"

expect_status 0 "kdbt status --format json" -- kdbt status --format json
cp /tmp/out /tmp/status.json
for cpu in 0 1; do
	entry=$(grep -o "{\"cpu\":$cpu,[^}]*}" /tmp/status.json)
	for field in syscalls user_interrupts kernel_interrupts user_exceptions instructions; do
		v=$(echo "$entry" | grep -o "\"$field\":[0-9]*" | cut -d: -f2)
		expect_status 0 "cpu $cpu: $field > 0 ($v)" -- test "${v:-0}" -gt 0
	done
	v=$(echo "$entry" | grep -o '"untranslated_faults":[0-9]*' | cut -d: -f2)
	expect_status 0 "cpu $cpu: no fault inside instrumentation ($v)" -- test "${v:-1}" -eq 0
done
expect_status 0 "interrupts were delayed to native boundaries" -- grep -qE '"delayed_interrupts":[1-9]' /tmp/status.json
# Every delayed interrupt was delivered (one may be on its way at the snapshot).
for cpu in 0 1; do
	entry=$(grep -o "{\"cpu\":$cpu,[^}]*}" /tmp/status.json)
	d=$(echo "$entry" | grep -o '"delayed_interrupts":[0-9]*' | cut -d: -f2)
	g=$(echo "$entry" | grep -o '"delayed_delivered":[0-9]*' | cut -d: -f2)
	expect_status 0 "cpu $cpu: delayed interrupts delivered ($g of $d)" -- test "$g" -ge $((d - 1))
done

expect_status 0 "kdbt report" -- kdbt report --top 10
expect_output "^inscount: [1-9][0-9]* kernel instructions" "  ... the total"
expect_output "^  cpu 1: [1-9]" "  ... per CPU"
expect_output "^ +[1-9][0-9]* +[0-9]+\.[0-9]%  [a-z_][a-z0-9_.]*" "  ... top functions, symbolized"
expect_status 0 "kdbt report --format json" -- kdbt report --format json
expect_output '"top_functions":\[\{"function":"[a-z_]' "  ... JSON"

# Text patching while attached: a tracepoint's static key flips (text_poke_bp),
# the translated scheduler takes the new path and the events show up.
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
if [ -w /sys/kernel/tracing/events/sched/sched_switch/enable ]; then
	echo 1 >/sys/kernel/tracing/events/sched/sched_switch/enable
	kdbt-guest-workload 3 >/dev/null
	echo 0 >/sys/kernel/tracing/events/sched/sched_switch/enable
	expect_status 0 "tracepoint enabled while attached records events" -- grep -c sched_switch /sys/kernel/tracing/trace
	expect_output "^[1-9]" "  ... some sched_switch events"
	expect_status 0 "translations were invalidated by the text change" -- sh -c 'kdbt status --format json | grep -qE "\"invalidations\":[1-9]"'
else
	echo "skip - tracefs not available in this guest"
fi

# Module unload and load while attached.
expect_status 0 "rmmod virtio_rng while attached" -- rmmod virtio_rng
expect_status 0 "modprobe virtio_rng while attached" -- modprobe virtio_rng
expect_status 0 "the reloaded driver works (hwrng read)" -- dd if=/dev/hwrng of=/dev/null bs=16 count=4
expect_status 0 "workload after module churn = native" -- kdbt-guest-workload 30
cp /tmp/out /tmp/after.txt
expect_status 0 "  ... same output" -- cmp /tmp/native.txt /tmp/after.txt

expect_status 0 "kdbt detach" -- kdbt detach
expect_output "^detached in .* ms, [1-9][0-9]* instructions counted" "  ... with inscount's total"
expect_status 2 "kdbt report when detached exits 2" -- kdbt report
expect_output "attach with .kdbt attach --tool inscount" "  ... and says what to do"
expect_status 0 "kdbt status --format json after detach" -- kdbt status --format json
expect_output '"state":"detached"' "  ... detached"

expect_status 0 "rmmod kdbt" -- rmmod kdbt
dmesg | grep 'kdbt: unloaded' >/tmp/out || true
cat /tmp/out
expect_output "live allocations 0 \(0 bytes\)" "unload leaves zero live allocations"
finish
