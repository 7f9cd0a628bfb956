# SPDX-License-Identifier: GPL-2.0-only
# What `make demo` runs in the guest: what a new user would type.
set -e
show() { echo; echo "# $*"; "$@"; }

show insmod "$KDBT_KMOD"
show ls -l /dev/kdbt
show kdbt version
show kdbt status
show kdbt selftest
show kdbt attach --tool inscount
show kdbt-guest-workload 20
show stress-ng --fork 2 --pipe 2 --timeout 3s --metrics-brief
show kdbt status
show kdbt report --top 15
show kdbt detach

# heapcheck: seeded heap bugs (Tests/HeapBugs) found in a kernel built without KASAN.
show insmod /kdbt/kdbt_heapbugs.ko
show kdbt tool enable heapcheck
for bug in uaf-read uaf-write oob-right-read oob-left-read double-free invalid-free cache-uaf; do
	show sh -c "echo $bug > /sys/module/kdbt_heapbugs/parameters/trigger"
done
show kdbt status
show kdbt report --symbolize --modules /kdbt
show sh -c 'kdbt report --format json | head -c 600; echo'
show sh -c 'kdbt report --format sarif | head -c 800; echo'
show sh -c 'kdbt report --fail-on-findings >/dev/null; echo "kdbt report --fail-on-findings: exit $?"'
show kdbt detach

# stackguard: a seeded deep recursion caught before the stack overflows; then
# heapcheck and inscount enabled on the running attach (the finding is kept).
show kdbt attach --tool stackguard
show sh -c 'echo deep-recursion > /sys/module/kdbt_heapbugs/parameters/trigger'
show kdbt tool enable heapcheck
show kdbt tool enable inscount
show kdbt tool list
show kdbt report --symbolize --modules /kdbt --top 5
show kdbt detach
show rmmod kdbt_heapbugs
show kdbt status
show rmmod kdbt
dmesg | grep 'kdbt:'
