# SPDX-License-Identifier: GPL-2.0-only
# make bench, kernel part, in the guest: the microbenchmarks natively and attached
# with each tool of TOOLS (null, inscount, heapcheck, stackguard), alternating, in one boot;
# attach and detach latency. The host half (scripts/bench-kernel) turns this into
# ratios.
set -e
insmod "$KDBT_KMOD"
SCALE=${SCALE:-1}  # set by scripts/bench-kernel
ROUNDS=${ROUNDS:-2}
TOOLS=${TOOLS:-null inscount heapcheck stackguard}
r=0
while [ $r -lt $ROUNDS ]; do
	kdbt-guest-bench $SCALE | sed 's/^/BENCH native /'
	for tool in $TOOLS; do
		kdbt attach --tool $tool --format json | sed "s/^/ATTACH $tool /"
		kdbt-guest-bench $SCALE | sed "s/^/BENCH $tool /"
		kdbt detach --format json | sed "s/^/DETACH $tool /"
	done
	r=$((r + 1))
done
rmmod kdbt
