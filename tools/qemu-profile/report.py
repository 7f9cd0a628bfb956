#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Break a qprof profile (profile.so output) down by guest kernel symbol.

    report.py PROFILE KALLSYMS [--top N] [--region-size BYTES] [--max-sym-size BYTES]
              [--no-demangle]

PROFILE: lines `vaddr_hex n_insns exec_count` ('#' lines are comments).
KALLSYMS: /proc/kallsyms of the same guest boot, read as root while the
modules of interest were loaded (KASLR moves everything at each boot).

Each TB's instructions (n_insns * exec_count) go to the symbol containing its
start address. A symbol is taken to extend to the next kallsyms address, but
at most --max-sym-size bytes: PCs beyond that, or below the first symbol, are
"not in any symbol" (e.g. kdbt's code cache, which is vmalloc'ed) and are
grouped by --region-size aligned region. User-space PCs (lower half) are
grouped the same way, as [user region ...]. Swift names (kdbt's engine) are
shown demangled when swift-demangle is on PATH.
"""
import argparse
import bisect
import collections
import shutil
import subprocess
import sys

TEXT_TYPES = set("tTwW")
USER_TOP = 1 << 63


def read_profile(path):
    tbs = []  # (vaddr, insns)
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            va, n, c = line.split()
            tbs.append((int(va, 16), int(n) * int(c)))
    return tbs


def read_kallsyms(path):
    """Sorted (addr, name, is_text); aliases at one address keep the first text one."""
    by_addr = {}
    with open(path, errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            try:
                addr = int(parts[0], 16)
            except ValueError:
                continue
            if addr == 0:  # hidden (not root) or absolute symbols
                continue
            name = parts[2] + (" " + parts[3] if len(parts) > 3 else "")
            is_text = parts[1] in TEXT_TYPES
            old = by_addr.get(addr)
            if old is None or (is_text and not old[1]):
                by_addr[addr] = (name, is_text)
    syms = sorted((a, n, t) for a, (n, t) in by_addr.items())
    if not syms:
        sys.exit(f"report.py: no usable symbols in {path} (kallsyms read as non-root?)")
    return syms


def demangler(names, enabled):
    """name -> display name, through `swift-demangle --simplified` if present."""
    tool = shutil.which("swift-demangle") if enabled else None
    names = list(names)
    if not tool or not names:
        return {n: n for n in names}
    out = subprocess.run([tool, "--simplified"], input="\n".join(names) + "\n",
                         capture_output=True, text=True, check=False).stdout.splitlines()
    if len(out) != len(names):
        return {n: n for n in names}
    return dict(zip(names, out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("kallsyms")
    ap.add_argument("--top", type=int, default=60)
    ap.add_argument("--region-size", type=lambda s: int(s, 0), default=1 << 20)
    ap.add_argument("--max-sym-size", type=lambda s: int(s, 0), default=0x10000)
    ap.add_argument("--no-demangle", action="store_true")
    a = ap.parse_args()

    tbs = read_profile(a.profile)
    syms = read_kallsyms(a.kallsyms)
    addrs = [s[0] for s in syms]

    by_sym = collections.Counter()
    by_region = collections.Counter()
    by_class = collections.Counter()  # kernel / module NAME / no symbol / user
    for va, insns in tbs:
        if va < USER_TOP:
            key = f"[user region {va & ~(a.region_size - 1):#x}]"
            by_region[key] += insns
            by_class["user space"] += insns
            continue
        i = bisect.bisect_right(addrs, va) - 1
        if i >= 0:
            addr, name, is_text = syms[i]
            end = addrs[i + 1] if i + 1 < len(addrs) else addr + a.max_sym_size
            if is_text and va < min(end, addr + a.max_sym_size):
                by_sym[name] += insns
                mod = name.split(" ", 1)[1] if " " in name else None
                by_class[f"module {mod.strip('[]')}" if mod else "kernel"] += insns
                continue
        key = f"[region {va & ~(a.region_size - 1) & (2**64 - 1):#x}]"
        by_region[key] += insns
        by_class["not in any symbol"] += insns

    total = sum(i for _, i in tbs)
    if not total:
        sys.exit("report.py: empty profile")

    def pct(n):
        return 100.0 * n / total

    with open(a.profile) as f:
        head = [l.strip() for l in f if l.startswith("#")]
    print(f"total instructions: {total:,}  ({'; '.join(h.lstrip('# ') for h in head)})")
    print()
    print("by class:")
    for k, n in by_class.most_common():
        print(f"  {n:>16,} {pct(n):6.2f}%  {k}")
    print()
    print(f"top {a.top} symbols (and unsymbolized regions), by instructions:")
    print(f"  {'instructions':>16} {'%':>7} {'cum%':>7}  symbol")
    cum = 0
    merged = collections.Counter(by_sym)
    merged.update(by_region)
    top = merged.most_common(a.top)
    shown = demangler((k for k, _ in top), not a.no_demangle)
    for k, n in top:
        cum += n
        print(f"  {n:>16,} {pct(n):6.2f}% {pct(cum):6.2f}%  {shown[k]}")
    print()
    print(f"not in any symbol, by {a.region_size:#x}-byte region:")
    for k, n in by_region.most_common():
        print(f"  {n:>16,} {pct(n):6.2f}%  {k}")


if __name__ == "__main__":
    main()
