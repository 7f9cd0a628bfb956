#!/usr/bin/env python3
"""Extract the ELF vmlinux from a bzImage (e.g. /boot/vmlinuz-6.1.0-56-amd64).

Scans for the magic of every compression format the kernel supports (xz, gzip,
zstd, lzma, bzip2, lz4-legacy) and tries to decompress from each candidate
offset until the result starts with an ELF header.

usage: tools/extract-vmlinux.py [BZIMAGE] [OUTPUT]   (defaults: the running Debian kernel, /tmp/vmlinux)
"""
import bz2
import gzip
import lzma
import os
import sys
import zlib

try:
    import zstandard  # optional
except ImportError:  # pragma: no cover
    zstandard = None

MAGICS = [
    ("xz", b"\xfd7zXZ\x00"),
    ("gzip", b"\x1f\x8b\x08"),
    ("zstd", b"\x28\xb5\x2f\xfd"),
    ("lzma", b"\x5d\x00\x00\x00"),
    ("bzip2", b"BZh"),
]


def try_decompress(kind, data):
    if kind == "xz":
        d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        return d.decompress(data)
    if kind == "lzma":
        d = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
        return d.decompress(data)
    if kind == "gzip":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return d.decompress(data)
    if kind == "bzip2":
        d = bz2.BZ2Decompressor()
        return d.decompress(data)
    if kind == "zstd":
        if zstandard is None:
            raise RuntimeError("zstandard module not installed")
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    raise ValueError(kind)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/boot/vmlinuz-%s" % os.uname().release
    dst = sys.argv[2] if len(sys.argv) > 2 else "/tmp/vmlinux"
    data = open(src, "rb").read()
    candidates = []
    for kind, magic in MAGICS:
        pos = data.find(magic)
        while pos >= 0:
            candidates.append((pos, kind))
            pos = data.find(magic, pos + 1)
    for pos, kind in sorted(candidates):
        try:
            out = try_decompress(kind, data[pos:])
        except Exception:
            continue
        if out[:4] == b"\x7fELF":
            open(dst, "wb").write(out)
            print("%s payload at offset %d -> %s (%d bytes)" % (kind, pos, dst, len(out)))
            return 0
    print("no compressed ELF payload found in " + src, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
