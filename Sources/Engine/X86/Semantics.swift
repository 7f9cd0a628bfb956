// Derived semantic helpers (memory accesses) built on the decoded instruction/operands.

/// Summary of the memory touched by one instruction.
public struct MemoryAccessSummary: Sendable {
    /// Explicit memory operand reads / writes (count of operands and total bytes).
    public var explicitReads: UInt8 = 0
    public var explicitWrites: UInt8 = 0
    public var readBytes: UInt32 = 0
    public var writeBytes: UInt32 = 0
    /// Implicit stack traffic (push/pop/call/ret/enter/leave/pushf/popf/iret/int).
    public var stackReadBytes: UInt16 = 0
    public var stackWriteBytes: UInt16 = 0
    public init() {}
}

extension Instruction {
    /// Implicit stack reads / writes in bytes (64-bit mode).
    public var implicitStackAccess: (read: UInt16, write: UInt16) {
        let os = UInt16(operandSize) / 8
        switch mnemonic {
        case .push, .pushf, .pushfq: return (0, os)
        case .pop, .popf, .popfq: return (os, 0)
        case .call: return (0, 8)
        case .ret: return (8, 0)
        case .retf: return (16, 0)
        case .iret: return (10, 0)
        case .iretd: return (20, 0)
        case .iretq: return (40, 0)
        case .leave: return (8, 0)
        case .enter: return (0, 8)
        case .int, .int3, .int1: return (0, 40)
        default: break
        }
        if map == .primary && opcode == 0xFF && modrmReg == 3 { return (0, 16) } // far call
        return (0, 0)
    }
}

extension Decoder {
    /// Memory reads and writes of `insn`, given its decoded operands.
    public static func memoryAccesses(_ insn: Instruction, operands ops: Operands) -> MemoryAccessSummary {
        var s = MemoryAccessSummary()
        let noAccess = insn.mnemonic == .lea || insn.mnemonic == .nop || insn.mnemonic == .prefetch
            || insn.mnemonic == .prefetchw || insn.mnemonic == .prefetchnta || insn.mnemonic == .prefetcht0
            || insn.mnemonic == .prefetcht1 || insn.mnemonic == .prefetcht2 || insn.mnemonic == .invlpg
            || insn.mnemonic == .clflush || insn.mnemonic == .clflushopt || insn.mnemonic == .clwb
            || insn.mnemonic == .cldemote || insn.mnemonic == .prefetchwt1
        var i = 0
        while i < ops.count {
            let o = ops[i]
            i += 1
            if o.type != .memory || noAccess { continue }
            if o.isRead { s.explicitReads += 1; s.readBytes += UInt32(o.mem.size) }
            if o.isWritten { s.explicitWrites += 1; s.writeBytes += UInt32(o.mem.size) }
        }
        let st = insn.implicitStackAccess
        s.stackReadBytes = st.read
        s.stackWriteBytes = st.write
        return s
    }
}

/// Registers read and written by one instruction (explicit + implicit).
public struct RegisterAccessSummary: Sendable, Equatable {
    /// General-purpose registers, bit i = GPR i (rax=0, rcx=1, ... r15=15); ah..bh count as rax..rbx.
    public var gprRead: UInt16 = 0
    public var gprWritten: UInt16 = 0
    /// Vector registers (xmm/ymm/zmm i -> bit i).
    public var vectorRead: UInt32 = 0
    public var vectorWritten: UInt32 = 0
    /// Mask registers k0-k7 (including an EVEX write mask, which is read).
    public var maskRead: UInt8 = 0
    public var maskWritten: UInt8 = 0
    public init() {}
}

extension Decoder {
    @inline(__always) static func gprBit(_ r: Register) -> UInt16 {
        switch r.cls {
        case .gpr8High: return 1 << UInt16(r.index - 4)
        case .gpr8, .gpr16, .gpr32, .gpr64: return 1 << UInt16(r.index & 15)
        default: return 0
        }
    }

    /// Register reads and writes of `insn` (explicit operands, address registers, implicit registers).
    public static func registerAccesses(_ insn: Instruction, operands ops: Operands) -> RegisterAccessSummary {
        var s = RegisterAccessSummary()
        let d = insn.opcodeDescriptor
        s.gprRead = d.implicitRead
        s.gprWritten = d.implicitWritten
        if insn.isRepeated || (insn.prefixes.has(Prefixes.addressSize) && (insn.mnemonic == .jecxz)) {
            if insn.isRepeated { s.gprRead |= 2; s.gprWritten |= 2 }
        }
        if insn.encoding == .evex && insn.evexMask != 0 { s.maskRead |= 1 << insn.evexMask }
        var i = 0
        while i < ops.count {
            let o = ops[i]
            i += 1
            switch o.type {
            case .register:
                let r = o.reg
                switch r.cls {
                case .gpr8, .gpr8High, .gpr16, .gpr32, .gpr64:
                    if o.isRead { s.gprRead |= gprBit(r) }
                    if o.isWritten { s.gprWritten |= gprBit(r) }
                case .xmm, .ymm, .zmm:
                    if o.isRead { s.vectorRead |= 1 << UInt32(r.index & 31) }
                    if o.isWritten { s.vectorWritten |= 1 << UInt32(r.index & 31) }
                case .mask:
                    if o.isRead { s.maskRead |= 1 << (r.index & 7) }
                    if o.isWritten { s.maskWritten |= 1 << (r.index & 7) }
                default:
                    break
                }
            case .memory:
                s.gprRead |= gprBit(o.mem.base) | gprBit(o.mem.index)
                if o.mem.index.cls == .xmm || o.mem.index.cls == .ymm || o.mem.index.cls == .zmm {
                    s.vectorRead |= 1 << UInt32(o.mem.index.index & 31)
                }
            default:
                break
            }
        }
        return s
    }
}
