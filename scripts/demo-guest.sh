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
show kdbt status
show rmmod kdbt
dmesg | grep 'kdbt:'
