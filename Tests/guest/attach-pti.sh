# SPDX-License-Identifier: GPL-2.0-only
# vm-append: pti=on
# A kernel configuration kdbt does not support yet (page-table isolation on):
# attach refuses with exit status 2, names the reason and the workaround, and
# changes nothing.
. /test/files/lib.sh

dmesg >/tmp/dmesg.txt
expect_status 0 "page-table isolation is on in this boot" -- grep -q "Kernel/User page tables isolation: enabled" /tmp/dmesg.txt
expect_status 0 "insmod kdbt.ko" -- insmod "$KDBT_KMOD"
expect_status 2 "kdbt attach refuses" -- kdbt attach --tool inscount
expect_output "page-table isolation \(PTI\) is on" "  ... naming the reason"
expect_output "pti=off" "  ... and the workaround"
expect_status 0 "kdbt status" -- kdbt status
expect_output "state: +detached" "  ... still detached"
expect_status 0 "the kernel still works (workload)" -- kdbt-guest-workload 5
expect_status 0 "rmmod kdbt" -- rmmod kdbt
finish
