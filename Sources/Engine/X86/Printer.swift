// SPDX-License-Identifier: GPL-2.0-only
//
// Intel-syntax text of one decoded instruction, written as ASCII into memory the
// caller provides. One style: Zydis' Intel formatter with three properties set
// (every memory operand sized, lower-case hex, RIP-relative operands kept relative),
// which Tests/DecoderTests compares against instruction by instruction:
//
//     mov rax, qword ptr [rip+0x10]            lock cmpxchg qword ptr [rdi], rsi
//     call 0xffffffff81000000                  rep stosb
//     vpaddd zmm1 {k1}{z}, zmm2, dword ptr [rax+0x40]{1to16}
//
// Two departures from Zydis, in the Intel SDM's notation: `{z}` joins its mask
// (Zydis: `{k1} {z}`) and a broadcast joins its memory operand (Zydis: `] {1to16}`).
//
// Numbers are hexadecimal with at least two digits; immediates print unsigned at
// their operand width (`add eax, 0xffffffff`), displacements signed (`[rbp-0x08]`),
// branch targets and absolute addresses as 16-digit addresses.
//
// Kernel-safe: no allocation, no String, no arrays; the module's reports use it too.

/// ASCII into a fixed buffer. Text past the end is dropped, never written out of
/// bounds; `count` is how much was written.
public struct TextSink {
    public let buffer: UnsafeMutableRawBufferPointer
    public private(set) var count: Int = 0
    /// Set when some text did not fit.
    public private(set) var truncated = false

    public init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }

    @inline(__always) public mutating func byte(_ b: UInt8) {
        if count < buffer.count {
            buffer[count] = b
            count += 1
        } else {
            truncated = true
        }
    }

    public mutating func write(_ s: StaticString) {
        let p = s.utf8Start
        var i = 0
        while i < s.utf8CodeUnitCount {
            byte(p[i])
            i += 1
        }
    }

    /// Decimal, no sign (register numbers, scales, broadcast counts).
    public mutating func decimal(_ value: UInt64) {
        var divisor: UInt64 = 1
        while value / divisor >= 10 { divisor *= 10 }
        var v = value
        while divisor > 0 {
            byte(UInt8(truncatingIfNeeded: 48 + v / divisor))
            v %= divisor
            divisor /= 10
        }
    }

    /// `0x` and lower-case hex digits, zero-padded to `minDigits`.
    public mutating func hex(_ value: UInt64, minDigits: Int = 2) {
        byte(0x30)
        byte(0x78)
        var digits = 1
        while digits < 16 && value >> (4 * UInt64(digits)) != 0 { digits += 1 }
        if digits < minDigits { digits = minDigits > 16 ? 16 : minDigits }
        var i = digits - 1
        while i >= 0 {
            let nibble = UInt8(truncatingIfNeeded: value >> (4 * UInt64(i))) & 0xF
            byte(nibble < 10 ? 48 + nibble : 87 + nibble)
            i -= 1
        }
    }
}

public enum Printer {
    /// A buffer this long always holds the whole text of any instruction.
    public static let maxLength = 256

    /// Writes the text of `insn` into `buffer`; returns the number of bytes written.
    /// Decodes the operands itself.
    public static func format(_ insn: Instruction, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var ops = Operands()
        Decoder.decodeOperands(insn, into: &ops)
        return format(insn, operands: ops, into: buffer)
    }

    /// Writes the text of `insn`, whose operands the caller already decoded.
    public static func format(_ insn: Instruction, operands: Operands,
                              into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var sink = TextSink(buffer)
        write(insn, operands: operands, to: &sink)
        return sink.count
    }

