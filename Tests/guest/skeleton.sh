# SPDX-License-Identifier: GPL-2.0-only
# Walking skeleton in the guest: load, version/status over the real device, every
# ioctl validation rule (kdbt-guest-client), unload with zero live allocations.
. /test/files/lib.sh

expect_status 2 "status without the module exits 2" -- kdbt status
expect_output "not loaded" "  ... and says the module is not loaded"
expect_output "insmod" "  ... and how to load it"

expect_status 0 "insmod kdbt.ko" -- insmod "$KDBT_KMOD"
expect_status 0 "/dev/kdbt exists, mode 0600" -- ls -l /dev/kdbt
expect_output "^crw-------" "  ... mode is crw-------"

expect_status 0 "kdbt version" -- kdbt version
expect_output "^module   0\.1\.0 \(protocol 1, build [0-9a-f]{16}, 2 CPUs" "  ... shows the module"
expect_status 0 "kdbt status" -- kdbt status
expect_output "state: +detached" "  ... detached"
expect_output "live allocations: +1 " "  ... one live arena"
expect_status 0 "kdbt status --format json" -- kdbt status --format json
expect_output '^\{"state":"detached","cpus":2,' "  ... JSON"
expect_status 64 "bad option exits 64" -- kdbt status --format yaml
expect_status 0 "kdbt --device /dev/kdbt version" -- kdbt --device /dev/kdbt version

expect_status 0 "ioctl validation (kdbt-guest-client)" -- kdbt-guest-client /dev/kdbt
expect_output "^[0-9]+ passed, 0 failed" "  ... every case passed"

expect_status 0 "rmmod kdbt" -- rmmod kdbt
dmesg | grep 'kdbt: unloaded' >/tmp/out || true
cat /tmp/out
expect_output "live allocations 0 \(0 bytes\)" "unload leaves zero live allocations"
expect_status 2 "status after unload exits 2" -- kdbt status

# Load and unload again: nothing left behind the first time.
expect_status 0 "second insmod" -- insmod "$KDBT_KMOD"
expect_status 0 "second status" -- kdbt status
expect_status 0 "second rmmod" -- rmmod kdbt

finish
