// Table-driven x86-64 decoder (64-bit mode).
// Reads only the generated tables in Tables.generated.swift; never reads past the
// caller's buffer, never allocates.

// MARK: - table access (hex text in StaticString literals)

@inline(__always) func hexNibble(_ c: UInt8) -> Int {
    let v = Int(c) - 48
    return v > 9 ? v - 7 : v
}

// The table readers convert 2 or 4 hex digits at once (SWAR): for '0'-'9' (0x30-0x39) the
// value is the low nibble; for 'A'-'F' (0x41-0x46) bit 6 is set and the value is the low
// nibble + 9. One unaligned load, no branch: these run several times per decoded instruction.
@inline(__always) func tableU8(_ s: StaticString, _ charOffset: Int) -> Int {
    let v = UnsafeRawPointer(s.utf8Start + charOffset).loadUnaligned(as: UInt16.self)
    let n = (v & 0x0F0F) &+ 9 &* ((v >> 6) & 0x0101)   // byte 0: first digit, byte 1: second
    return Int((n & 0xFF) << 4 | n >> 8)
}

@inline(__always) func tableU16(_ s: StaticString, _ charOffset: Int) -> Int {
    let v = UnsafeRawPointer(s.utf8Start + charOffset).loadUnaligned(as: UInt32.self)
    let n = (v & 0x0F0F_0F0F) &+ 9 &* ((v >> 6) & 0x0101_0101)
    let t = n << 4 | n >> 8                             // byte 0: high byte, byte 2: low byte
    return Int((t & 0xFF) << 8 | (t >> 16) & 0xFF)
}

/// Decoded opcode-table descriptor.
public struct OpcodeDescriptor: Sendable {
    public var mnemonic: UInt16
    public var op0: UInt16, op1: UInt16, op2: UInt16, op3: UInt16
    public var imm1: UInt8, imm2: UInt8
    public var attributes: UInt8
    /// Implicit general-purpose registers read / written (bit i = GPR i: rax=0 ... r15=15).
    public var implicitRead: UInt16
    public var implicitWritten: UInt16

    @inline(__always) init(index: Int) {
        let o = index * 36
        let t = Tables.descs
        mnemonic = UInt16(tableU16(t, o))
        op0 = UInt16(tableU16(t, o + 4))
        op1 = UInt16(tableU16(t, o + 8))
        op2 = UInt16(tableU16(t, o + 12))
        op3 = UInt16(tableU16(t, o + 16))
        imm1 = UInt8(tableU8(t, o + 22))
        imm2 = UInt8(tableU8(t, o + 20))
        attributes = UInt8(tableU8(t, o + 24))
        implicitRead = UInt16(tableU16(t, o + 26))
        implicitWritten = UInt16(tableU16(t, o + 30))
    }

    @inline(__always) public func operand(_ i: Int) -> UInt16 {
        switch i {
        case 0: return op0
        case 1: return op1
        case 2: return op2
        default: return op3
        }
    }
}

/// The descriptor fields the length step needs.
struct DescriptorHead {
    var mnemonic: UInt16
    var imm1: UInt8, imm2: UInt8
    var attributes: UInt8
    let offset: Int
    @inline(__always) init(index: Int) {
        let o = index * 36
        let t = Tables.descs
        offset = o
        mnemonic = UInt16(tableU16(t, o))
        imm2 = UInt8(tableU8(t, o + 20))
        imm1 = UInt8(tableU8(t, o + 22))
        attributes = UInt8(tableU8(t, o + 24))
    }
    // Read only by the VSIB/EVEX checks: not on the path of most instructions.
    @inline(__always) var attributes2: UInt8 { UInt8(tableU8(Tables.descs, offset + 34)) }
    @inline(__always) var op0: UInt16 { UInt16(tableU16(Tables.descs, offset + 4)) }
}

/// Immediate codes (see gen_tables.py IMM).
enum ImmCode {
    static let none: UInt8 = 0, b: UInt8 = 1, w: UInt8 = 2, z: UInt8 = 3, v: UInt8 = 4
    static let jb: UInt8 = 5, jz: UInt8 = 6, moffs: UInt8 = 7, jx: UInt8 = 8, b3dn: UInt8 = 9, d: UInt8 = 10
}

