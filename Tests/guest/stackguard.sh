# SPDX-License-Identifier: GPL-2.0-only
# vm-timeout: 900
# stackguard: the seeded deep recursion of kdbt_heapbugs.ko caught before it
# overflows, naming the recursive function and its frame sizes; a workload that
# stays within bounds produces no finding; stackguard, heapcheck and inscount
# stacked on one attach all do their work, and `kdbt tool enable|disable` change
# the set while attached.
. /test/files/lib.sh
trigger() { echo "$1" > /sys/module/kdbt_heapbugs/parameters/trigger; }

expect_status 0 "insmod kdbt.ko" -- insmod "$KDBT_KMOD"
expect_status 0 "insmod kdbt_heapbugs.ko" -- insmod /kdbt/kdbt_heapbugs.ko
# 44 levels of 280 bytes leave about 3 KiB of the 16 KiB stack (40 left 4064 bytes
# in one run, a hair under the 4096-byte threshold: too close to count on).
expect_status 0 "recursion depth 44" -- sh -c 'echo 44 > /sys/module/kdbt_heapbugs/parameters/depth'
expect_status 0 "native: the deep recursion (depth 44) runs and returns" -- trigger deep-recursion
expect_status 64 "--threshold without stackguard: usage error" -- kdbt attach --threshold 4096
expect_status 64 "--threshold past the stack: usage error" -- kdbt attach --tool stackguard --threshold 20000

expect_status 0 "kdbt attach --tool stackguard" -- kdbt attach --tool stackguard
expect_output "tools: stackguard" "  ... with stackguard"
expect_status 0 "kernel-heavy workload" -- kdbt-guest-workload 10
expect_status 0 "stress-ng" -- stress-ng --fork 2 --pipe 2 --mmap 1 --mmap-bytes 4M --timeout 3s --metrics-brief
expect_status 0 "kdbt report --format json (workload only)" -- kdbt report --format json
cp /tmp/out /tmp/clean.json
expect_status 0 "  ... no finding within bounds" -- sh -c '! grep -q "\"kind\"" /tmp/clean.json'
check '"stackguard_high_water"' "  ... high-water marks reported without findings" /tmp/clean.json
check '"task_min_free":[0-9]+' "  ... a task-stack mark" /tmp/clean.json
expect_status 0 "kdbt report (text)" -- kdbt report
check "least free bytes seen" "  ... high-water table" /tmp/out

expect_status 0 "trigger the deep recursion" -- trigger deep-recursion
expect_status 0 "kdbt report" -- kdbt report
cp /tmp/out /tmp/report.txt
expect_status 0 "kdbt report --symbolize --modules /kdbt" -- kdbt report --symbolize --modules /kdbt
cp /tmp/out /tmp/symbolized.txt
expect_status 0 "kdbt report --format json" -- kdbt report --format json
cp /tmp/out /tmp/report.json
expect_status 0 "kdbt report --format sarif" -- kdbt report --format sarif
cp /tmp/out /tmp/report.sarif
expect_status 1 "kdbt report --fail-on-findings exits 1" -- kdbt report --fail-on-findings
check "BUG: KDBT: stack-near-overflow in deep_recursion" "finding names the recursive function" /tmp/report.txt
check "task stack" "  ... on the task stack" /tmp/report.txt
check '"kind":"stack-near-overflow"' "json: the finding" /tmp/report.json
check '"function":"deep_recursion"[^}]*"stack_bytes":280' "json: each recursion frame uses 280 bytes" /tmp/report.json
check "KDBT-STACK-NEAR-OVERFLOW" "sarif: the rule" /tmp/report.sarif
check "kdbt_heapbugs.c:[0-9]+" "symbolized: file:line" /tmp/symbolized.txt
expect_status 0 "kdbt detach" -- kdbt detach

# Three tools on one attach, then tools enabled and disabled while attached: the
# cache is rebuilt, findings carry over.
expect_status 0 "kdbt attach --tool stackguard --tool heapcheck --tool inscount" -- \
	kdbt attach --tool stackguard --tool heapcheck --tool inscount
expect_status 0 "workload under three tools" -- kdbt-guest-workload 5
expect_status 0 "trigger uaf-read" -- trigger uaf-read
expect_status 0 "trigger deep-recursion" -- trigger deep-recursion
expect_status 0 "kdbt report --format json" -- kdbt report --format json
cp /tmp/out /tmp/three.json
check '"kind":"use-after-free"' "heapcheck found the use after free" /tmp/three.json
check '"kind":"stack-near-overflow"' "stackguard found the deep recursion" /tmp/three.json
expect_status 0 "kdbt report" -- kdbt report
check "^inscount: [1-9][0-9]* kernel instructions" "inscount counted" /tmp/out
expect_status 0 "kdbt tool disable heapcheck" -- kdbt tool disable heapcheck
check "tools: inscount,stackguard" "  ... inscount and stackguard remain" /tmp/out
expect_status 0 "kdbt tool enable heapcheck --quarantine 2097152" -- kdbt tool enable heapcheck --quarantine 2097152
check "tools: inscount,heapcheck,stackguard" "  ... all three again" /tmp/out
expect_status 0 "kdbt status" -- kdbt status
check "heapcheck \\(quarantine 2097152 bytes" "  ... status shows the new quarantine" /tmp/out
check "stackguard \\(threshold 4096 bytes" "  ... and stackguard's threshold" /tmp/out
expect_status 0 "kdbt report --format json (after the changes)" -- kdbt report --format json
cp /tmp/out /tmp/retooled.json
check '"kind":"use-after-free"' "  ... the use after free is still reported" /tmp/retooled.json
check '"kind":"stack-near-overflow"' "  ... and the deep recursion" /tmp/retooled.json
expect_status 0 "trigger double-free (heapcheck enabled afresh)" -- trigger double-free
expect_status 0 "kdbt report --format json" -- kdbt report --format json
check '"kind":"double-free"' "  ... found by the re-enabled heapcheck" /tmp/out
expect_status 64 "kdbt tool enable nosuch: usage error" -- kdbt tool enable nosuch
expect_status 64 "kdbt tool enable inscount --threshold 1: usage error" -- kdbt tool enable inscount --threshold 1
expect_status 0 "kdbt detach" -- kdbt detach
expect_status 0 "rmmod kdbt_heapbugs" -- rmmod kdbt_heapbugs
expect_status 0 "rmmod kdbt" -- rmmod kdbt
finish
