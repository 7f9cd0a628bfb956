// Operand decoding (second, on-demand step) driven by the opcode-table operand specs.

/// Operand addressing kinds (must match KINDS in tools/gen_tables.py).
enum OpKind {
    static let none = 0, E = 1, M = 2, R = 3, G = 4, V = 5, W = 6, U = 7, H = 8
    static let L = 9, P = 10, Q = 11, N = 12, C = 13, D = 14, S = 15, B = 16
    static let I = 17, I2 = 18, J = 19, O = 20, X = 21, Y = 22, Z = 23, ACC = 24
    static let CL = 25, DX = 26, ONE = 27, SEG = 28, ST0 = 29, STi = 30, XMM0 = 31
    static let KG = 32, KE = 33, KH = 34, VSIB = 35, BG = 36, BE = 37, KR = 38
    static let TG = 39, TR = 40, TH = 41
}

/// Operand size codes (must match SIZES in tools/gen_tables.py).
enum OpSize {
    static let none = 0, b = 1, w = 2, d = 3, q = 4, v = 5, z = 6, y = 7, dq = 8
    static let qq = 9, x = 10, xh = 11, xq = 12, ss = 13, sd = 14, ps = 15, pd = 16
    static let pi = 17, s = 18, p = 19, t = 20, e = 21, st = 22, fx = 23, xs = 24
    static let m = 25, dw = 26, db = 27, xo = 28, xdup = 29, cl = 30
}

extension Decoder {
    /// Decode the explicit operands of an instruction previously filled by `decode`.
    public static func decodeOperands(_ insn: Instruction, into ops: inout Operands) {
        ops = Operands()
        if insn.mnemonic == .invalid { return }
        let d = insn.opcodeDescriptor
        var n = 0
        var k = 0
        while k < 4 {
            let spec = d.operand(k)
            k += 1
            if spec == 0 { break }
            var op = Operand()
            if decodeOne(insn, spec: spec, into: &op) {
                // EVEX merge-masking keeps unselected destination elements: the destination is read too.
                if n == 0 && insn.encoding == .evex && insn.evexMask != 0 && !insn.evexZeroing
                    && op.access & OperandAccess.write != 0 && op.type == .register && op.reg.cls != .mask {
                    op.access |= OperandAccess.read
                }
                ops.items[n] = op
                n += 1
            }
        }
        ops.count = n
    }

    /// Vector register width in bytes for VEX/EVEX L (legacy SSE: 16).
    @inline(__always) static func vectorBytes(_ insn: Instruction) -> Int {
        if insn.encoding == .legacy { return 16 }
        if insn.encoding == .evex && insn.evexBroadcast && !insn.hasMemoryModRM {
            return 64 // register form with embedded rounding: 512-bit
        }
        switch insn.vectorLength {
        case 0: return 16
        case 1: return 32
        default: return 64
        }
    }

    @inline(__always) static func vectorClass(bytes: Int) -> RegisterClass {
        bytes >= 64 ? .zmm : (bytes >= 32 ? .ymm : .xmm)
    }

    /// Size in bytes of an operand of size code `sz` (memory form).
    static func sizeBytes(_ insn: Instruction, _ sz: Int) -> Int {
        let os = Int(insn.operandSize) / 8
        let vl = vectorBytes(insn)
        switch sz {
        case OpSize.b, OpSize.db: return 1
        case OpSize.w, OpSize.dw: return 2
        case OpSize.d, OpSize.ss: return 4
        case OpSize.q, OpSize.sd, OpSize.pi: return 8
        case OpSize.v: return os
        case OpSize.z: return os > 4 ? 4 : os
        case OpSize.y: return insn.rexW ? 8 : 4
        case OpSize.dq: return 16
        case OpSize.qq: return 32
        case OpSize.x, OpSize.ps, OpSize.pd: return vl
        case OpSize.xh: return vl / 2
        case OpSize.xq: return vl / 4
        case OpSize.xo: return vl / 8
        case OpSize.xdup: return vl == 16 ? 8 : vl
        case OpSize.s: return 10
        case OpSize.p: return 2 + os
        case OpSize.t: return 10
        case OpSize.e: return 28
        case OpSize.st: return 108
        case OpSize.fx: return 512
        case OpSize.cl: return 64
        default: return 0
        }
    }