public enum Decoder {
    /// Maximum x86 instruction length.
    public static let maxLength = 15

    /// Fast step: prefixes, opcode, ModRM/SIB/displacement, immediates, mnemonic.
    /// Fills `insn` (length, mnemonic, prefixes, raw fields). Operands: `decodeOperands`.
    public static func decodeLength(bytes: UnsafeRawBufferPointer, address: UInt64,
                                    into insn: inout Instruction) -> DecodeStatus {
        return decode(bytes: bytes, address: address, into: &insn)
    }

    /// Decode one instruction at the start of `bytes` (64-bit mode).
    public static func decode(bytes: UnsafeRawBufferPointer, address: UInt64,
                              into insn: inout Instruction) -> DecodeStatus {
        insn = Instruction()
        insn.address = address
        let avail = bytes.count
        let limit = avail < maxLength ? avail : maxLength
        var i = 0

        // ---- legacy prefixes and REX
        var prefixes: UInt16 = 0
        var lastRep: UInt8 = 0
        var rex: UInt8 = 0
        var seg: UInt8 = 0
        var count: UInt8 = 0
        prefixLoop: while true {
            if let s = need(i, 1, limit) { return s }
            let b = bytes[i]
            switch b {
            case 0xF0: prefixes |= Prefixes.lock
            case 0xF2: prefixes |= Prefixes.repne; lastRep = 0xF2
            case 0xF3: prefixes |= Prefixes.rep; lastRep = 0xF3
            case 0x26: prefixes |= Prefixes.segment; seg = 1
            case 0x2E: prefixes |= Prefixes.segment; seg = 2
            case 0x36: prefixes |= Prefixes.segment; seg = 3
            case 0x3E: prefixes |= Prefixes.segment; seg = 4
            case 0x64: prefixes |= Prefixes.segment; seg = 5
            case 0x65: prefixes |= Prefixes.segment; seg = 6
            case 0x66: prefixes |= Prefixes.operandSize
            case 0x67: prefixes |= Prefixes.addressSize
            case 0x40...0x4F:
                // REX counts only when it immediately precedes the opcode.
                rex = b
                i += 1
                count += 1
                if let s = need(i, 1, limit) { return s }
                let nb = bytes[i]
                if nb >= 0x40 && nb <= 0x4F { continue prefixLoop }
                switch nb {
                case 0xF0, 0xF2, 0xF3, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67:
                    rex = 0
                    continue prefixLoop
                default:
                    break prefixLoop
                }
            default:
                break prefixLoop
            }
            rex = 0
            i += 1
            count += 1
        }
        if rex != 0 {
            prefixes |= Prefixes.rex
            insn.rex = rex
            insn.rexW = rex & 8 != 0
            insn.rexR = (rex >> 2) & 1
            insn.rexX = (rex >> 1) & 1
            insn.rexB = rex & 1
        }
        insn.prefixCount = count
        insn.segmentOverride = seg

        var mandatory: UInt8 = 0
        if lastRep == 0xF3 { mandatory = 2 } else if lastRep == 0xF2 { mandatory = 3 } else if prefixes & Prefixes.operandSize != 0 { mandatory = 1 }

        // ---- opcode / escape / VEX / EVEX / XOP
        if let s = need(i, 1, limit) { return s }
        var map = 0
        var opc = bytes[i]
        i += 1
        var encoding = Encoding.legacy
        if opc == 0x0F {
            if let s = need(i, 1, limit) { return s }
            let b2 = bytes[i]
            i += 1
            if b2 == 0x38 || b2 == 0x3A {
                if let s = need(i, 1, limit) { return s }
                map = b2 == 0x38 ? 2 : 3
                opc = bytes[i]
                i += 1
            } else {
                map = 1
                opc = b2
            }
        } else if opc == 0xC4 || opc == 0xC5 || opc == 0x62 || (opc == 0x8F && i < limit && bytes[i] & 0x38 != 0) {
            // VEX / EVEX / XOP: no REX, 66, F2, F3 or LOCK allowed before them.
            if rex != 0 || prefixes & (Prefixes.operandSize | Prefixes.rep | Prefixes.repne | Prefixes.lock) != 0 {
                return .invalid
            }
            if opc == 0xC5 {
                if let s = need(i, 2, limit) { return s }
                let b1 = bytes[i]
                insn.rexR = (~b1 >> 7) & 1
                insn.vvvv = (~b1 >> 3) & 15
                insn.vectorLength = (b1 >> 2) & 1
                mandatory = b1 & 3
                map = 4
                encoding = .vex
                prefixes |= Prefixes.vex
                i += 1
            } else if opc == 0xC4 || opc == 0x8F {
                if let s = need(i, 3, limit) { return s }
                let b1 = bytes[i], b2 = bytes[i + 1]
                insn.rexR = (~b1 >> 7) & 1
                insn.rexX = (~b1 >> 6) & 1
                insn.rexB = (~b1 >> 5) & 1
                let mm = b1 & 0x1F
                insn.rexW = b2 & 0x80 != 0
                insn.vvvv = (~b2 >> 3) & 15
                insn.vectorLength = (b2 >> 2) & 1
                mandatory = b2 & 3
                if opc == 0xC4 {
                    if mm < 1 || mm > 3 { return .invalid }
                    map = 3 + Int(mm)
                    encoding = .vex
                    prefixes |= Prefixes.vex
                } else {
                    if mm < 8 || mm > 10 { return .invalid }
                    map = 4 + Int(mm)
                    encoding = .xop
                    prefixes |= Prefixes.xop
                }
                i += 2
            } else {
                // EVEX: 62 P0 P1 P2 opcode
                if let s = need(i, 4, limit) { return s }
                let p0 = bytes[i], p1 = bytes[i + 1], p2 = bytes[i + 2]
                if p0 & 0x08 != 0 || p1 & 0x04 == 0 { return .invalid }
                insn.rexR = (~p0 >> 7) & 1
                insn.rexX = (~p0 >> 6) & 1
                insn.rexB = (~p0 >> 5) & 1
                insn.evexR2 = (~p0 >> 4) & 1
                let mm = p0 & 7
                switch mm {
                case 1, 2, 3: map = 6 + Int(mm)
                case 5: map = 10
                case 6: map = 11
                default: return .invalid
                }
                insn.rexW = p1 & 0x80 != 0
                insn.vvvv = ((~p1 >> 3) & 15) | (((~p2 >> 3) & 1) << 4)
                mandatory = p1 & 3
                insn.evexZeroing = p2 & 0x80 != 0
                insn.vectorLength = (p2 >> 5) & 3
                insn.evexBroadcast = p2 & 0x10 != 0
                insn.evexMask = p2 & 7
                encoding = .evex
                prefixes |= Prefixes.evex
                i += 3
            }
            opc = bytes[i]
            i += 1
        }
        insn.prefixes = Prefixes(raw: prefixes)
        insn.encoding = encoding
        insn.mandatoryPrefix = mandatory
        insn.opcode = opc

        // xchg r8, rax (REX.B + 90) is not nop/pause.
        var lookupOpc = Int(opc)
        if map == 0 && opc == 0x90 && insn.rexB != 0 && mandatory != 2 { lookupOpc = 0x91 }
        let rootIndex = map * 256 + lookupOpc
        var ref = tableU16(Tables.roots, rootIndex * 4)
        let rflags = tableU8(Tables.rootFlags, rootIndex * 2)
        if ref == 0 { insn.map = OpcodeMap(rawValue: UInt8(map)) ?? .primary; return .invalid }

        // ---- ModRM, SIB, displacement
        let addr32 = prefixes & Prefixes.addressSize != 0
        insn.addressSize = addr32 ? 32 : 64
        if rflags & 1 != 0 {
            if let s = need(i, 1, limit) { return s }
            let m = bytes[i]
            i += 1
            insn.hasModRM = true
            insn.modrm = m
            let mod = m >> 6
            if mod != 3 && rflags & 2 == 0 {
                let rm = m & 7
                var dispSize = 0
                if rm == 4 {
                    if let s = need(i, 1, limit) { return s }
                    let sib = bytes[i]
                    i += 1
                    insn.hasSIB = true
                    insn.sib = sib
                    if mod == 0 && sib & 7 == 5 { dispSize = 4 }
                }
                if mod == 0 && rm == 5 { dispSize = 4 }
                if mod == 1 { dispSize = 1 }
                if mod == 2 { dispSize = 4 }
                if dispSize != 0 {
                    if let s = need(i, dispSize, limit) { return s }
                    insn.dispOffset = UInt8(i)
                    insn.dispSize = UInt8(dispSize)
                    insn.disp = readSigned(bytes, i, dispSize)
                    i += dispSize
                }
            }
        }

        // ---- walk the decision tree
        let w: Int = insn.rexW ? 1 : 0
        let osIndex: Int = insn.rexW && encoding == .legacy ? 2 : (prefixes & Prefixes.operandSize != 0 ? 0 : 1)
        var desc = -1
        var steps = 0
        while steps < 12 {
            steps += 1
            let no = (ref - 1) * 6
            let kind = tableU8(Tables.nodes, no)
            let arg = tableU16(Tables.nodes, no + 2)
            var v = 0
            switch kind {
            case 1: desc = arg
            case 2: v = Int(mandatory)
            case 3: v = Int(insn.modrm >> 3) & 7
            case 4: v = (insn.modrm >> 6 == 3 || rflags & 2 != 0) ? 1 : 0
            case 5: v = Int(insn.modrm) & 7
            case 6: v = w
            case 7: v = Int(insn.vectorLength)
            case 8: v = osIndex
            case 9: v = addr32 ? 0 : 1
            default: return .invalid
            }
            if desc >= 0 { break }
            ref = tableU16(Tables.links, (arg + v) * 4)
            if ref == 0 { insn.map = OpcodeMap(rawValue: UInt8(map)) ?? .primary; return .invalid }
        }
        if desc < 0 { return .invalid }
        // Only the fields needed now (operands are read on demand by decodeOperands).
        let d = DescriptorHead(index: desc)
        insn.descriptor = UInt16(desc)
        insn.attributes = d.attributes | (rflags & 2 != 0 ? DescAttr.modrmRegOnly : 0)
        insn.mnemonic = Mnemonic(rawValue: d.mnemonic) ?? .invalid

        // ---- effective operand size
        var osize: UInt8 = 32
        if d.attributes & DescAttr.force64 != 0 {
            osize = 64
        } else if encoding == .legacy {
            if insn.rexW { osize = 64 } else if prefixes & Prefixes.operandSize != 0 { osize = 16 } else if d.attributes & DescAttr.default64 != 0 { osize = 64 }
        } else {
            osize = insn.rexW ? 64 : 32
        }
        insn.operandSize = osize

        // ---- immediates
        var immSz = immediateSize(d.imm1, osize: osize, addr32: addr32, opsize16: prefixes & Prefixes.operandSize != 0)
        if map == 3 || map == 6 || map == 9 || map == 12 { if immSz == 0 { immSz = 1 } }
        if immSz != 0 {
            if let s = need(i, immSz, limit) { return s }
            insn.immOffset = UInt8(i)
            insn.immSize = UInt8(immSz)
            insn.imm = readUnsigned(bytes, i, immSz)
            i += immSz
        }
        let imm2Sz = immediateSize(d.imm2, osize: osize, addr32: addr32, opsize16: false)
        if imm2Sz != 0 {
            if let s = need(i, imm2Sz, limit) { return s }
            insn.imm2Size = UInt8(imm2Sz)
            insn.imm2 = bytes[i]
            i += imm2Sz
        }
        insn.length = UInt8(i)
        insn.map = OpcodeMap(rawValue: UInt8(map)) ?? .primary

        // ---- 3DNow!: the immediate byte selects the operation
        if d.imm1 == ImmCode.b3dn {
            let r3 = tableU16(Tables.roots, (15 * 256 + Int(insn.imm & 0xFF)) * 4)
            if r3 == 0 { return .invalid }
            let no = (r3 - 1) * 6
            let d3 = DescriptorHead(index: tableU16(Tables.nodes, no + 2))
            insn.mnemonic = Mnemonic(rawValue: d3.mnemonic) ?? .invalid
            insn.encoding = .threeDNow
        }

        // ---- encodings the CPU rejects with #UD
        if encoding != .legacy && d.attributes & DescAttr.usesVVVV == 0 {
            let mask: UInt8 = d.attributes & DescAttr.vsib != 0 ? 15 : 31
            if insn.vvvv & mask != 0 { return .invalid }
        }
        if map == 1 && (opc & 0xFC) == 0x20 {
            let r = insn.modrmReg | (insn.rexR << 3)
            if opc & 1 == 0 {
                if !(r == 0 || r == 2 || r == 3 || r == 4 || r == 8) { return .invalid }  // CR
            } else if r > 7 {
                return .invalid  // DR8-15
            }
        }
        if map == 0 && (opc == 0x8C || opc == 0x8E) {
            let r = insn.modrmReg
            if r > 5 || (opc == 0x8E && r == 1) { return .invalid }  // no mov cs, no sreg 6/7
        }

        if map == 1 && (opc == 0x1A || opc == 0x1B) && insn.mnemonic != .nop {
            // MPX: only bnd0-bnd3; no RIP-relative bndldx/bndstx
            if insn.modrmReg | (insn.rexR << 3) > 3 { return .invalid }
            if insn.modrm >> 6 == 3 && insn.modrmRM | (insn.rexB << 3) > 3 && insn.mnemonic == .bndmov { return .invalid }
            if (insn.mnemonic == .bndldx || insn.mnemonic == .bndstx) && insn.isRIPRelative { return .invalid }
        }
        if d.attributes & DescAttr.vsib != 0 && !insn.hasSIB { return .invalid }  // VSIB needs a SIB byte
        if d.attributes & DescAttr.vsib != 0 && Int(d.op0 & 0x3F) == OpKind.V {
            // gathers: destination, index (and VEX mask) registers must differ
            let evex = encoding == .evex
            let dst = insn.modrmReg | (insn.rexR << 3) | (evex ? insn.evexR2 << 4 : 0)
            let idx = ((insn.sib >> 3) & 7) | (insn.rexX << 3) | (evex ? ((insn.vvvv >> 4) & 1) << 4 : 0)
            if dst == idx { return .invalid }
            if !evex && (dst == insn.vvvv & 15 || idx == insn.vvvv & 15) { return .invalid }
        }
        if encoding == .evex {
            let k0 = Int(d.op0 & 0x3F)
            let memDest = insn.hasMemoryModRM && (k0 == OpKind.W || k0 == OpKind.M || k0 == OpKind.E || k0 == OpKind.VSIB)
            let maskDest = k0 == OpKind.KG
            if insn.evexZeroing && (insn.evexMask == 0 || memDest || maskDest) { return .invalid }
            if insn.evexBroadcast && insn.hasMemoryModRM && d.attributes2 & 1 == 0 { return .invalid }
            if d.attributes & DescAttr.vsib != 0 && insn.evexMask == 0 { return .invalid }
            if insn.evexBroadcast && !insn.hasMemoryModRM && d.attributes2 & 2 == 0 { return .invalid }
            if insn.vectorLength == 3 && !(insn.evexBroadcast && !insn.hasMemoryModRM) { return .invalid }
            if d.attributes2 & 4 != 0 && insn.evexMask != 0 { return .invalid }
        }
        if encoding != .legacy && !validMaskRegisters(insn, descriptor: desc) { return .invalid }

        // ---- LOCK only on lockable instructions with a memory destination
        if prefixes & Prefixes.lock != 0 {
            if d.attributes & DescAttr.lockable == 0 || !insn.hasMemoryModRM { return .invalid }
        }
        return .ok
    }

