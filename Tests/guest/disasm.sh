# SPDX-License-Identifier: GPL-2.0-only
# vm-timeout: 600
# kdbt disasm on live kernel text. Prints each listing between markers; the host
# side (disasm.check) compares it with the same code decoded from the on-disk
# vmlinux, and names the bytes the kernel patched at boot.
. /test/files/lib.sh

expect_status 0 "insmod kdbt.ko" -- insmod "$KDBT_KMOD"
text=$(grep ' _text$' /proc/kallsyms | cut -d' ' -f1)
for f in schedule vfs_read do_sys_openat2 __x64_sys_getpid ksys_write; do
	line=$(grep " [tT] $f\$" /proc/kallsyms | head -n 1)
	address=${line%% *}
	# The function's size: up to the next symbol, as kdbt disasm reads it.
	expect_status 0 "kdbt disasm $f" -- kdbt disasm "$f" --format json
	size=$(grep -c '"address"' /tmp/out)
	echo "=== KDBT-DISASM-BEGIN $f 0x$address _text=0x$text"
	grep '"address"' /tmp/out
	echo "=== KDBT-DISASM-END $f"
	[ "$size" -gt 0 ] && ok "  ... $f has $size instructions" || not_ok "  ... $f listing is empty"
done
expect_status 2 "disasm of a data symbol is refused" -- kdbt disasm jiffies_64
expect_output "not kernel text|not text" "  ... with a clear message"
expect_status 0 "rmmod kdbt" -- rmmod kdbt
finish
