# SPDX-License-Identifier: GPL-2.0-only
# What `make demo` runs in the guest: what a new user would type.
set -e
show() { echo; echo "# $*"; "$@"; }

show insmod "$KDBT_KMOD"
show ls -l /dev/kdbt
show kdbt version
show kdbt status
show kdbt status --format json
show rmmod kdbt
dmesg | grep 'kdbt:'