    /// Mask (k0-k7) and tile (tmm0-7) operands: VEX.R / EVEX.R' and vvvv bit 3 must be clear for them
    /// (VEX.B is ignored for a mask r/m operand).
    static func validMaskRegisters(_ insn: Instruction, descriptor: Int) -> Bool {
        let d = OpcodeDescriptor(index: descriptor)
        var k = 0
        while k < 4 {
            let kind = Int(d.operand(k) & 0x3F)
            k += 1
            if kind == 0 { break }
            if kind == OpKind.KG && (insn.rexR != 0 || insn.evexR2 != 0) { return false }
            if kind == OpKind.KH && insn.vvvv > 7 { return false }
            if kind == OpKind.TG && insn.rexR != 0 { return false }
            if kind == OpKind.TR && insn.rexB != 0 { return false }
            if kind == OpKind.TH && insn.vvvv > 7 { return false }
        }
        return true
    }

    /// nil when `k` more bytes at offset `i` are available, else the failure status.
    @inline(__always) static func need(_ i: Int, _ k: Int, _ limit: Int) -> DecodeStatus? {
        if i + k <= limit { return nil }
        return (i + k > maxLength) ? .tooLong : .truncated
    }

    @inline(__always) static func immediateSize(_ code: UInt8, osize: UInt8, addr32: Bool, opsize16: Bool) -> Int {
        switch code {
        case ImmCode.b, ImmCode.jb, ImmCode.b3dn: return 1
        case ImmCode.w: return 2
        case ImmCode.z: return osize == 16 ? 2 : 4
        case ImmCode.v: return osize == 16 ? 2 : (osize == 64 ? 8 : 4)
        case ImmCode.jz, ImmCode.d: return 4
        case ImmCode.jx: return opsize16 ? 2 : 4
        case ImmCode.moffs: return addr32 ? 4 : 8
        default: return 0
        }
    }

