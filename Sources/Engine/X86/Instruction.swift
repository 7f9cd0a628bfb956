// x86-64 instruction model for kdbt.
// Kernel-safe: plain value types only (no classes, no String, no arrays, no existentials).

/// Result of a decode call.
public enum DecodeStatus: UInt8, Sendable {
    case ok = 0
    /// The buffer ends before the instruction does (fewer than 15 bytes were available).
    case truncated = 1
    /// Undefined / reserved opcode, illegal prefix combination, or LOCK on a non-lockable instruction.
    case invalid = 2
    /// The instruction would be longer than 15 bytes.
    case tooLong = 3
}

/// How the instruction was encoded.
public enum Encoding: UInt8, Sendable {
    case legacy = 0, vex = 1, evex = 2, xop = 3, threeDNow = 4
}

/// Opcode map (index into the generated tables).
public enum OpcodeMap: UInt8, Sendable {
    case primary = 0, map0F = 1, map0F38 = 2, map0F3A = 3
    case vex0F = 4, vex0F38 = 5, vex0F3A = 6
    case evex0F = 7, evex0F38 = 8, evex0F3A = 9, evexMap5 = 10, evexMap6 = 11
    case xop8 = 12, xop9 = 13, xopA = 14
    case threeDNow = 15
}

/// Prefix bits present on the instruction.
public struct Prefixes: Sendable, Equatable {
    public var raw: UInt16
    public init(raw: UInt16 = 0) { self.raw = raw }
    public static let lock: UInt16 = 1
    public static let rep: UInt16 = 2        // F3
    public static let repne: UInt16 = 4      // F2
    public static let operandSize: UInt16 = 8  // 66
    public static let addressSize: UInt16 = 16 // 67
    public static let segment: UInt16 = 32   // any segment override
    public static let rex: UInt16 = 64
    public static let vex: UInt16 = 128
    public static let evex: UInt16 = 256
    public static let xop: UInt16 = 512
    @inline(__always) public func has(_ bit: UInt16) -> Bool { (raw & bit) != 0 }
}

/// Control-flow class of an instruction.
public enum ControlFlow: UInt8, Sendable {
    case none = 0, jmp, jmpIndirect, call, callIndirect, jcc, ret, farRet, iret, sysret, syscall
    case sysenter, sysexit, interrupt, int3, int1, ud, hlt, farJmp, farCall, xbegin, loop, xabort, vmexit
}

/// RFLAGS bits used in `flagsRead` / `flagsWritten`.
public enum Flag {
    public static let cf: UInt16 = 1, pf: UInt16 = 2, af: UInt16 = 4, zf: UInt16 = 8
    public static let sf: UInt16 = 16, of: UInt16 = 32, df: UInt16 = 64, `if`: UInt16 = 128
    public static let tf: UInt16 = 256, ac: UInt16 = 512, nt: UInt16 = 1024, rf: UInt16 = 2048
    public static let id: UInt16 = 4096, iopl: UInt16 = 8192
    public static let status: UInt16 = 63
}

/// One decoded instruction: fixed-size plain value filled by `Decoder.decode`.
public struct Instruction: Sendable {
    public var address: UInt64 = 0
    public var length: UInt8 = 0
    public var mnemonic: Mnemonic = .invalid
    public var encoding: Encoding = .legacy
    public var map: OpcodeMap = .primary
    public var opcode: UInt8 = 0
    public var prefixes: Prefixes = Prefixes()
    /// Last segment override prefix: 0 none, else SegmentRegister index + 1 (es=1 ... gs=6).
    public var segmentOverride: UInt8 = 0
    /// Mandatory prefix used for table selection: 0 none, 1 = 66, 2 = F3, 3 = F2 (VEX/EVEX: pp).
    public var mandatoryPrefix: UInt8 = 0
    public var prefixCount: UInt8 = 0
    /// REX byte (0 if none).
    public var rex: UInt8 = 0
    /// REX/VEX/EVEX register extension bits.
    public var rexW: Bool = false
    public var rexR: UInt8 = 0
    public var rexX: UInt8 = 0
    public var rexB: UInt8 = 0
    /// EVEX.R' (bit 4 of the ModRM.reg register number).
    public var evexR2: UInt8 = 0
    /// VEX/EVEX/XOP vvvv (un-inverted, EVEX.V' included as bit 4).
    public var vvvv: UInt8 = 0
    /// VEX.L / EVEX.L'L (0: 128, 1: 256, 2: 512).
    public var vectorLength: UInt8 = 0
    public var evexMask: UInt8 = 0
    public var evexZeroing: Bool = false
    public var evexBroadcast: Bool = false
    public var hasModRM: Bool = false
    public var modrm: UInt8 = 0
    public var hasSIB: Bool = false
    public var sib: UInt8 = 0
    /// Effective operand size in bits (16/32/64).
    public var operandSize: UInt8 = 32
    /// Effective address size in bits (32/64).
    public var addressSize: UInt8 = 64
    public var dispOffset: UInt8 = 0
    public var dispSize: UInt8 = 0
    public var disp: Int64 = 0
    public var immOffset: UInt8 = 0
    public var immSize: UInt8 = 0
    public var imm: UInt64 = 0
    public var imm2Size: UInt8 = 0
    public var imm2: UInt8 = 0
    /// Index of the opcode-table descriptor.
    public var descriptor: UInt16 = 0
    /// Descriptor attribute bits (DescAttr).
    public var attributes: UInt8 = 0