    /// Appends the text of `insn` to `sink`.
    public static func write(_ insn: Instruction, operands ops: Operands, to sink: inout TextSink) {
        if insn.mnemonic == .invalid {
            sink.write("(bad)")
            return
        }
        writePrefixes(insn, ops, to: &sink)
        writeMnemonic(insn, to: &sink)

        let shown = visibleOperands(insn, ops)
        var first = !writeImplicitOperands(insn, to: &sink)
        var i = 0
        while i < ops.count {
            defer { i += 1 }
            if shown & (1 << i) == 0 { continue }
            sink.write(first ? " " : ", ")
            let op = ops[i]
            switch op.type {
            case .register: writeRegister(op.reg, to: &sink)
            case .memory: writeMemory(insn, op, to: &sink)
            case .immediate: writeImmediate(op, to: &sink)
            case .relative: sink.hex(UInt64(bitPattern: op.immediate), minDigits: 16)
            case .none: break
            }
            if insn.encoding == .evex {
                writeDecorators(insn, ops, index: i, first: first, shown: shown, to: &sink)
            }
            first = false
        }
    }

    // MARK: - prefixes and mnemonic

    static func writePrefixes(_ insn: Instruction, _ ops: Operands, to sink: inout TextSink) {
        if insn.encoding != .legacy { return }
        let p = insn.prefixes
        let f2 = insn.mandatoryPrefix == 3 || (p.has(Prefixes.repne) && insn.mandatoryPrefix != 2)
        let f3 = insn.mandatoryPrefix == 2 || (p.has(Prefixes.rep) && insn.mandatoryPrefix != 3)
        if p.has(Prefixes.lock) {
            // Hardware lock elision hints ride on F2/F3 before a locked instruction.
            if f2 { sink.write("xacquire ") } else if f3 { sink.write("xrelease ") }
            sink.write("lock ")
            return
        }
        if insn.map == .primary && insn.hasMemoryModRM {
            // xchg with memory is locked without a prefix; a store of mov releases.
            let isXchg = insn.opcode == 0x86 || insn.opcode == 0x87
            let isStore = insn.opcode == 0x88 || insn.opcode == 0x89 || insn.opcode == 0xC6 || insn.opcode == 0xC7
            if isXchg && f2 { sink.write("xacquire "); return }
            if (isXchg || isStore) && f3 { sink.write("xrelease "); return }
        }
        if isString(insn) {
            if f3 { sink.write(isCompareString(insn) ? "repe " : "rep ") } else if f2 { sink.write("repne ") }
            return
        }
        // VIA PadLock (0F A6/A7) repeats over rcx blocks, spelled with F3 like a string op.
        if f3 && insn.map == .map0F && (insn.opcode == 0xA6 || insn.opcode == 0xA7) {
            sink.write("rep ")
            return
        }
        if f2 && acceptsBND(insn) { sink.write("bnd ") }
        // CET: a DS prefix on an indirect near call or jmp means "no ENDBR needed".
        if insn.segmentOverride == 4 && isIndirectNear(insn) { sink.write("notrack ") }
    }

    static func writeMnemonic(_ insn: Instruction, to sink: inout TextSink) {
        switch insn.mnemonic {
        case .retf:
            sink.write("ret far")
        default:
            sink.write(insn.mnemonic.name)
            let cf = insn.controlFlow
            if cf == .farCall || cf == .farJmp { sink.write(" far") }
        }
    }

    /// String instructions (movs, cmps, stos, lods, scas, ins, outs): their operands
    /// are implicit and not shown.
    static func isString(_ insn: Instruction) -> Bool {
        if insn.map != .primary { return false }
        switch insn.opcode {
        case 0x6C...0x6F, 0xA4...0xA7, 0xAA...0xAF: return true
        default: return false
        }
    }

    static func isCompareString(_ insn: Instruction) -> Bool {
        insn.map == .primary && (insn.opcode == 0xA6 || insn.opcode == 0xA7 || insn.opcode == 0xAE || insn.opcode == 0xAF)
    }

    static func isIndirectNear(_ insn: Instruction) -> Bool {
        insn.map == .primary && insn.opcode == 0xFF && (insn.modrmReg == 2 || insn.modrmReg == 4)
    }