    @inline(__always) static func readUnsigned(_ b: UnsafeRawBufferPointer, _ at: Int, _ size: Int) -> UInt64 {
        // The caller checked that `size` bytes are there: one little-endian load.
        switch size {
        case 1: return UInt64(b[at])
        case 2: return UInt64(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
        case 4: return UInt64(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
        case 8: return UInt64(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt64.self))
        default: break
        }
        var v: UInt64 = 0
        var k = size - 1
        while k >= 0 {
            v = (v << 8) | UInt64(b[at + k])
            k -= 1
        }
        return v
    }

    @inline(__always) static func readSigned(_ b: UnsafeRawBufferPointer, _ at: Int, _ size: Int) -> Int64 {
        let u = readUnsigned(b, at, size)
        let shift = UInt64(64 - size * 8)
        return Int64(bitPattern: u << shift) >> Int64(shift)
    }
}

extension Instruction {
    /// Control-flow class.
    public var controlFlow: ControlFlow {
        let o = Int(mnemonic.rawValue) * 12
        var cf = ControlFlow(rawValue: UInt8(tableU8(Tables.semantics, o))) ?? .none
        // Indirect forms of call / jmp (FF /2 /3 /4 /5).
        if map == .primary && opcode == 0xFF {
            switch modrmReg {
            case 2: cf = .callIndirect
            case 3: cf = .farCall
            case 4: cf = .jmpIndirect
            case 5: cf = .farJmp
            default: break
            }
        }
        return cf
    }