    /// Register width in bytes for a register operand of size code `sz`.
    static func regBytes(_ insn: Instruction, _ sz: Int) -> Int {
        switch sz {
        case OpSize.dw, OpSize.db: return 4
        case OpSize.ss, OpSize.sd, OpSize.d, OpSize.q, OpSize.w, OpSize.b, OpSize.dq, OpSize.xo:
            return 16
        case OpSize.xh, OpSize.xq:
            let b = sizeBytes(insn, sz)
            return b < 16 ? 16 : b
        case OpSize.xdup: return vectorBytes(insn)
        default: return sizeBytes(insn, sz)
        }
    }

    @inline(__always) static func gpr(_ insn: Instruction, _ index: UInt8, bytes: Int) -> Register {
        switch bytes {
        case 1:
            if insn.rex == 0 && insn.encoding == .legacy && index >= 4 && index < 8 { return Register(.gpr8High, index) }
            return Register(.gpr8, index)
        case 2: return Register(.gpr16, index)
        case 4: return Register(.gpr32, index)
        default: return Register(.gpr64, index)
        }
    }

    static func memoryOperand(_ insn: Instruction, size: Int, into op: inout Operand, vsib: Int) {
        var m = MemoryOperand()
        let a64 = insn.addressSize == 64
        let gcls: RegisterClass = a64 ? .gpr64 : .gpr32
        let mod = insn.modrm >> 6
        let rm = insn.modrm & 7
        var disp = insn.disp
        if insn.hasSIB {
            let sib = insn.sib
            let base = sib & 7
            let idx = ((sib >> 3) & 7) | (insn.rexX << 3)
            if !(base == 5 && mod == 0) { m.base = Register(gcls, base | (insn.rexB << 3)) }
            if vsib != 0 {
                var ib = vectorBytes(insn)
                if vsib == 1 && insn.rexW && ib > 16 { ib /= 2 }   // dword indices, qword elements
                let vidx = idx | (insn.encoding == .evex ? ((insn.vvvv >> 4) & 1) << 4 : 0)
                m.index = Register(vectorClass(bytes: ib), vidx)
                m.scale = 1 << (sib >> 6)
            } else if idx != 4 {
                m.index = Register(gcls, idx)
                m.scale = 1 << (sib >> 6)
            }
        } else if mod == 0 && rm == 5 {
            m.base = Register(a64 ? .rip : .eip, 0)
        } else {
            m.base = Register(gcls, rm | (insn.rexB << 3))
        }
        var sz = size
        if insn.encoding == .evex {
            if insn.evexBroadcast {
                // FP16 maps (5/6) broadcast 16-bit elements
                sz = (insn.map == .evexMap5 || insn.map == .evexMap6) ? 2 : (insn.rexW ? 8 : 4)
                switch insn.mnemonic {
                case .vfmulcph, .vfcmulcph, .vfmaddcph, .vfcmaddcph: sz = 4  // complex FP16 pairs
                case .vrndscaleph, .vgetmantph, .vreduceph, .vfpclassph, .vcmpph: sz = 2  // FP16 in map 0F3A
                default: break
                }
                m.broadcast = true
            }
            if insn.dispSize == 1 {
                // disp8*N: N is the memory operand size (full / half / quarter vector, scalar,
                // tuple), the element size with broadcast, and the element size for compress/expand.
                var n = sz
                switch insn.mnemonic {
                case .vcompressps, .vcompresspd, .vpcompressd, .vpcompressq, .vexpandps, .vexpandpd, .vpexpandd, .vpexpandq:
                    n = insn.rexW ? 8 : 4
                case .vpcompressb, .vpexpandb: n = 1
                case .vpcompressw, .vpexpandw: n = 2
                default: break
                }
                disp = disp * Int64(n > 0 ? n : 1)
            }
        }
        m.disp = disp
        m.size = UInt16(sz)
        if insn.segmentOverride != 0 { m.segment = insn.segmentOverride - 1 }
        op.type = .memory
        op.mem = m
        op.size = UInt16(sz * 8)
    }

