#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""A kdbt function's disassembly with the execution count of each translated
block that starts in it, from a profile-kernel-bench run.

    annotate.py OUT KO REGEX

OUT: the run's output directory (prof.txt, kallsyms); KO: the kdbt.ko that ran
(KMOD); REGEX: matches the (mangled) names of the functions to show. Counts
stand at each block's first instruction; a block runs on to the next counted
instruction or a branch. This is how the hooks' hot paths were read (what the
compiler made of them: struct copies, memset calls, unrolled probes).
"""
import re
import subprocess
import sys


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: annotate.py OUT KO REGEX")
    out, ko, pattern = sys.argv[1], sys.argv[2], re.compile(sys.argv[3])
    loaded = {}
    with open(f"{out}/kallsyms", errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 4 and parts[3] == "[kdbt]":
                loaded[parts[2]] = int(parts[0], 16)
    symbols = {}
    nm = subprocess.run(["nm", "-S", ko], capture_output=True, text=True, check=True).stdout
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) == 4:
            symbols[parts[3]] = (int(parts[0], 16), int(parts[1], 16))
    blocks = []
    with open(f"{out}/prof.txt") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            address, insns, count = line.split()
            blocks.append((int(address, 16), int(insns), int(count)))
    for name in sorted(n for n in loaded if pattern.search(n) and n in symbols):
        start, size = symbols[name]
        base = loaded[name]
        counts = {}
        total = 0
        for address, insns, count in blocks:
            if base <= address < base + size:
                counts[address - base] = counts.get(address - base, 0) + count
                total += insns * count
        print(f"== {name}: {size} bytes, {total:,d} instructions executed")
        dump = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--start-address={start}",
                               f"--stop-address={start + size}", ko], capture_output=True, text=True).stdout
        for line in dump.splitlines():
            m = re.match(r"\s*([0-9a-f]+):\s*(.*)", line)
            if m:
                offset = int(m.group(1), 16) - start
                count = f"{counts[offset]:10,d}" if offset in counts else " " * 10
                print(f"{count}  {offset:#6x}  {m.group(2)}")


if __name__ == "__main__":
    main()
