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