    static func decodeOne(_ insn: Instruction, spec: UInt16, into op: inout Operand) -> Bool {
        let kind = Int(spec & 0x3F)
        op.access = UInt8((spec >> 6) & 3)
        let sz = Int(spec >> 8)
        let reg = insn.modrmReg | (insn.rexR << 3)
        let rmReg = insn.modrmRM | (insn.rexB << 3)
        let isMem = insn.hasMemoryModRM
        let evex = insn.encoding == .evex
        switch kind {
        case OpKind.E, OpKind.M, OpKind.R:
            if isMem { memoryOperand(insn, size: sizeBytes(insn, sz), into: &op, vsib: 0); return true }
            let b = regBytes(insn, sz) > 8 ? sizeBytes(insn, sz) : regBytes(insn, sz)
            op.type = .register
            op.reg = gpr(insn, rmReg, bytes: sz == OpSize.dw || sz == OpSize.db ? 4 : b)
            op.size = op.reg.bits
        case OpKind.G:
            op.type = .register
            op.reg = gpr(insn, reg, bytes: sizeBytes(insn, sz))
            op.size = op.reg.bits
        case OpKind.B:
            op.type = .register
            op.reg = gpr(insn, insn.vvvv & 15, bytes: sizeBytes(insn, sz))
            op.size = op.reg.bits
        case OpKind.V:
            op.type = .register
            op.reg = Register(vectorClass(bytes: regBytes(insn, sz)), reg | (evex ? insn.evexR2 << 4 : 0))
            op.size = op.reg.bits
        case OpKind.W, OpKind.U:
            if isMem { memoryOperand(insn, size: sizeBytes(insn, sz), into: &op, vsib: 0); return true }
            op.type = .register
            op.reg = Register(vectorClass(bytes: regBytes(insn, sz)), rmReg | (evex ? insn.rexX << 4 : 0))
            op.size = op.reg.bits
        case OpKind.H:
            op.type = .register
            op.reg = Register(vectorClass(bytes: regBytes(insn, sz)), insn.vvvv & (evex ? 31 : 15))
            op.size = op.reg.bits
        case OpKind.L:
            op.type = .register
            op.reg = Register(vectorClass(bytes: regBytes(insn, sz)), UInt8(truncatingIfNeeded: insn.imm >> 4) & 15)
            op.size = op.reg.bits
        case OpKind.P:
            op.type = .register; op.reg = Register(.mmx, insn.modrmReg); op.size = 64
        case OpKind.Q, OpKind.N:
            if isMem { memoryOperand(insn, size: sizeBytes(insn, sz), into: &op, vsib: 0); return true }
            op.type = .register; op.reg = Register(.mmx, insn.modrmRM); op.size = 64
        case OpKind.C:
            op.type = .register; op.reg = Register(.control, reg); op.size = 64
        case OpKind.D:
            op.type = .register; op.reg = Register(.debug, reg); op.size = 64
        case OpKind.S:
            op.type = .register; op.reg = Register(.segment, insn.modrmReg); op.size = 16
        case OpKind.KG:
            op.type = .register; op.reg = Register(.mask, insn.modrmReg); op.size = 64
        case OpKind.KR, OpKind.KE:
            if isMem { memoryOperand(insn, size: sizeBytes(insn, sz), into: &op, vsib: 0); return true }
            op.type = .register; op.reg = Register(.mask, insn.modrmRM); op.size = 64
        case OpKind.KH:
            op.type = .register; op.reg = Register(.mask, insn.vvvv & 7); op.size = 64
        case OpKind.BG:
            op.type = .register; op.reg = Register(.bound, insn.modrmReg); op.size = 128
        case OpKind.BE:
            if isMem { memoryOperand(insn, size: 16, into: &op, vsib: 0); return true }
            op.type = .register; op.reg = Register(.bound, insn.modrmRM); op.size = 128
        case OpKind.TG:
            op.type = .register; op.reg = Register(.tmm, insn.modrmReg); op.size = 8192
        case OpKind.TR:
            op.type = .register; op.reg = Register(.tmm, insn.modrmRM); op.size = 8192
        case OpKind.TH:
            op.type = .register; op.reg = Register(.tmm, insn.vvvv & 7); op.size = 8192
        case OpKind.VSIB:
            memoryOperand(insn, size: insn.rexW ? 8 : 4, into: &op, vsib: sz == OpSize.d ? 1 : 2)
        case OpKind.I:
            op.type = .immediate
            let bytes = Int(insn.immSize)
            op.size = UInt16(bytes * 8)
            op.immediate = Int64(bitPattern: insn.imm)
            // Byte / dword immediates are sign-extended to the operand size where the
            // destination is wider (83 /x, 6A, 6B, imul, Iz with REX.W).
            if bytes < 8 && bytes > 0 {
                let wide = Int(insn.operandSize) / 8 > bytes && signExtends(insn)
                if wide {
                    let shift = Int64(64 - bytes * 8)
                    op.immediate = Int64(bitPattern: insn.imm << UInt64(shift)) >> shift
                    op.size = UInt16(insn.operandSize)
                }
            }
        case OpKind.I2:
            op.type = .immediate; op.size = 8; op.immediate = Int64(insn.imm2)
        case OpKind.J:
            op.type = .relative
            let bytes = Int(insn.immSize)
            let shift = UInt64(64 - bytes * 8)
            let rel = Int64(bitPattern: insn.imm << shift) >> Int64(shift)
            var target = insn.nextAddress &+ UInt64(bitPattern: rel)
            if insn.operandSize == 16 && insn.mnemonic == .xbegin { target &= 0xFFFF_FFFF_FFFF_FFFF }
            op.immediate = Int64(bitPattern: target)
            op.size = 64
        case OpKind.O:
            var m = MemoryOperand()
            m.disp = insn.immSize == 4 ? Int64(Int32(truncatingIfNeeded: insn.imm)) : Int64(bitPattern: insn.imm)
            m.size = UInt16(sizeBytes(insn, sz))
            if insn.segmentOverride != 0 { m.segment = insn.segmentOverride - 1 }
            op.type = .memory; op.mem = m; op.size = m.size * 8
        case OpKind.X, OpKind.Y:
            var m = MemoryOperand()
            let a64 = insn.addressSize == 64
            m.base = Register(a64 ? .gpr64 : .gpr32, kind == OpKind.X ? 6 : 7)
            m.size = UInt16(sizeBytes(insn, sz))
            if kind == OpKind.Y { m.segment = 0 } else if insn.segmentOverride != 0 { m.segment = insn.segmentOverride - 1 } else { m.segment = 3 }
            op.type = .memory; op.mem = m; op.size = m.size * 8
        case OpKind.Z:
            op.type = .register
            op.reg = gpr(insn, (insn.opcode & 7) | (insn.rexB << 3), bytes: sizeBytes(insn, sz))
            op.size = op.reg.bits
        case OpKind.ACC:
            op.type = .register
            op.reg = gpr(insn, 0, bytes: sizeBytes(insn, sz))
            op.size = op.reg.bits
        case OpKind.CL:
            op.type = .register; op.reg = Register(.gpr8, 1); op.size = 8
        case OpKind.DX:
            op.type = .register; op.reg = Register(.gpr16, 2); op.size = 16
        case OpKind.ONE:
            op.type = .immediate; op.immediate = 1; op.size = 8
        case OpKind.SEG:
            op.type = .register; op.reg = Register(.segment, UInt8(sz)); op.size = 16
        case OpKind.ST0:
            op.type = .register; op.reg = Register(.x87, 0); op.size = 80
        case OpKind.STi:
            op.type = .register; op.reg = Register(.x87, insn.modrmRM); op.size = 80
        case OpKind.XMM0:
            op.type = .register; op.reg = Register(.xmm, 0); op.size = 128
        default:
            return false
        }
        return true
    }

    /// Whether an 8/32-bit immediate is sign-extended to the operand size.
    @inline(__always) static func signExtends(_ insn: Instruction) -> Bool {
        if insn.map != .primary { return false }
        switch insn.opcode {
        case 0x05, 0x0D, 0x15, 0x1D, 0x25, 0x2D, 0x35, 0x3D, 0x68, 0x69, 0x6A, 0x6B, 0x81, 0x83, 0xA9, 0xC7, 0xF7:
            return true
        default:
            return false
        }
    }
}