    public init() {}

    @inline(__always) public var modrmMod: UInt8 { modrm >> 6 }
    @inline(__always) public var modrmReg: UInt8 { (modrm >> 3) & 7 }
    @inline(__always) public var modrmRM: UInt8 { modrm & 7 }
    /// ModRM addresses memory (mod != 3).
    @inline(__always) public var hasMemoryModRM: Bool {
        hasModRM && modrm >> 6 != 3 && (attributes & DescAttr.modrmRegOnly) == 0
    }
    /// RIP-relative memory operand.
    public var isRIPRelative: Bool { hasMemoryModRM && modrm & 0xC7 == 0x05 }
    /// Address of the next instruction.
    @inline(__always) public var nextAddress: UInt64 { address &+ UInt64(length) }
}

/// Descriptor attribute bits (from the opcode table).
public enum DescAttr {
    public static let default64: UInt8 = 1
    public static let force64: UInt8 = 2
    public static let lockable: UInt8 = 4
    public static let repeatable: UInt8 = 8
    public static let modrmRegOnly: UInt8 = 16
    public static let privileged: UInt8 = 32
    public static let usesVVVV: UInt8 = 64
    public static let vsib: UInt8 = 128
}

// MARK: - Registers

public enum RegisterClass: UInt8, Sendable {
    case none = 0
    case gpr8      // al cl dl bl spl bpl sil dil r8b..r15b
    case gpr8High  // ah ch dh bh (index 4..7)
    case gpr16, gpr32, gpr64
    case rip, eip
    case segment   // es cs ss ds fs gs
    case control, debug
    case mmx, xmm, ymm, zmm
    case mask      // k0-k7
    case x87       // st0-st7
    case bound     // bnd0-bnd3
    case tmm       // AMX tiles tmm0-tmm7
}

public struct Register: Sendable, Equatable {
    public var cls: RegisterClass
    public var index: UInt8
    @inline(__always) public init(_ cls: RegisterClass, _ index: UInt8) { self.cls = cls; self.index = index }
    public static let none = Register(.none, 0)
    /// Width in bits (0 for none).
    public var bits: UInt16 {
        switch cls {
        case .none: return 0
        case .gpr8, .gpr8High: return 8
        case .gpr16, .segment: return 16
        case .gpr32, .eip: return 32
        case .gpr64, .rip, .control, .debug, .mmx, .mask: return 64
        case .xmm, .bound: return 128
        case .ymm: return 256
        case .zmm: return 512
        case .x87: return 80
        case .tmm: return 8192
        }
    }
}

// MARK: - Operands

public enum OperandType: UInt8, Sendable {
    case none = 0, register, memory, immediate
    /// Relative branch: `immediate` holds the resolved absolute target address.
    case relative
}

public enum OperandAccess {
    public static let read: UInt8 = 1
    public static let write: UInt8 = 2
}

public struct MemoryOperand: Sendable {
    /// Segment register index (0 es .. 5 gs), 0xFF = default (none in 64-bit mode except fs/gs).
    public var segment: UInt8 = 0xFF
    public var base: Register = .none
    public var index: Register = .none
    public var scale: UInt8 = 0
    public var disp: Int64 = 0
    /// Access size in bytes (0 = not applicable / variable).
    public var size: UInt16 = 0
    /// EVEX embedded broadcast (element size is `size`).
    public var broadcast: Bool = false
    public init() {}
}

public struct Operand: Sendable {
    public var type: OperandType = .none
    /// OperandAccess bits.
    public var access: UInt8 = 0
    /// Operand size in bits.
    public var size: UInt16 = 0
    public var reg: Register = .none
    public var mem: MemoryOperand = MemoryOperand()
    /// Immediate value (sign-extended where the encoding sign-extends) or branch target.
    public var immediate: Int64 = 0
    public init() {}
    public var isRead: Bool { access & OperandAccess.read != 0 }
    public var isWritten: Bool { access & OperandAccess.write != 0 }
}

/// Fixed-capacity operand list (explicit operands, Intel order: destination first).
public struct Operands: Sendable {
    public var count: Int = 0
    public var items: InlineArray<4, Operand> = InlineArray(repeating: Operand())
    public init() {}
    @inline(__always) public subscript(i: Int) -> Operand { items[i] }
}