    /// SSE movsd/cmpsd share their mnemonic with the string instructions.
    @inline(__always) var isSSEStringNameAlias: Bool {
        map != .primary && (mnemonic == .movsd || mnemonic == .cmpsd)
    }

    /// RFLAGS bits read (Flag.*).
    public var flagsRead: UInt16 {
        if isSSEStringNameAlias { return 0 }
        var f = UInt16(tableU16(Tables.semantics, Int(mnemonic.rawValue) * 12 + 2))
        // repe/repne cmps/scas test ZF to terminate
        if isRepeated && map == .primary && (opcode == 0xA6 || opcode == 0xA7 || opcode == 0xAE || opcode == 0xAF) {
            f |= Flag.zf
        }
        return f
    }

    /// RFLAGS bits written or left undefined (Flag.*).
    public var flagsWritten: UInt16 {
        if isSSEStringNameAlias { return 0 }
        return UInt16(tableU16(Tables.semantics, Int(mnemonic.rawValue) * 12 + 6))
    }

    /// Needs CPL 0 (or is a privileged system instruction).
    public var isPrivileged: Bool {
        if attributes & DescAttr.privileged != 0 { return true }
        return tableU8(Tables.semantics, Int(mnemonic.rawValue) * 12 + 10) == 1
    }

    /// IOPL-sensitive (in/out/ins/outs/cli/sti): allowed at CPL 0, #GP in user mode with IOPL 0.
    public var isIOPLSensitive: Bool {
        tableU8(Tables.semantics, Int(mnemonic.rawValue) * 12 + 10) == 2
    }

