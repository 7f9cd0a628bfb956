#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""How many times each guest symbol was entered, from a profile-kernel-bench run.

    entries.py OUT [--top N] [--match REGEX]

OUT: the run's output directory (prof.txt and kallsyms). A symbol's entries are
the executions of translated blocks that start at its address: calls, and jumps
to its first instruction. With report.py's instruction totals this gives the
cost per call (e.g. heapcheck's hooks: instructions per allocation).
"""
import argparse
import re


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--top", type=int, default=60)
    ap.add_argument("--match", default="")
    args = ap.parse_args()
    names = {}
    with open(f"{args.out}/kallsyms", errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                names.setdefault(int(parts[0], 16), " ".join(parts[2:]))
    entries = {}
    with open(f"{args.out}/prof.txt") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            address, _, count = line.split()
            name = names.get(int(address, 16))
            if name is not None:
                entries[name] = entries.get(name, 0) + int(count)
    pattern = re.compile(args.match)
    rows = sorted((c, n) for n, c in entries.items() if pattern.search(n))
    for count, name in reversed(rows[-args.top:]):
        print(f"{count:12,d}  {name}")


if __name__ == "__main__":
    main()
