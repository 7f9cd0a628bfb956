#!/usr/bin/env python3
"""Generate Sources/X86/Tables.generated.swift from tools/opcodes.txt.

The table is one declarative opcode list (tools/opcodes.txt).  This script
  * expands macros (@MMXSSE, @FMA, @FMAS) and the 3DNow suffix table,
  * derives VEX and EVEX forms of SSE entries ("v" + mnemonic),
  * resolves, per opcode, which entry applies for every combination of
    (mandatory prefix, ModRM.reg, ModRM.mod, ModRM.rm, W, L, operand size,
    address size) -- most specific entry wins --
  * emits a compact decision tree per opcode, encoded as hex text inside
    StaticString literals (no arrays: the code must build with Embedded Swift
    and -no-allocations).

Usage: python3 tools/gen_tables.py   (run from the package root)
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "tools", "opcodes.txt")
OUT = os.path.join(ROOT, "Sources", "X86", "Tables.generated.swift")

MAPS = ["1", "0F", "0F38", "0F3A", "V0F", "V0F38", "V0F3A", "E0F", "E0F38",
        "E0F3A", "E5", "E6", "X8", "X9", "XA", "3DN"]
MAP_INDEX = {m: i for i, m in enumerate(MAPS)}

# operand kinds (6 bits) -- keep in sync with OperandKind in Instruction.swift
KINDS = {
    "none": 0, "E": 1, "M": 2, "R": 3, "G": 4, "V": 5, "W": 6, "U": 7, "H": 8,
    "L": 9, "P": 10, "Q": 11, "N": 12, "C": 13, "D": 14, "S": 15, "B": 16,
    "I": 17, "I2": 18, "J": 19, "O": 20, "X": 21, "Y": 22, "Z": 23, "ACC": 24,
    "CL": 25, "DX": 26, "ONE": 27, "SEG": 28, "ST0": 29, "STi": 30, "XMM0": 31,
    "KG": 32, "KE": 33, "KH": 34, "VSIB": 35, "BG": 36, "BE": 37, "KR": 38,
    "TG": 39, "TR": 40, "TH": 41,
}
# operand sizes -- keep in sync with OperandSizeCode
SIZES = {
    "": 0, "b": 1, "w": 2, "d": 3, "q": 4, "v": 5, "z": 6, "y": 7, "dq": 8,
    "qq": 9, "x": 10, "xh": 11, "xq": 12, "ss": 13, "sd": 14, "ps": 15,
    "pd": 16, "pi": 17, "s": 18, "p": 19, "t": 20, "e": 21, "st": 22, "fx": 23,
    "xs": 24, "m": 25, "dw": 26, "db": 27, "xo": 28, "xdup": 29, "cl": 30,
}
ACCESS = {"": 0, "n": 0, "r": 1, "w": 2, "rw": 3}
# immediate codes -- keep in sync with decoder
IMM = {"": 0, "b": 1, "w": 2, "z": 3, "v": 4, "jb": 5, "jz": 6, "moffs": 7,
       "jx": 8, "b3dn": 9, "d": 10}

ATTR_BITS = {"d64": 1, "f64": 2, "lock": 4, "rep": 8, "mreg": 16, "priv": 32, "vvvv": 64, "vsib": 128}

DIMS = ["pfx", "reg", "mod", "rm", "w", "l", "os", "asz"]
DIM_VALUES = {"pfx": 4, "reg": 8, "mod": 2, "rm": 8, "w": 2, "l": 4, "os": 3,
              "asz": 2}
NODE_KIND = {"leaf": 1, "pfx": 2, "reg": 3, "mod": 4, "rm": 5, "w": 6, "l": 7,
             "os": 8, "asz": 9}

# mnemonics whose first operand is only written / only read (default: read-write)
DST_W = re.compile(r"^(v?mov|lea|pop|set|cmov|cvt|vcvt|in$|ins|lods|stos|lds|les|lfs|lgs|lss|"
                   r"sldt|str$|smsw|sgdt|sidt|bsf|bsr|tzcnt|lzcnt|popcnt|rdrand|rdseed|"
                   r"rdpid|rdfsbase|rdgsbase|v?pshuf[dhlw]|v?pmov|v?pextr|v?extract|vbroadcast|vpbroadcast|"
                   r"v?sqrt|v?rsqrt|v?rcp|v?round|vrndscale|v?aesimc|v?aeskeygen|fst|fist|fbstp|"
                   r"fnst|fnsave|fxsave|xsave|stmxcsr|vstmxcsr|ldmxcsr|kmov|knot|kand|kor|kxor|kxnor|kadd|"
                   r"kunpck|kshift|andn$|bextr|bls|bzhi|pdep|pext|rorx|sarx|shlx|shrx|vperm[^it]|"
                   r"vpcmp|vcmp|vptestn?m|vpconflict|vplzcnt|vpopcnt|vgetexp|vexpand|vpexpand|"
                   r"vcompress|vpcompress|v?movddup|v?movs[lh]dup|v?phminpos|v?movmsk|v?pmovmsk|"
                   r"v?pabs|vpternlog|ud[012]|crc32x|nop|prefetch|cldemote|clflush|clwb|invlpg|"
                   r"v?lddqu|enter|vgather|vpgather)")
DST_W = re.compile(DST_W.pattern.replace("|nop|", "|"))
DST_R = re.compile(r"^(cmp$|test$|bt$|push|v?u?comis|v?ptest|vtest|ktest|kortest|out|"
                   r"call|jmp|j|loop|ret|int$|lgdt|lidt|lldt|ltr|verr|verw|lmsw|wrfsbase|"
                   r"wrgsbase|bnd|invept|invvpid|invpcid|v?pcmp[ei]str|umonitor|umwait|tpause|"
                   r"ptwrite|incssp|xrstor|fxrstor|frstor|fldenv|fldcw|fld|fild|fbld|fcom|fucom|"
                   r"ficom|ftst|fxam|ffree|vmptrld|vmclear|vmxon|vmwrite|clrssbsy|rstorssp|movdir64b|"
                   r"enqcmd|maskmov|vpscatter|vscatter|vmaskmov|vpmaskmov)")
FIXED_SIZE_OVERRIDE = {}
# destination is also a source even in the VEX/EVEX non-destructive form
ACC_RW = re.compile(r"^(vpermi2|vpermt2|vpternlog|vpdp|vpshldv|vpshrdv|vfixupimm|vpmadd52|vdpbf16|"
                    r"vfn?m(add|sub)|vfmaddsub|vfmsubadd|vfc?maddc)")


class Entry:
    __slots__ = ("map", "opc", "quals", "mnem", "ops", "attrs", "line")

    def __init__(self, map_, opc, quals, mnem, ops, attrs, line):
        self.map, self.opc, self.quals, self.mnem = map_, opc, quals, mnem
        self.ops, self.attrs, self.line = ops, attrs, line


def parse_quals(toks):
    q = {}
    for t in toks:
        if t.startswith("/"):
            q["reg"] = int(t[1:])
        elif t == "m":
            q["mod"] = 0
        elif t == "r":
            q["mod"] = 1
        elif t.startswith("!"):
            b = int(t[1:], 16)
            assert b >> 6 == 3, t
            q["mod"] = 1
            q["reg"] = (b >> 3) & 7
            q["rm"] = b & 7
        elif t.startswith("rm"):
            q["rm"] = int(t[2:])
            q["mod"] = 1
        elif t in ("NP", "66", "F3", "F2"):
            q["pfx"] = ["NP", "66", "F3", "F2"].index(t)
        elif t in ("W0", "W1"):
            q["w"] = int(t[1])
        elif t in ("L0", "L1", "L2"):
            q["l"] = int(t[1])
        elif t in ("o16", "o32", "o64"):
            q["os"] = {"o16": 0, "o32": 1, "o64": 2}[t]
        elif t in ("a32", "a64"):
            q["asz"] = {"a32": 0, "a64": 1}[t]
        else:
            raise ValueError("bad qualifier " + t)
    return q


def read_entries():
    entries = []
    for lineno, raw in enumerate(open(SRC), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = "%s:%d" % (SRC, lineno)
        if line.startswith("@"):
            entries.extend(expand_macro(line, where))
            continue
        head, _, rest = line.partition(":")
        attrs = []
        if ";" in rest:
            rest, _, a = rest.partition(";")
            attrs = a.split()
        htoks = head.split()
        map_, opc = htoks[0], htoks[1]
        quals = parse_quals(htoks[2:])
        rtoks = rest.split(None, 1)
        mnem = rtoks[0]
        ops = rtoks[1].replace(" ", "").split(",") if len(rtoks) > 1 else []
        if opc.endswith("+"):
            base = int(opc[:-1], 16)
            for i in range(8):
                entries.append(Entry(map_, base + i, dict(quals), mnem, ops, attrs, where))
        else:
            entries.append(Entry(map_, int(opc, 16), quals, mnem, ops, attrs, where))
    return entries


def expand_macro(line, where):
    t = line.split()
    out = []
    if t[0] == "@MMXSSE":
        map_, opc, name = t[1], int(t[2], 16), t[3]
        out.append(Entry(map_, opc, {"pfx": 0}, name, ["Pq", "Qq"], [], where))
        out.append(Entry(map_, opc, {"pfx": 1}, name, ["Vx", "Hx", "Wx"], [], where))
    elif t[0] == "@FMA":
        opc, base = int(t[1], 16), t[2]
        out.append(Entry("V0F38", opc, {"pfx": 1, "w": 0}, base + "ps", ["Vx:rw", "Hx", "Wx"], [], where))
        out.append(Entry("V0F38", opc, {"pfx": 1, "w": 1}, base + "pd", ["Vx:rw", "Hx", "Wx"], [], where))
    elif t[0] == "@FMAS":
        opc, base = int(t[1], 16), t[2]
        out.append(Entry("V0F38", opc, {"pfx": 1, "w": 0}, base + "ss", ["Vdq:rw", "Hdq", "Wss"], [], where))
        out.append(Entry("V0F38", opc, {"pfx": 1, "w": 1}, base + "sd", ["Vdq:rw", "Hdq", "Wsd"], [], where))
    else:
        raise ValueError(where + ": bad macro")
    return out


THREEDNOW = {
    0x0C: "pi2fw", 0x0D: "pi2fd", 0x1C: "pf2iw", 0x1D: "pf2id", 0x8A: "pfnacc",
    0x8E: "pfpnacc", 0x90: "pfcmpge", 0x94: "pfmin", 0x96: "pfrcp", 0x97: "pfrsqrt",
    0x9A: "pfsub", 0x9E: "pfadd", 0xA0: "pfcmpgt", 0xA4: "pfmax", 0xA6: "pfrcpit1",
    0xA7: "pfrsqit1", 0xAA: "pfsubr", 0xAE: "pfacc", 0xB0: "pfcmpeq", 0xB4: "pfmul",
    0xB6: "pfrcpit2", 0xB7: "pmulhrw", 0xBB: "pswapd", 0xBF: "pavgusb",
}


def is_vec_op(op):
    k = op.split(":")[0]
    return k[:1] in ("V", "W", "U", "H", "L") and not k.startswith("VSIB")


def is_mmx_op(op):
    k = op.split(":")[0]
    return k[:1] in ("P", "Q", "N")


def implied_quals(entries):
    for e in entries:
        for o in e.ops:
            k = o.split(":")[0]
            if (k.startswith("M") or k.startswith("VSIB")) and "mod" not in e.quals:
                e.quals["mod"] = 0
    return entries


# VEX instructions without an EVEX counterpart (not derived into the EVEX maps)
NO_EVEX_FORM = set("""vphaddw vphaddd vphaddsw vphsubw vphsubd vphsubsw vpsignb vpsignw vpsignd vpblendw vblendps
vblendpd vdpps vdppd vmpsadbw vpblendd vperm2f128 vperm2i128 vaddsubps vaddsubpd vhaddps vhaddpd vhsubps vhsubpd
vlddqu vmovmskps vmovmskpd vpmovmskb vmaskmovdqu vpcmpestri vpcmpestrm vpcmpistri vpcmpistrm vaesimc
vaeskeygenassist vphminposuw vmaskmovps vmaskmovpd vpmaskmovd vpmaskmovq vroundps vroundpd vroundss vroundsd
vrcpps vrcpss vrsqrtps vrsqrtss vpermilps_imm vcvtph2ps_vex vbroadcastf128 vbroadcasti128 vinsertf128 vextractf128
vinserti128 vextracti128 vpdpbusd_vex""".split())


# SSE instructions whose VEX form exists only with VEX.L = 0 (VEX.128, not LIG)
VEX128_ONLY = set("""movlps movhps movlpd movhpd movlhps movhlps pinsrw pinsrb pinsrd pinsrq pextrb pextrw pextrd
pextrq extractps insertps movd movq dppd aesimc aeskeygenassist pcmpestri pcmpestrm pcmpistri pcmpistrm phminposuw
maskmovdqu""".split())


def derive(entries):
    """Derive VEX / EVEX entries from SSE entries; strip H/L from legacy ones."""
    out = []
    vex = []
    for e in entries:
        if e.map in ("0F", "0F38", "0F3A"):
            vecish = any(is_vec_op(o) for o in e.ops) and not any(is_mmx_op(o) for o in e.ops)
            if vecish and "nov" not in e.attrs and not any(o.startswith("I2") for o in e.ops) \
                    and not e.mnem.startswith("sha"):
                vops = list(e.ops)
                vq = dict(e.quals)
                if e.mnem in VEX128_ONLY:
                    vq["l"] = 0
                if e.mnem in ("gf2p8affineqb", "gf2p8affineinvqb"):
                    vq["w"] = 1
                if e.mnem in ("movmskps", "movmskpd"):
                    vops = [o.replace("Gy", "Gd") for o in vops]  # VEX.W is ignored here
                vex.append(Entry("V" + e.map, e.opc, vq, "v" + e.mnem, vops,
                                 [a for a in e.attrs if a not in ("lock", "rep")], e.line))
            legacy_ops = [o for o in e.ops if not (o.startswith("H") or o.startswith("L"))]
            if any(o.startswith("H") for o in e.ops) and legacy_ops:
                # the legacy form merges into its destination: read-modify-write
                legacy_ops[0] = legacy_ops[0].split(":")[0] + ":rw"
            out.append(Entry(e.map, e.opc, e.quals, e.mnem, legacy_ops, e.attrs, e.line))
        else:
            out.append(e)
    # VEX ldmxcsr / stmxcsr
    vex.append(Entry("V0F", 0xAE, {"reg": 2, "mod": 0, "pfx": 0}, "vldmxcsr", ["Md"], [], "derived"))
    vex.append(Entry("V0F", 0xAE, {"reg": 3, "mod": 0, "pfx": 0}, "vstmxcsr", ["Md:w"], [], "derived"))
    explicit_v = set((e.map, e.opc, e.quals.get("pfx"), e.quals.get("w")) for e in out if e.map.startswith("V"))
    for v in vex:
        if (v.map, v.opc, v.quals.get("pfx"), None) in explicit_v:
            continue
        out.append(v)
    # EVEX from VEX (derived + explicit), unless EVEX entries exist for (map, opc, pfx)
    covered = {}
    for e in out:
        if e.map.startswith("E"):
            k = (e.map, e.opc, e.quals.get("pfx"), e.quals.get("reg"))
            covered.setdefault(k, set()).update([e.quals["w"]] if "w" in e.quals else [0, 1])
    allv = [e for e in out if e.map.startswith("V")]
    for v in allv:
        if v.mnem.startswith("k") or v.mnem in ("vzeroupper", "vzeroall", "andn", "blsr", "blsmsk",
                                                "blsi", "bzhi", "pext", "pdep", "mulx", "bextr",
                                                "shlx", "sarx", "shrx", "rorx", "vldmxcsr",
                                                "vstmxcsr", "vptest", "vtestps", "vtestpd") \
                or v.mnem in NO_EVEX_FORM:
            continue
        if any(o.startswith("L") for o in v.ops):
            continue
        emap = "E" + v.map[1:]
        k = (emap, v.opc, v.quals.get("pfx"), v.quals.get("reg"))
        k2 = (emap, v.opc, v.quals.get("pfx"), None)
        cov = covered.get(k, set()) | covered.get(k2, set())
        q = dict(v.quals)
        q.pop("l", None)
        ew = evex_w(v)
        if ew is not None and "w" not in q:
            q["w"] = ew
        if cov == {0, 1} or ("w" in q and q["w"] in cov):
            continue
        out.append(Entry(emap, v.opc, q, v.mnem, list(v.ops), [], v.line))
    for suffix, name in THREEDNOW.items():
        out.append(Entry("3DN", suffix, {}, name, ["Pq", "Qq"], [], "3dnow"))
    return out


def parse_operand(tok, index, mnem, vex_nds=False):
    acc = ""
    if ":" in tok:
        tok, acc = tok.split(":")
    fixed = {"AL": ("ACC", "b"), "AX": ("ACC", "w"), "rAX": ("ACC", "v"), "eAX": ("ACC", "z"),
             "CL": ("CL", "b"), "DX": ("DX", "w"), "ONE": ("ONE", "b"), "ST0": ("ST0", ""),
             "STi": ("STi", ""), "XMM0": ("XMM0", "dq"), "ES": ("SEG", "ES"), "CS": ("SEG", "CS"),
             "SS": ("SEG", "SS"), "DS": ("SEG", "DS"), "FS": ("SEG", "FS"), "GS": ("SEG", "GS")}
    imm = None
    if tok in fixed:
        kind, size = fixed[tok]
        if kind == "SEG":
            size_code = ["ES", "CS", "SS", "DS", "FS", "GS"].index(size)
        else:
            size_code = SIZES[size]
    else:
        m = re.match(r"^(VSIB|KG|KE|KH|KR|BG|BE|TG|TR|TH|I2|I3|[A-Z])(.*)$", tok)
        if not m:
            raise ValueError("bad operand " + tok)
        kind, size = m.group(1), m.group(2)
        if kind == "I3":
            return None, ("b3dn", "I")
        elif kind == "I":
            imm = size
        elif kind == "I2":
            imm = size
        elif kind == "J":
            imm = {"b": "jb", "z": "jz", "x": "jx"}[size]
            size = {"b": "b", "z": "z", "x": "z"}[size]
        elif kind == "O":
            imm = "moffs"
        if kind is not None and size not in SIZES:
            raise ValueError("bad size " + tok)
        size_code = SIZES.get(size, 0)
    if kind is None:
        return None, imm
    if not acc:
        if index == 0 and ACC_RW.match(mnem):
            acc = "rw"
        elif index == 0 and vex_nds:
            acc = "w"
        elif index == 0:
            if kind in ("I", "J", "O", "SEG") and mnem in ("push",):
                acc = "r"
            elif DST_R.match(mnem):
                acc = "r"
            elif DST_W.match(mnem):
                acc = "w"
            elif kind in ("I", "J"):
                acc = "r"
            else:
                acc = "rw"
        else:
            acc = "r"
    return (KINDS[kind] | (ACCESS[acc] << 6)) | (size_code << 8), (imm, kind)


def encode_entry(e):
    ops = []
    imm1 = imm2 = 0
    for i, tok in enumerate(e.ops):
        nds = e.map[0] in ("V", "E") and any(o.startswith("H") for o in e.ops)
        code, immi = parse_operand(tok, len(ops), e.mnem, nds)
        if immi is not None and immi[0] is not None:
            if immi[1] == "I2":
                imm2 = IMM[immi[0]]
            elif imm1 == 0:
                imm1 = IMM[immi[0]]
            else:
                imm2 = IMM[immi[0]]
        if code is not None:
            ops.append(code)
    if len(ops) > 4:
        raise ValueError(e.line + ": too many operands")
    while len(ops) < 4:
        ops.append(0)
    attrs = 0
    for o in e.ops:
        k = o.split(":")[0]
        if k[:1] in ("H", "B") or k.startswith("KH") or k.startswith("TH"):
            attrs |= ATTR_BITS["vvvv"]
        if k.startswith("VSIB"):
            attrs |= ATTR_BITS["vsib"]
    ir, iw = implicit_regs(e)
    for a in e.attrs:
        if a.startswith("ir=") or a.startswith("iw="):
            continue
        if a == "vvvv":
            attrs |= ATTR_BITS["vvvv"]
            continue
        if a in ATTR_BITS:
            attrs |= ATTR_BITS[a]
        elif a in ("nov", "noe", "vvvv"):
            pass
        else:
            raise ValueError(e.line + ": bad attr " + a)
    return ops, imm1 | (imm2 << 8), attrs, ir, iw


GPRS = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"] + ["r%d" % i for i in range(8, 16)]
IMPLICIT = {
    # mnemonic: (read, written)
    "push": ("rsp", "rsp"), "pushf": ("rsp", "rsp"), "pushfq": ("rsp", "rsp"),
    "pop": ("rsp", "rsp"), "popf": ("rsp", "rsp"), "popfq": ("rsp", "rsp"),
    "call": ("rsp", "rsp"), "ret": ("rsp", "rsp"), "retf": ("rsp", "rsp"),
    "iret": ("rsp", "rsp"), "iretd": ("rsp", "rsp"), "iretq": ("rsp", "rsp"),
    "enter": ("rsp,rbp", "rsp,rbp"), "leave": ("rsp,rbp", "rsp,rbp"),
    "cbw": ("rax", "rax"), "cwde": ("rax", "rax"), "cdqe": ("rax", "rax"),
    "cwd": ("rax", "rdx"), "cdq": ("rax", "rdx"), "cqo": ("rax", "rdx"),
    "xlat": ("rax,rbx", "rax"), "lahf": ("", "rax"), "sahf": ("rax", ""),
    "cpuid": ("rax,rcx", "rax,rbx,rcx,rdx"), "rdtsc": ("", "rax,rdx"), "rdtscp": ("", "rax,rdx,rcx"),
    "rdpmc": ("rcx", "rax,rdx"), "rdmsr": ("rcx", "rax,rdx"), "wrmsr": ("rcx,rax,rdx", ""),
    "syscall": ("", "rcx,r11"), "sysret": ("rcx,r11", ""),
    "loop": ("rcx", "rcx"), "loope": ("rcx", "rcx"), "loopne": ("rcx", "rcx"),
    "jrcxz": ("rcx", ""), "jecxz": ("rcx", ""),
    "cmpxchg": ("rax", "rax"), "cmpxchg8b": ("rax,rdx,rbx,rcx", "rax,rdx"),
    "cmpxchg16b": ("rax,rdx,rbx,rcx", "rax,rdx"),
    "xgetbv": ("rcx", "rax,rdx"), "xsetbv": ("rcx,rax,rdx", ""),
    "monitor": ("rax,rcx,rdx", ""), "mwait": ("rax,rcx", ""), "monitorx": ("rax,rcx,rdx", ""),
    "mwaitx": ("rax,rbx,rcx", ""), "rdpkru": ("rcx", "rax,rdx"), "wrpkru": ("rax,rcx,rdx", ""),
    "pcmpestri": ("rax,rdx", "rcx"), "pcmpestrm": ("rax,rdx", ""), "pcmpistri": ("", "rcx"),
    "vpcmpestri": ("rax,rdx", "rcx"), "vpcmpestrm": ("rax,rdx", ""), "vpcmpistri": ("", "rcx"),
    "maskmovq": ("rdi", ""), "maskmovdqu": ("rdi", ""), "vmaskmovdqu": ("rdi", ""),
    "clzero": ("rax", ""), "invlpga": ("rax,rcx", ""), "vmrun": ("rax", ""), "vmload": ("rax", ""),
    "vmsave": ("rax", ""), "mulx": ("rdx", ""), "umwait": ("rax,rdx", ""), "tpause": ("rax,rdx", ""),
    "invlpgb": ("rax,rcx,rdx", ""), "rdpru": ("rcx", "rax,rdx"),
    "encls": ("rax,rbx,rcx,rdx", "rbx,rcx,rdx"), "enclu": ("rax,rbx,rcx,rdx", "rbx,rcx,rdx"),
    "enclv": ("rax,rbx,rcx,rdx", "rbx,rcx,rdx"), "pconfig": ("rax,rbx,rcx,rdx", "rax"),
    "rmpadjust": ("rax,rcx,rdx", "rax"), "pvalidate": ("rax,rcx,rdx", "rax"),
    "rmpupdate": ("rax,rcx", "rax"), "psmash": ("rax", "rax"), "serialize": ("", ""),
    "getsec": ("rax,rbx", "rax"), "sysexit": ("rcx,rdx", "rsp"), "sysenter": ("", "rsp"), "xbegin": ("", "rax"), "xabort": ("rax", "rax"),
    "tlbsync": ("", ""), "rdsspd": ("", ""), "clui": ("", ""),
    # VIA PadLock (register use as reported by Zydis 4.0)
    "xcrypt_ecb": ("rcx,rdx,rbx,rsi,rdi", "rcx,rsi,rdi"), "xcrypt_ctr": ("rax,rcx,rdx,rbx,rsi,rdi", "rax,rcx,rsi,rdi"),
    "xcrypt_cbc": ("rax,rcx,rdx,rbx,rsi,rdi", "rax,rcx,rsi"), "xcrypt_cfb": ("rax,rcx,rdx,rbx,rsi,rdi", "rax,rcx,rsi"),
    "xcrypt_ofb": ("rax,rcx,rdx,rbx,rsi,rdi", "rax,rcx,rsi"), "xsha1": ("rax,rcx,rsi,rdi", "rax,rsi"),
    "xsha256": ("rax,rcx,rsi,rdi", "rax,rsi"), "xstore": ("rdx,rdi", "rax,rdi"), "montmul": ("rax,rcx,rsi", "rax,rcx"),
}
for _m in ("xsave", "xsave64", "xsaveopt", "xsaveopt64", "xsavec", "xsavec64", "xsaves", "xsaves64",
           "xrstor", "xrstor64", "xrstors", "xrstors64"):
    IMPLICIT[_m] = ("rax,rdx", "")
STRING_IMPLICIT = {"movs": ("rsi,rdi", "rsi,rdi"), "cmps": ("rsi,rdi", "rsi,rdi"), "stos": ("rdi,rax", "rdi"),
                   "lods": ("rsi", "rsi,rax"), "scas": ("rdi,rax", "rdi"), "ins": ("rdi,rdx", "rdi"),
                   "outs": ("rsi,rdx", "rsi")}


def reg_mask(names):
    m = 0
    for n in names.split(","):
        if n:
            m |= 1 << GPRS.index(n)
    return m


def implicit_regs(e):
    r = w = ""
    if e.mnem in IMPLICIT:
        r, w = IMPLICIT[e.mnem]
    if e.map == "1" and re.match(r"^(movs|cmps|stos|lods|scas|ins|outs)[bwdq]$", e.mnem):
        r, w = STRING_IMPLICIT[e.mnem[:-1]]
    for a in e.attrs:
        if a.startswith("ir="):
            r = a[3:]
        elif a.startswith("iw="):
            w = a[3:]
    return reg_mask(r), reg_mask(w)


NO_BCST = re.compile(r"^v(p?mov|p?broadcast|extract|insert|p?gather|p?scatter|p?compress|p?expand|lddqu|pshufb|"
                     r"psadbw|dbpsadbw|palignr|pmaddubsw|pmaddwd|pmulhrsw|pmulhu?w|pmullw|pavg[bw]|pack[su]swb|"
                     r"punpck[lh](bw|wd)|pabs[bw]|pminu?[sb]?[bw]$|pmaxu?[sb]?[bw]$|padd[su]?s?[bw]$|"
                     r"psub[su]?s?[bw]$|pcmp(eq|gt)[bw]$|pcmpu?[bw]$|ptestn?m[bw]|ps[lr][la]v?w|pshufhw|pshuflw|"
                     r"pshldv?w|pshrdv?w|perm[bw]$|permi2[bw]|permt2[bw]|pblendm[bw]|popcnt[bw]|pshufbitqmb|"
                     r"gf2p8mulb|psrldq|pslldq|aes|pclmul|cvtph2ps$|cvtps2ph$|4f|p4dp)")


EVEX_ER_SAE = re.compile(r"^v(add|sub|mul|div|sqrt|min|max|scalef|getexp|getmant|rndscale|reduce|range|fixupimm|"
                         r"cvt|fn?m(add|sub)|fmaddsub|fmsubadd|fc?mulc|fc?maddc|cmp(p|s)[sdh]|u?comis|rcp28|"
                         r"rsqrt28|exp2)")


def evex_w(e):
    """EVEX.W required by a derived EVEX entry (None: W ignored / not derivable)."""
    m = e.mnem
    if any(o.split(":")[0][1:] == "y" for o in e.ops):
        return None
    if m.startswith("vcvt"):
        mm = re.match(r"^vcvtt?(u?[a-z]+?)2", m)
        if not mm:
            return None
        src = mm.group(1)
        if src in ("ps", "ss", "dq", "udq", "ph", "sh"):
            return 0
        if src in ("pd", "sd", "qq", "uqq"):
            return 1
        return None
    if re.match(r"^vpunpck[lh]", m):
        return 1 if m.endswith("qdq") else (0 if m.endswith("dq") else None)
    if re.match(r"^v(p?mov(zx|sx|nt|dq|ddup|s[lh]dup|msk|q2dq|dq2q)|pclmul|aes|gf2p8|palignr|pshufb|pmaddwd|"
                r"pack[su]swb|phminpos|lddqu|pextr[bw]|pinsr[bw]|mpsadbw|dbpsadbw|extractps|insertps)", m):
        return None
    if m.startswith("vp"):
        if m.endswith("q") or m.endswith("pd"):
            return 1
        if m.endswith("d") or m.endswith("ps"):
            return 0
        return None
    if m.endswith("ps") or m.endswith("ss"):
        return 0
    if m.endswith("pd") or m.endswith("sd"):
        return 1
    if m in ("vmovd",):
        return 0
    if m in ("vmovq",):
        return 1
    return None


NO_MASKING = re.compile(r"^v(pclmul|aes|cvt(u?si2|t?s[sdh]2u?si)|insertps|extractps|pinsr|pextr|movd$|movq$|"
                        r"u?comis|pmovm2|pmov[bwdq]2m|movw$)")


def attrs2_of(e):
    a = 0
    if e.map[0] == "E" and NO_MASKING.match(e.mnem):
        a |= 4
    if e.map[0] == "E" and EVEX_ER_SAE.match(e.mnem):
        a |= 2
    if e.map[0] == "E" and not NO_BCST.match(e.mnem) and e.quals.get("mod") != 1:
        for o in e.ops:
            k = o.split(":")[0]
            if k[:1] == "W" and k[1:] in ("x", "ps", "pd", "xh", "xq"):
                a |= 1
    return a


def needs_modrm(e):
    if any(k in e.quals for k in ("reg", "mod", "rm")):
        return True
    for o in e.ops:
        k = o.split(":")[0]
        if re.match(r"^(VSIB|KG|KE|KR|BG|BE|TG|TR|[EMRGVWUPQNCDS])", k) and k not in ("DX", "DS", "CS", "SS", "ES",
                                                                                "FS", "GS", "CL", "ST0", "STi",
                                                                                "XMM0") \
                and not k.startswith("STi"):
            return True
        if k == "STi":
            return True
    if e.map[0] in ("V", "E", "X") and e.map != "V0F" or (e.map == "V0F" and e.opc != 0x77):
        return True
    return False


def main():
    entries = derive(implied_quals(read_entries()))
    # mnemonic list
    mnems = sorted((set(e.mnem for e in entries) | {"invalid"}) - {"3dnow"})
    mnems.remove("invalid")
    mnems = ["invalid", "3dnow"] + mnems
    mindex = {m: i for i, m in enumerate(mnems)}

    by_op = {}
    for e in entries:
        by_op.setdefault((e.map, e.opc), []).append(e)

    descs = []          # (mnem, ops, imm, attrs)
    desc_index = {}
    nodes = []          # (kind, arg)
    links = []
    node_memo = {}
    roots = {m: [0] * 256 for m in MAPS}
    root_flags = {m: [0] * 256 for m in MAPS}

    def desc_of(e):
        ops, imm, attrs, ir, iw = encode_entry(e)
        a2 = attrs2_of(e)
        key = (mindex[e.mnem], tuple(ops), imm, attrs, ir, iw, a2)
        if key not in desc_index:
            desc_index[key] = len(descs)
            descs.append(key)
        return desc_index[key]

    def add_node(kind, arg):
        key = (kind, arg)
        if key in node_memo:
            return node_memo[key]
        nodes.append(key)
        node_memo[key] = len(nodes)  # node refs are 1-based; 0 = invalid
        return len(nodes)

    for (map_, opc), es in sorted(by_op.items(), key=lambda kv: (MAP_INDEX[kv[0][0]], kv[0][1])):
        used = [d for d in DIMS if any(d in e.quals for e in es)]
        if "rm" in used and "mod" not in used:
            used.append("mod")
        mr = set(needs_modrm(e) for e in es)
        if len(mr) != 1:
            raise ValueError("%s %02X: inconsistent modrm need: %s" % (map_, opc, [e.line for e in es]))
        has_modrm = mr.pop()
        mreg = any("mreg" in e.attrs for e in es)
        if map_ == "1" and opc == 0x8F:
            pass

        def pick(assign):
            best, bests, bestn = None, [], -1
            for e in es:
                ok = True
                n = 0
                for d, v in e.quals.items():
                    if d == "rm" and assign.get("mod") == 0:
                        ok = False
                        break
                    if assign.get(d) != v:
                        ok = False
                        break
                    n += 1
                if not ok:
                    continue
                if n > bestn:
                    bestn, bests = n, [e]
                elif n == bestn:
                    bests.append(e)
            if not bests:
                return None
            ds = set(desc_of(e) for e in bests)
            if len(ds) > 1:
                raise ValueError("%s %02X %s: ambiguous %s" % (map_, opc, assign, [b.line for b in bests]))
            return ds.pop()

        def build(assign, dims):
            # returns node ref (0 = invalid)
            if not dims:
                d = pick(assign)
                return 0 if d is None else add_node(NODE_KIND["leaf"], d)
            d = dims[0]
            kids = []
            for v in range(DIM_VALUES[d]):
                a = dict(assign)
                a[d] = v
                kids.append(build(a, dims[1:]))
            if all(k == kids[0] for k in kids):
                return kids[0]
            base = len(links)
            links.extend(kids)
            return add_node(NODE_KIND[d], base)

        ref = build({}, used)
        roots[map_][opc] = ref
        root_flags[map_][opc] = (1 if has_modrm else 0) | (2 if mreg else 0)

    # ------------------------------------------------------------------ emit
    def hex16(v):
        assert 0 <= v < 65536, v
        return "%04X" % v

    def hex8(v):
        assert 0 <= v < 256, v
        return "%02X" % v

    def chunk(s, w=120):
        return "\\\n".join(s[i:i + w] for i in range(0, len(s), w))

    root_str = "".join(hex16(roots[m][i]) for m in MAPS for i in range(256))
    flag_str = "".join(hex8(root_flags[m][i]) for m in MAPS for i in range(256))
    node_str = "".join(hex8(k) + hex16(a) for k, a in nodes)
    link_str = "".join(hex16(x) for x in links)
    desc_str = "".join(hex16(m) + "".join(hex16(o) for o in ops) + hex16(imm) + hex8(attrs) + hex16(ir) + hex16(iw)
                       + hex8(a2) for (m, ops, imm, attrs, ir, iw, a2) in descs)

    sem = mnemonic_semantics(mnems)
    sem_str = "".join(hex8(cf) + hex16(fr) + hex16(fw) + hex8(pv) for (cf, fr, fw, pv) in sem)

    def swift_case(m):
        name = m
        if m[0].isdigit():
            name = "_" + m
        if name in ("in", "int", "out", "str", "and", "or", "xor", "not", "nop", "ret", "call", "enter"):
            return "`%s`" % name
        return name

    with open(OUT, "w") as f:
        w = f.write
        w("// GENERATED by tools/gen_tables.py from tools/opcodes.txt, do not edit.\n")
        w("// swiftlint:disable all\n\n")
        w("/// Instruction mnemonic (Intel naming, lower case; matches Zydis names).\n")
        w("public enum Mnemonic: UInt16, Sendable {\n")
        for i, m in enumerate(mnems):
            w("    case %s = %d\n" % (swift_case(m), i))
        w("}\n\n")
        w("extension Mnemonic {\n    /// Lower-case Intel name, e.g. \"add\".\n")
        w("    public var name: StaticString {\n        switch self {\n")
        for m in mnems:
            w("        case .%s: return \"%s\"\n" % (swift_case(m).strip("`") if False else swift_case(m), m))
        w("        }\n    }\n}\n\n")
        w("@usableFromInline enum Tables {\n")
        w("    static let mapCount = %d\n" % len(MAPS))
        w("    static let mnemonicCount = %d\n" % len(mnems))
        w("    static let nodeCount = %d\n" % len(nodes))
        w("    static let descCount = %d\n" % len(descs))
        w("    /// 16 maps x 256 opcodes, u16 node ref (0 = invalid). Maps: %s\n" % " ".join(MAPS))
        w("    static let roots: StaticString = \"\"\"\n%s\n\"\"\"\n" % chunk(root_str))
        w("    /// 16 maps x 256 opcodes, u8 flags: 1 = has ModRM, 2 = ModRM always register\n")
        w("    static let rootFlags: StaticString = \"\"\"\n%s\n\"\"\"\n" % chunk(flag_str))
        w("    /// nodes (1-based): u8 kind (1 leaf,2 pfx,3 reg,4 mod,5 rm,6 W,7 L,8 osize,9 asize), u16 arg\n")
        w("    static let nodes: StaticString = \"\"\"\n%s\n\"\"\"\n" % chunk(node_str))
        w("    /// child links: u16 node refs\n")
        w("    static let links: StaticString = \"\"\"\n%s\n\"\"\"\n" % chunk(link_str))
        w("    /// descriptors: u16 mnemonic, 4 x u16 operand (kind|access<<6|size<<8), u16 imm (imm1|imm2<<8), u8 attrs,\n    /// u16 implicit GPRs read, u16 implicit GPRs written (bit i = GPR i), u8 attrs2 (1 = EVEX broadcast allowed, 2 = EVEX rounding/SAE allowed, 4 = no EVEX masking)\n")
        w("    static let descs: StaticString = \"\"\"\n%s\n\"\"\"\n" % chunk(desc_str))
        w("    /// per mnemonic: u8 control flow, u16 flags read, u16 flags written, u8 privileged\n")
        w("    static let semantics: StaticString = \"\"\"\n%s\n\"\"\"\n" % chunk(sem_str))
        w("}\n")
    print("mnemonics=%d nodes=%d links=%d descs=%d" % (len(mnems), len(nodes), len(links), len(descs)))


# ---------------------------------------------------------------- semantics
CF = {"none": 0, "jmp": 1, "jmpIndirect": 2, "call": 3, "callIndirect": 4, "jcc": 5, "ret": 6,
      "farRet": 7, "iret": 8, "sysret": 9, "syscall": 10, "sysenter": 11, "sysexit": 12,
      "interrupt": 13, "int3": 14, "int1": 15, "ud": 16, "hlt": 17, "farJmp": 18, "farCall": 19,
      "xbegin": 20, "loop": 21, "xabort": 22, "vmexit": 23}
FL = {"CF": 1, "PF": 2, "AF": 4, "ZF": 8, "SF": 16, "OF": 32, "DF": 64, "IF": 128, "TF": 256,
      "AC": 512, "NT": 1024, "RF": 2048, "ID": 4096, "IOPL": 8192}
ALL6 = FL["CF"] | FL["PF"] | FL["AF"] | FL["ZF"] | FL["SF"] | FL["OF"]
ALLF = 0x3FFF
COND = {"o": FL["OF"], "no": FL["OF"], "b": FL["CF"], "nb": FL["CF"], "z": FL["ZF"], "nz": FL["ZF"],
        "be": FL["CF"] | FL["ZF"], "nbe": FL["CF"] | FL["ZF"], "s": FL["SF"], "ns": FL["SF"],
        "p": FL["PF"], "np": FL["PF"], "l": FL["SF"] | FL["OF"], "nl": FL["SF"] | FL["OF"],
        "le": FL["ZF"] | FL["SF"] | FL["OF"], "nle": FL["ZF"] | FL["SF"] | FL["OF"]}
PRIV = set("""hlt lgdt lidt lldt ltr lmsw clts invd wbinvd wbnoinvd invlpg wrmsr rdmsr
swapgs sysret sysexit mov_cr monitor mwait clac stac xsetbv vmlaunch vmresume vmxoff vmptrld vmclear
vmxon vmptrst vmread vmwrite invept invvpid invpcid rsm xrstors xrstors64 xsaves xsaves64 vmrun vmload
vmsave stgi clgi skinit invlpga invlpgb tlbsync enclv encls pconfig setssbsy enqcmds rmpadjust""".split())
# need CPL <= IOPL (in the kernel: allowed; for user code: #GP)
IOPL = set("in out insb insw insd outsb outsw outsd cli sti".split())


def mnemonic_semantics(mnems):
    out = []
    for m in mnems:
        cf, fr, fw = "none", 0, 0
        if m in ("jmp",):
            cf = "jmp"
        elif m == "call":
            cf = "call"
        elif m in ("ret",):
            cf = "ret"
        elif m == "retf":
            cf = "farRet"
        elif m in ("iret", "iretd", "iretq"):
            cf, fw = "iret", ALLF
        elif m == "sysret":
            cf, fw = "sysret", ALLF
        elif m == "syscall":
            cf = "syscall"
        elif m == "sysenter":
            cf = "sysenter"
        elif m == "sysexit":
            cf = "sysexit"
        elif m == "rsm":
            cf, fw = "sysret", ALLF
        elif m == "int":
            cf, fw = "interrupt", FL["IF"] | FL["TF"]
        elif m == "int3":
            cf, fw = "int3", FL["IF"] | FL["TF"]
        elif m == "int1":
            cf, fw = "int1", FL["IF"] | FL["TF"]
        elif m in ("ud0", "ud1", "ud2"):
            cf = "ud"
        elif m == "hlt":
            cf = "hlt"
        elif m == "xbegin":
            cf = "xbegin"
        elif m == "xabort":
            cf = "xabort"
        elif m in ("vmcall", "vmmcall", "vmlaunch", "vmresume", "vmfunc"):
            cf = "vmexit"
        elif m in ("loop",):
            cf = "loop"
        elif m in ("loope", "loopne"):
            cf, fr = "loop", FL["ZF"]
        elif m in ("jrcxz", "jecxz"):
            cf = "jcc"
        elif m.startswith("j") and m[1:] in COND:
            cf, fr = "jcc", COND[m[1:]]
        if m.startswith("set") and m[3:] in COND:
            fr = COND[m[3:]]
        if m.startswith("cmov") and m[4:] in COND:
            fr = COND[m[4:]]
        if m.startswith("fcmov"):
            fr = {"b": FL["CF"], "e": FL["ZF"], "be": FL["CF"] | FL["ZF"], "u": FL["PF"],
                  "nb": FL["CF"], "ne": FL["ZF"], "nbe": FL["CF"] | FL["ZF"], "nu": FL["PF"]}[m[5:]]
        if m in ("add", "sub", "cmp", "neg", "xadd", "cmpxchg", "and", "or", "xor", "test", "mul", "imul",
                 "div", "idiv", "shl", "shr", "sal", "sar", "bsf", "bsr", "tzcnt", "lzcnt", "popcnt",
                 "shld", "shrd", "andn", "bextr", "blsr", "blsmsk", "blsi", "bzhi", "comiss", "comisd",
                 "ucomiss", "ucomisd", "vcomiss", "vcomisd", "vucomiss", "vucomisd", "ptest", "vptest",
                 "vtestps", "vtestpd", "rdrand", "rdseed", "cmpsb", "cmpsw", "cmpsd", "cmpsq", "scasb",
                 "scasw", "scasd", "scasq", "pcmpestri", "pcmpestrm", "pcmpistri", "pcmpistrm",
                 "vpcmpestri", "vpcmpestrm", "vpcmpistri", "vpcmpistrm", "kortestw", "kortestb",
                 "kortestd", "kortestq", "ktestw", "ktestb", "ktestd", "ktestq", "bt", "bts", "btr",
                 "vmptrld", "vmclear", "vmxon", "vmptrst", "vmread", "vmwrite", "invept",
                 "invvpid", "vmxoff", "vmlaunch", "vmresume", "vmcall", "xtest"):
            fw |= ALL6
        if m in ("bt", "bts", "btr", "btc"):
            fw = ALL6 & ~FL["ZF"]
        if m == "syscall":
            fw = ALLF
        if m in ("adc", "sbb"):
            fr, fw = FL["CF"], ALL6
        if m in ("inc", "dec"):
            fw = ALL6 & ~FL["CF"]
        if m in ("rol", "ror"):
            fw = FL["CF"] | FL["OF"]
        if m in ("rcl", "rcr"):
            fr, fw = FL["CF"], FL["CF"] | FL["OF"]
        if m in ("clc", "stc"):
            fw = FL["CF"]
        if m == "cmc":
            fr, fw = FL["CF"], FL["CF"]
        if m in ("cld", "std"):
            fw = FL["DF"]
        if m in ("cli", "sti"):
            fw = FL["IF"]
        if m in ("clac", "stac"):
            fw = FL["AC"]
        if m == "sahf":
            fw = ALL6 & ~FL["OF"]
        if m == "lahf":
            fr = ALL6 & ~FL["OF"]
        if m in ("pushf", "pushfq"):
            fr = ALLF
        if m in ("popf", "popfq"):
            fw = ALLF
        if re.match(r"^(movs|cmps|scas|stos|lods|ins|outs)[bwdq]$", m):
            fr |= FL["DF"]
        if m == "adcx":
            fr, fw = FL["CF"], FL["CF"]
        if m == "adox":
            fr, fw = FL["OF"], FL["OF"]
        if m in ("cmpxchg8b", "cmpxchg16b", "lar", "lsl", "verr", "verw"):
            fw = FL["ZF"]
        if m in ("enqcmd", "enqcmds", "aesenc128kl", "aesdec128kl", "aesenc256kl", "aesdec256kl",
                 "aesencwide128kl", "aesdecwide128kl", "aesencwide256kl", "aesdecwide256kl", "encodekey128",
                 "encodekey256", "loadiwkey", "pconfig", "tpause", "umwait", "rmpadjust", "pvalidate",
                 "rmpupdate", "psmash", "blcfill", "blsfill", "blcs", "tzmsk", "blcic", "blsic", "t1mskc",
                 "blcmsk", "blci", "vucomish", "vcomish", "seamcall", "seamret", "seamops"):
            fw = ALL6
        if m in ("testui", "lwpins"):
            fw = FL["CF"]
        if m == "uiret":
            fw = ALLF
        if m in ("fcomi", "fcomip", "fucomi", "fucomip"):
            fw = ALL6
        if m in ("into",):
            fr = FL["OF"]
        pv = 1 if m in PRIV else (2 if m in IOPL else 0)
        out.append((CF[cf], fr, fw, pv))
    return out


if __name__ == "__main__":
    main()