    /// Has REP/REPE (F3) or REPNE (F2) semantics (string instructions only).
    public var isRepeated: Bool {
        attributes & DescAttr.repeatable != 0 && (prefixes.has(Prefixes.rep) || prefixes.has(Prefixes.repne))
    }

    /// Target of a direct relative branch (jmp/call/jcc/loop/jrcxz/xbegin rel8/rel16/rel32), else nil.
    /// Does not need `decodeOperands`.
    public var directBranchTarget: UInt64? {
        let code = DescriptorHead(index: Int(descriptor)).imm1
        if code != ImmCode.jb && code != ImmCode.jz && code != ImmCode.jx { return nil }
        if immSize == 0 { return nil }
        let shift = UInt64(64 - Int(immSize) * 8)
        let rel = Int64(bitPattern: imm << shift) >> Int64(shift)
        return nextAddress &+ UInt64(bitPattern: rel)
    }

    /// Absolute address referenced by a RIP-relative ModRM memory operand, else nil.
    public var ripRelativeTarget: UInt64? {
        if !isRIPRelative { return nil }
        let t = nextAddress &+ UInt64(bitPattern: disp)
        return addressSize == 32 ? t & 0xFFFF_FFFF : t
    }

    /// Opcode descriptor from the table.
    public var opcodeDescriptor: OpcodeDescriptor { OpcodeDescriptor(index: Int(descriptor)) }
}

extension Decoder {
    /// Length-only decode: the length of the instruction at the start of `bytes`, or 0 where
    /// `decode` does not return `.ok` (undefined, truncated, too long, #UD). The same answer
    /// as `decode` (decoder-diff checks it on every instruction of the corpus, the fuzzer on
    /// random bytes), without filling an `Instruction`: the legacy encodings take this short
    /// path; VEX/EVEX/XOP, 8F (pop r/m or XOP), 3DNow!, moves to and from CR/DR/Sreg, MPX and
    /// VSIB forms, whose #UD rules need the full instruction, go through `decode`.
    public static func instructionLength(bytes: UnsafeRawBufferPointer) -> Int {
        let avail = bytes.count
        let limit = avail < maxLength ? avail : maxLength
        var i = 0
        var prefixes: UInt16 = 0
        var lastRep: UInt8 = 0
        var rex: UInt8 = 0
        prefixLoop: while true {
            if i >= limit { return 0 }
            let b = bytes[i]
            switch b {
            case 0xF0: prefixes |= Prefixes.lock
            case 0xF2: prefixes |= Prefixes.repne; lastRep = 0xF2
            case 0xF3: prefixes |= Prefixes.rep; lastRep = 0xF3
            case 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65: break
            case 0x66: prefixes |= Prefixes.operandSize
            case 0x67: prefixes |= Prefixes.addressSize
            case 0x40...0x4F:
                // REX counts only when it immediately precedes the opcode.
                rex = b
                i += 1
                continue prefixLoop
            default:
                break prefixLoop
            }
            rex = 0
            i += 1
        }
        var mandatory = 0
        if lastRep == 0xF3 { mandatory = 2 } else if lastRep == 0xF2 { mandatory = 3 } else if prefixes & Prefixes.operandSize != 0 { mandatory = 1 }

        if i >= limit { return 0 }
        var map = 0
        var opc = bytes[i]
        i += 1
        if opc == 0x0F {
            if i >= limit { return 0 }
            let b2 = bytes[i]
            i += 1
            if b2 == 0x38 || b2 == 0x3A {
                if i >= limit { return 0 }
                map = b2 == 0x38 ? 2 : 3
                opc = bytes[i]
                i += 1
            } else {
                map = 1
                opc = b2
            }
        } else if opc == 0xC4 || opc == 0xC5 || opc == 0x62 || opc == 0x8F {
            return lengthByDecode(bytes)
        }
        let rexW = rex & 8 != 0
        var lookupOpc = Int(opc)
        if map == 0 && opc == 0x90 && rex & 1 != 0 && mandatory != 2 { lookupOpc = 0x91 }
        let rootIndex = map * 256 + lookupOpc
        var ref = tableU16(Tables.roots, rootIndex * 4)
        if ref == 0 { return 0 }
        let rflags = tableU8(Tables.rootFlags, rootIndex * 2)

        let addr32 = prefixes & Prefixes.addressSize != 0
        var modrm: UInt8 = 0
        if rflags & 1 != 0 {
            if i >= limit { return 0 }
            modrm = bytes[i]
            i += 1
            let mod = modrm >> 6
            if mod != 3 && rflags & 2 == 0 {
                var dispSize = 0
                if modrm & 7 == 4 {
                    if i >= limit { return 0 }
                    if mod == 0 && bytes[i] & 7 == 5 { dispSize = 4 }
                    i += 1
                } else if mod == 0 && modrm & 7 == 5 {
                    dispSize = 4
                }
                if mod == 1 { dispSize = 1 } else if mod == 2 { dispSize = 4 }
                i += dispSize
                if i > limit { return 0 }
            }
        }

        let osIndex: Int = rexW ? 2 : (prefixes & Prefixes.operandSize != 0 ? 0 : 1)
        var desc = -1
        var steps = 0
        while steps < 12 {
            steps += 1
            let no = (ref - 1) * 6
            let kind = tableU8(Tables.nodes, no)
            let arg = tableU16(Tables.nodes, no + 2)
            var v = 0
            switch kind {
            case 1: desc = arg
            case 2: v = mandatory
            case 3: v = Int(modrm >> 3) & 7
            case 4: v = (modrm >> 6 == 3 || rflags & 2 != 0) ? 1 : 0
            case 5: v = Int(modrm) & 7
            case 6: v = rexW ? 1 : 0
            case 7: v = 0  // vector length: legacy encodings have none
            case 8: v = osIndex
            case 9: v = addr32 ? 0 : 1
            default: return 0
            }
            if desc >= 0 { break }
            ref = tableU16(Tables.links, (arg + v) * 4)
            if ref == 0 { return 0 }
        }
        if desc < 0 { return 0 }
        let d = DescriptorHead(index: desc)
        if d.imm1 == ImmCode.b3dn || d.attributes & DescAttr.vsib != 0
            || (map == 1 && ((opc & 0xFC) == 0x20 || opc == 0x1A || opc == 0x1B))
            || (map == 0 && (opc == 0x8C || opc == 0x8E)) {
            return lengthByDecode(bytes)
        }
        var osize: UInt8 = 32
        if d.attributes & DescAttr.force64 != 0 || rexW {
            osize = 64
        } else if prefixes & Prefixes.operandSize != 0 {
            osize = 16
        } else if d.attributes & DescAttr.default64 != 0 {
            osize = 64
        }
        var immSz = immediateSize(d.imm1, osize: osize, addr32: addr32, opsize16: prefixes & Prefixes.operandSize != 0)
        if map == 3 && immSz == 0 { immSz = 1 }
        i += immSz + immediateSize(d.imm2, osize: osize, addr32: addr32, opsize16: false)
        if i > limit { return 0 }
        if prefixes & Prefixes.lock != 0 {
            let regOnly = (d.attributes | (rflags & 2 != 0 ? DescAttr.modrmRegOnly : 0)) & DescAttr.modrmRegOnly != 0
            let memory = rflags & 1 != 0 && modrm >> 6 != 3 && !regOnly
            if d.attributes & DescAttr.lockable == 0 || !memory { return 0 }
        }
        return i
    }

    @inline(never) static func lengthByDecode(_ bytes: UnsafeRawBufferPointer) -> Int {
        var insn = Instruction()
        return decode(bytes: bytes, address: 0, into: &insn) == .ok ? Int(insn.length) : 0
    }
}
