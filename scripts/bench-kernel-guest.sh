# SPDX-License-Identifier: GPL-2.0-only
# make bench, kernel part, in the guest: the microbenchmarks natively, attached with
# the null tool and attached with inscount, alternating, in one boot; attach and
# detach latency. The host half (scripts/bench-kernel) turns this into ratios.
set -e
insmod "$KDBT_KMOD"
SCALE=${SCALE:-1}  # set by scripts/bench-kernel
ROUNDS=${ROUNDS:-2}
r=0
while [ $r -lt $ROUNDS ]; do
	kdbt-guest-bench $SCALE | sed 's/^/BENCH native /'
	kdbt attach --tool null --format json | sed 's/^/ATTACH null /'
	kdbt-guest-bench $SCALE | sed 's/^/BENCH null /'
	kdbt detach --format json | sed 's/^/DETACH null /'
	kdbt attach --tool inscount --format json | sed 's/^/ATTACH inscount /'
	kdbt-guest-bench $SCALE | sed 's/^/BENCH inscount /'
	kdbt detach --format json | sed 's/^/DETACH inscount /'
	r=$((r + 1))
done
rmmod kdbt