    /// MPX: F2 before a near branch keeps the bounds registers (`bnd jmp`). As in
    /// Zydis, not on jmp rel8 and the rcx-testing jumps.
    static func acceptsBND(_ insn: Instruction) -> Bool {
        switch insn.controlFlow {
        case .call, .callIndirect, .jmpIndirect: return true
        case .jmp: return !(insn.map == .primary && insn.opcode == 0xEB)
        case .jcc: return insn.mnemonic != .jrcxz && insn.mnemonic != .jecxz
        case .ret: return insn.mnemonic == .ret
        default: return false
        }
    }

    // MARK: - operands

    /// Bit i set: operand i is printed. Zydis hides operands that are implicit in the
    /// mnemonic (string instructions' rsi/rdi memory).
    static func visibleOperands(_ insn: Instruction, _ ops: Operands) -> UInt32 {
        var mask: UInt32 = 0
        var i = 0
        while i < ops.count {
            mask |= 1 << i
            i += 1
        }
        if isString(insn) { return 0 }
        // The legacy SSE4.1/SHA forms read xmm0 implicitly; their VEX forms name it.
        if insn.encoding == .legacy && ops.count == 3 && ops[2].type == .register && ops[2].reg == Register(.xmm, 0) {
            switch insn.mnemonic {
            case .pblendvb, .blendvps, .blendvpd, .sha256rnds2: mask &= ~(1 << 2)
            default: break
            }
        }
        return mask
    }

    /// SVM, SEV-SNP and a few other AMD instructions take their operands in rAX, rCX,
    /// rDX implicitly; Zydis (and AMD's manual) write them out. Returns whether
    /// anything was written.
    static func writeImplicitOperands(_ insn: Instruction, to sink: inout TextSink) -> Bool {
        let a64 = insn.addressSize == 64
        switch insn.mnemonic {
        case .vmrun, .vmload, .vmsave, .clzero:
            sink.write(a64 ? " rax" : " eax")
        case .skinit:
            sink.write(" eax")
        case .invlpga:
            sink.write(a64 ? " rax, ecx" : " eax, ecx")
        case .invlpgb:
            sink.write(a64 ? " rax, edx, ecx" : " eax, edx, ecx")
        // SEV-SNP: the RMP instructions, as Zydis writes them.
        case .pvalidate:
            sink.write(a64 ? " rax, ecx, edx" : " eax, ecx, edx")
        case .rmpadjust:
            sink.write(" rax, rcx, rdx")
        case .rmpupdate:
            sink.write(" rax, rcx")
        case .psmash:
            sink.write(" rax")
        default:
            return false
        }
        return true
    }

    static func writeMemory(_ insn: Instruction, _ op: Operand, to sink: inout TextSink) {
        let m = op.mem
        if showsSize(insn) { writeSizeKeyword(Int(m.size), to: &sink) }
        if m.segment == 4 { sink.write("fs:") } else if m.segment == 5 { sink.write("gs:") }
        sink.byte(0x5B) // [
        if m.base.cls == .none && m.index.cls == .none {
            // An absolute address (disp32 or moffs): shown as an address, 16 digits.
            var address = UInt64(bitPattern: m.disp)
            if insn.addressSize == 32 { address &= 0xFFFF_FFFF }
            sink.hex(address, minDigits: 16)
        } else {
            if m.base.cls != .none { writeRegister(m.base, to: &sink) }
            if m.index.cls != .none {
                if m.base.cls != .none { sink.byte(0x2B) } // +
                writeRegister(m.index, to: &sink)
                sink.byte(0x2A) // *
                sink.decimal(UInt64(m.scale == 0 ? 1 : m.scale))
            }
            if m.disp > 0 {
                sink.byte(0x2B)
                sink.hex(UInt64(m.disp))
            } else if m.disp < 0 {
                sink.byte(0x2D) // -
                sink.hex(0 &- UInt64(bitPattern: m.disp))
            }
        }
        sink.byte(0x5D) // ]
    }

    /// lea and the MPX bound forms compute an address and read nothing: no size.
    static func showsSize(_ insn: Instruction) -> Bool {
        switch insn.mnemonic {
        case .lea, .bndmk, .bndcl, .bndcu, .bndcn, .bndldx, .bndstx: return false
        default: return true
        }
    }

    static func writeSizeKeyword(_ bytes: Int, to sink: inout TextSink) {
        switch bytes {
        case 1: sink.write("byte ptr ")
        case 2: sink.write("word ptr ")
        case 4: sink.write("dword ptr ")
        case 6: sink.write("fword ptr ")
        case 8: sink.write("qword ptr ")
        case 10: sink.write("tbyte ptr ")
        case 16: sink.write("xmmword ptr ")
        case 32: sink.write("ymmword ptr ")
        case 64: sink.write("zmmword ptr ")
        default: break  // descriptor tables, FPU/XSAVE areas: no keyword
        }
    }

    static func writeImmediate(_ op: Operand, to sink: inout TextSink) {
        var value = UInt64(bitPattern: op.immediate)
        if op.size > 0 && op.size < 64 { value &= (1 << UInt64(op.size)) - 1 }
        sink.hex(value)
    }

    // MARK: - EVEX decorators

    /// `{k1}{z}` after the first operand, `{1to16}` after a broadcast memory operand,
    /// `{rn-sae}` / `{sae}` after the last register operand of a register-only form.
    static func writeDecorators(_ insn: Instruction, _ ops: Operands, index: Int, first: Bool,
                                shown: UInt32, to sink: inout TextSink) {
        let op = ops[index]
        if first && insn.evexMask != 0 {
            sink.write(" {k")
            sink.decimal(UInt64(insn.evexMask))
            sink.byte(0x7D) // }
            if insn.evexZeroing { sink.write("{z}") }
        }
        if op.type == .memory {
            if op.mem.broadcast && op.mem.size > 0 {
                sink.write("{1to")
                sink.decimal(UInt64(broadcastCount(insn, elementBytes: Int(op.mem.size))))
                sink.byte(0x7D)
            }
            return
        }
        if op.type == .immediate || !insn.evexBroadcast || insn.hasMemoryModRM { return }
        // Embedded rounding or suppress-all-exceptions goes after the last register
        // operand (before a trailing immediate).
        var next = index + 1
        while next < ops.count && shown & (1 << next) == 0 { next += 1 }
        if next < ops.count && ops[next].type != .immediate { return }
        if isSAEOnly(insn.mnemonic) {
            sink.write(" {sae}")
            return
        }
        switch insn.vectorLength {
        case 0: sink.write(" {rn-sae}")
        case 1: sink.write(" {rd-sae}")
        case 2: sink.write(" {ru-sae}")
        default: sink.write(" {rz-sae}")
        }
    }

    /// Elements a broadcast fills: the vector (half of it for the widening
    /// conversions) over the element size.
    static func broadcastCount(_ insn: Instruction, elementBytes: Int) -> Int {
        var vector = 16 << Int(insn.vectorLength > 2 ? 2 : insn.vectorLength)
        switch insn.mnemonic {
        case .vcvtdq2pd, .vcvtudq2pd, .vcvtps2pd, .vcvtps2qq, .vcvtps2uqq, .vcvttps2qq, .vcvttps2uqq:
            vector /= 2
        default: break
        }
        return vector / elementBytes
    }

    /// Instructions that take {sae} but no rounding control.
    static func isSAEOnly(_ m: Mnemonic) -> Bool {
        switch m {
        case .vcmppd, .vcmpps, .vcmpsd, .vcmpss, .vcomisd, .vcomiss, .vucomisd, .vucomiss,
             .vmaxpd, .vmaxps, .vmaxsd, .vmaxss, .vminpd, .vminps, .vminsd, .vminss,
             .vmaxph, .vminph, .vmaxsh, .vminsh,
             .vcvtps2pd, .vcvtss2sd, .vcvtph2ps, .vcvtps2ph,
             .vcvttpd2dq, .vcvttpd2qq, .vcvttpd2udq, .vcvttpd2uqq,
             .vcvttps2dq, .vcvttps2qq, .vcvttps2udq, .vcvttps2uqq,
             .vcvttsd2si, .vcvttsd2usi, .vcvttss2si, .vcvttss2usi,
             .vgetexppd, .vgetexpps, .vgetexpsd, .vgetexpss,
             .vgetmantpd, .vgetmantps, .vgetmantsd, .vgetmantss,
             .vrndscalepd, .vrndscaleps, .vrndscalesd, .vrndscaless,
             .vreducepd, .vreduceps, .vreducesd, .vreducess,
             .vrangepd, .vrangeps, .vrangesd, .vrangess,
             .vfixupimmpd, .vfixupimmps, .vfixupimmsd, .vfixupimmss:
            return true
        default:
            return false
        }
    }

    // MARK: - registers

    /// Register names as Intel and Zydis write them (`r8d`, `xmm17`, `st3`, `k1`).
    public static func writeRegister(_ r: Register, to sink: inout TextSink) {
        let i = r.index
        switch r.cls {
        case .none: sink.write("(none)")
        case .gpr8:
            if i < 4 { sink.write(legacyName8(i)) } else if i < 8 { sink.write(legacyName16(i)); sink.byte(0x6C) } // spl..dil
            else { numbered("r", i, "b", to: &sink) }
        case .gpr8High:
            switch i & 3 {
            case 0: sink.write("ah")
            case 1: sink.write("ch")
            case 2: sink.write("dh")
            default: sink.write("bh")
            }
        case .gpr16:
            if i < 8 { sink.write(legacyName16(i)) } else { numbered("r", i, "w", to: &sink) }
        case .gpr32:
            if i < 8 { sink.byte(0x65); sink.write(legacyName16(i)) } else { numbered("r", i, "d", to: &sink) }
        case .gpr64:
            if i < 8 { sink.byte(0x72); sink.write(legacyName16(i)) } else { numbered("r", i, "", to: &sink) }
        case .rip: sink.write("rip")
        case .eip: sink.write("eip")
        case .segment:
            switch i {
            case 0: sink.write("es")
            case 1: sink.write("cs")
            case 2: sink.write("ss")
            case 3: sink.write("ds")
            case 4: sink.write("fs")
            default: sink.write("gs")
            }
        case .control: numbered("cr", i, "", to: &sink)
        case .debug: numbered("dr", i, "", to: &sink)
        case .mmx: numbered("mm", i, "", to: &sink)
        case .xmm: numbered("xmm", i, "", to: &sink)
        case .ymm: numbered("ymm", i, "", to: &sink)
        case .zmm: numbered("zmm", i, "", to: &sink)
        case .mask: numbered("k", i, "", to: &sink)
        case .x87: numbered("st", i, "", to: &sink)
        case .bound: numbered("bnd", i, "", to: &sink)
        case .tmm: numbered("tmm", i, "", to: &sink)
        }
    }

    @inline(__always) static func numbered(_ prefix: StaticString, _ n: UInt8, _ suffix: StaticString,
                                           to sink: inout TextSink) {
        sink.write(prefix)
        sink.decimal(UInt64(n))
        sink.write(suffix)
    }

    /// ax cx dx bx sp bp si di: the 16-bit names, from which e../r.. and ..l derive.
    static func legacyName16(_ i: UInt8) -> StaticString {
        switch i & 7 {
        case 0: return "ax"
        case 1: return "cx"
        case 2: return "dx"
        case 3: return "bx"
        case 4: return "sp"
        case 5: return "bp"
        case 6: return "si"
        default: return "di"
        }
    }

    static func legacyName8(_ i: UInt8) -> StaticString {
        switch i & 3 {
        case 0: return "al"
        case 1: return "cl"
        case 2: return "dl"
        default: return "bl"
        }
    }
}
