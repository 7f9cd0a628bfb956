// SPDX-License-Identifier: GPL-2.0-only
//
// The instrumentation API (DESIGN.md principle 8). Tools are clients: they register
// for basic-block events, see the block's application instructions, ask the
// liveness service where the flags are dead, and insert meta instructions (inline
// snippets or clean calls into Swift). They never touch the translator's
// internals, and several tools run on the same block in a defined order.
//
// Order: phases run in sequence (app-to-app, analysis, insertion,
// instrumentation-to-instrumentation); within a phase, tools run by ascending
// priority, ties by registration order. Meta instructions inserted at the same
// position are emitted in the order they were inserted, so tools stack
// predictably.

/// The phases of a block event, in the order they run.
public enum InstrumentationPhase: UInt8, Sendable {
    /// Change the application code itself (e.g. end the block early).
    case appToApp = 0
    /// Look at the block, compute what insertion needs.
    case analysis = 1
    /// Insert instrumentation.
    case insertion = 2
    /// Adjust instrumentation other tools inserted.
    case instrumentationToInstrumentation = 3

    @inline(__always) var bit: UInt8 { 1 << rawValue }
}

/// Priorities for common cases; any Int32 works.
public enum ToolPriority {
    public static let early: Int32 = -100
    public static let normal: Int32 = 0
    public static let late: Int32 = 100
}

/// A block event handler: (tool data, block, phase raw value). A C function pointer:
/// the kernel build has no heap for closure contexts. `InstrumentedBlock.from(_:)`
/// and `InstrumentationPhase(rawValue:)` turn the arguments into typed values.
public typealias BlockEventHandler = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer, UInt8) -> Void

/// A tool as the translator sees it.
public struct ToolRegistration {
    public var name: StaticString
    public var priority: Int32
    /// Bit `1 << phase.rawValue` for every phase the tool wants.
    public var phases: UInt8
    public var onBlock: BlockEventHandler
    public var data: UnsafeMutableRawPointer?
    /// Offset of the tool's per-context storage (assigned at registration).
    public var storageOffset: Int32

    public init(name: StaticString, priority: Int32, phases: UInt8, data: UnsafeMutableRawPointer?,
                onBlock: BlockEventHandler) {
        self.name = name
        self.priority = priority
        self.phases = phases
        self.onBlock = onBlock
        self.data = data
        self.storageOffset = -1
    }

    public static func phaseMask(_ a: InstrumentationPhase) -> UInt8 { a.bit }
    public static func phaseMask(_ a: InstrumentationPhase, _ b: InstrumentationPhase) -> UInt8 { a.bit | b.bit }
}

/// A clean call's argument.
public enum CleanCallArgument: Sendable, Equatable {
    case none
    case constant(UInt64)
    /// The native PC of the application instruction the call is inserted before.
    case applicationPC
}

/// An instruction a tool inserts. Encoded when the block is emitted, so operands
/// that depend on the final address (RIP-relative) come out right.
public enum MetaInstruction: Sendable, Equatable {
    /// add qword [m], imm32 (writes the arithmetic flags).
    case add(AsmMemory, Int32)
    /// Adds imm32 to a qword without touching the flags (spills rax to a context
    /// slot around a mov/lea/mov sequence).
    case addPreservingFlags(AsmMemory, Int32)
    case movRegisterImmediate(GPR, UInt64)
    case movMemoryRegister(AsmMemory, GPR)
    case movRegisterMemory(GPR, AsmMemory)
    /// A call into C-ABI code with the full application state saved in the
    /// context (readable and writable there): `function(context, argument)`.
    case cleanCall(function: UInt64, argument: CleanCallArgument)
    /// A check with an inline fast path and an out-of-line clean call (see
    /// `InlineCheck`).
    case inlineCheck(InlineCheck)
}

/// An inline check of one memory operand: the translator puts the operand's
/// effective address in `InlineCheckSite.address`, lends the tool scratch
/// registers (spilling only those live at that point, and the arithmetic flags
/// only when they are live), and calls the tool's emitter to write the fast path.
/// The fast path ends by falling through ("fine") or branching to the slow path,
/// which is a clean call `slowFunction(context, slowArgument)` made with the
/// application state restored; the `address` register's value at the branch is
/// then in the context at `ContextField.inlineCheckAddress` (the effective
/// address, unless the emitter changed that register).
public struct InlineCheck: Sendable, Equatable {
    /// The operand, as the application instruction addresses it.
    public var memory: AsmMemory
    /// An `InlineCheckEmitter`, as an address.
    public var emitter: UInt64
    /// Passed to the emitter (the tool's data pointer, as bits).
    public var emitterData: UInt64
    /// Passed to the emitter in the site (what the check is about: size, ...).
    public var argument: UInt64
    public var slowFunction: UInt64
    public var slowArgument: UInt64
    /// Scratch registers the fast path needs besides `address` (0 to 2).
    public var temporaries: UInt8

    public init(memory: AsmMemory, emitter: InlineCheckEmitter, emitterData: UnsafeMutableRawPointer?,
                argument: UInt64, slowFunction: UInt64, slowArgument: UInt64, temporaries: UInt8) {
        self.memory = memory
        self.emitter = UInt64(UInt(bitPattern: unsafeBitCast(emitter, to: UnsafeRawPointer.self)))
        self.emitterData = UInt64(UInt(bitPattern: emitterData))
        self.argument = argument
        self.slowFunction = slowFunction
        self.slowArgument = slowArgument
        self.temporaries = min(temporaries, 2)
    }
}

/// Writes an inline check's fast path: (emitter data, the `InlineCheckSite`).
public typealias InlineCheckEmitter = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer) -> Void

/// What an emitter works with. Registers other than `address` and the
/// temporaries, and memory other than the tool's own, must be left alone; the
/// flags may be clobbered.
public struct InlineCheckSite {
    public var assembler: Assembler
    /// Holds the effective address. An emitter may change it only if its slow
    /// function does not read `ContextField.inlineCheckAddress` (heapcheck
    /// computes the address again from the instruction). The translator picks
    /// these registers per check (dead ones where it can); temporaries beyond
    /// `InlineCheck.temporaries` are not lent.
    public let address: GPR
    public let temporary0: GPR
    public let temporary1: GPR
    public let argument: UInt64
    /// Offsets of the emitted branches, and which of them go to the slow path.
    var branches: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)
    var toSlow: UInt8 = 0
    var branchCount = 0
    var tooManyBranches = false

    init(assembler: Assembler, argument: UInt64, address: GPR, temporary0: GPR, temporary1: GPR) {
        self.assembler = assembler
        self.argument = argument
        self.address = address
        self.temporary0 = temporary0
        self.temporary1 = temporary1
    }

    @inline(__always) public static func from(_ raw: UnsafeMutableRawPointer) -> UnsafeMutablePointer<InlineCheckSite> {
        raw.assumingMemoryBound(to: InlineCheckSite.self)
    }

    /// Branches to the slow path when `condition` holds.
    public mutating func slowPath(if condition: Condition) { branch(condition, slow: true) }
    /// Ends the check ("fine") when `condition` holds.
    public mutating func done(if condition: Condition) { branch(condition, slow: false) }

    mutating func branch(_ condition: Condition, slow: Bool) {
        guard branchCount < 8 else { tooManyBranches = true; return }
        let at = assembler.count
        assembler.jcc(condition, to: assembler.address)  // patched by the translator
        withUnsafeMutableBytes(of: &branches) { $0.storeBytes(of: at, toByteOffset: branchCount * 8, as: Int.self) }
        if slow { toSlow |= 1 << UInt8(branchCount) }
        branchCount += 1
    }

    func branch(_ i: Int) -> (offset: Int, slow: Bool) {
        var b = branches
        let offset = withUnsafeBytes(of: &b) { $0.load(fromByteOffset: i * 8, as: Int.self) }
        return (offset, toSlow & (1 << UInt8(i)) != 0)
    }
}

/// Meta instructions are inserted before application instruction `before`, or,
/// with `onSideExit`, on the taken path of the side exit at `before`.
public struct MetaEntry: Sendable {
    public var before: Int
    public var instruction: MetaInstruction
    public var onSideExit = false
}

/// The block handed to tools.
public struct InstrumentedBlock {
    /// Native address of the first instruction.
    public let startPC: UInt64
    /// The application instructions (read-only for tools).
    public let instructions: UnsafePointer<Instruction>
    /// Application instructions in the block; only the app-to-app phase may lower it.
    public private(set) var count: Int
    /// Where the current tool's per-context storage lives (`%gs:` offset).
    public internal(set) var toolStorage: Int32 = 0
    let meta: UnsafeMutablePointer<MetaEntry>
    let metaCapacity: Int
    public private(set) var metaCount = 0
    /// Set when a tool inserted more than the block can hold.
    public private(set) var overflowed = false
    /// The arithmetic flags that may be read after the block (all of them unless
    /// the translator read its successor ahead: `Translator.flagsLive(after:)`).
    public internal(set) var flagsLiveAtEnd: UInt16 = Flag.status
    /// The same for the target of each side exit, in block order.
    var sideExitFlags: InlineArray<4, UInt16> = InlineArray(repeating: Flag.status)
    /// The general-purpose registers that may be read after the block (all unless
    /// the translator read its successor ahead: `Translator.registersLive(after:)`),
    /// and at each side exit's target, in block order.
    public internal(set) var registersLiveAtEnd: UInt16 = 0xFFFF
    var sideExitRegisters: InlineArray<4, UInt16> = InlineArray(repeating: 0xFFFF)
    /// Bit i: instruction i's fault continues at a fixup (`hasFaultFixup`); the
    /// fixup is a way out of the block that register liveness must see.
    var faultExits: InlineArray<2, UInt64> = InlineArray(repeating: 0)
    /// Liveness before each instruction, from one backward pass once the block's
    /// end and side exits are known (`computeLiveness`): tools ask before nearly
    /// every access, and a pass per question made translation quadratic.
    var registersLiveBefore: InlineArray<128, UInt16> = InlineArray(repeating: 0xFFFF)
    /// Bit i: the arithmetic flags are all dead before instruction i.
    var flagsDeadBefore: InlineArray<2, UInt64> = InlineArray(repeating: 0)
    var livenessKnown = false
    var phase: InstrumentationPhase = .appToApp
    let contextGSOffset: Int32
    /// The translator, for `decodeNative` and `runsNatively` (nil: neither knows anything).
    var translator: UnsafeMutablePointer<TranslatorState>? = nil

    init(startPC: UInt64, instructions: UnsafePointer<Instruction>, count: Int,
         meta: UnsafeMutablePointer<MetaEntry>, metaCapacity: Int, contextGSOffset: Int32) {
        self.startPC = startPC
        self.instructions = instructions
        self.count = count
        self.meta = meta
        self.metaCapacity = metaCapacity
        self.contextGSOffset = contextGSOffset
    }

    public subscript(i: Int) -> Instruction { instructions[i] }

    /// Decodes the native instruction at `pc` (code outside the block, e.g. a
    /// call's target: read, not translated); false when it cannot be read or
    /// decoded.
    public func decodeNative(at pc: UInt64, into insn: inout Instruction) -> Bool {
        guard let t = translator else { return false }
        return Translator(state: t).decodeOne(at: pc, into: &insn)
    }

    /// Whether code at `pc` runs natively, uninstrumented (the host's own code,
    /// say); true when unknown.
    public func runsNatively(_ pc: UInt64) -> Bool {
        guard let t = translator else { return true }
        return Translator(state: t).isNativeExit(pc)
    }

    /// The block a BlockEventHandler received.
    @inline(__always) public static func from(_ raw: UnsafeMutableRawPointer) -> UnsafeMutablePointer<InstrumentedBlock> {
        raw.assumingMemoryBound(to: InstrumentedBlock.self)
    }

    /// A `%gs:` operand for `offset` bytes into the current tool's storage.
    public func storage(_ offset: Int32) -> AsmMemory { AsmMemory.gs(contextGSOffset + toolStorage + offset) }

    /// Inserts `instruction` before application instruction `index`.
    /// Returns the entry's index (for `replace`), nil when nothing was inserted.
    @discardableResult
    public mutating func insert(_ instruction: MetaInstruction, before index: Int) -> Int? {
        guard index >= 0, index < count, phase != .appToApp, phase != .analysis else { return nil }
        guard metaCount < metaCapacity else { overflowed = true; return nil }
        meta[metaCount] = MetaEntry(before: index, instruction: instruction)
        metaCount += 1
        return metaCount - 1
    }

    /// Replaces the meta instruction of entry `entry` (an index `insert` returned
    /// in this phase), keeping its place.
    public mutating func replace(_ entry: Int, with instruction: MetaInstruction) {
        guard entry >= 0, entry < metaCount, phase != .appToApp, phase != .analysis else { return }
        meta[entry].instruction = instruction
    }

    // MARK: side exits
    //
    // A block runs on past conditional branches (up to `maxSideExits` of them):
    // each is a side exit, whose taken path leaves the block and whose
    // fall-through continues in it. Code inserted before an instruction runs only
    // when execution gets that far; code on a side exit runs only when it is taken.

    public static let maxSideExits = 4

    /// Whether a fault of instruction `index` continues at a fixup that may read
    /// any register (blocks longer than 128 instructions: assumed so beyond).
    public func faultsToFixup(_ index: Int) -> Bool {
        index >= 128 || faultExits[index >> 6] & (1 << UInt64(index & 63)) != 0
    }

    /// Whether instruction `index` is a side exit.
    public func isSideExit(_ index: Int) -> Bool {
        index >= 0 && index < count - 1 && instructions[index].controlFlow == .jcc
    }

    /// The first side exit at or after `index`, or nil.
    public func sideExit(from index: Int = 0) -> Int? {
        var i = max(index, 0)
        while i < count - 1 {
            if instructions[i].controlFlow == .jcc { return i }
            i += 1
        }
        return nil
    }

    /// Inserts `instruction` on the taken path of side exit `index` (after the
    /// branch, before the block is left). Such code must not write the flags that
    /// `flagsLive(atSideExit:)` reports live.
    public mutating func insert(_ instruction: MetaInstruction, onSideExit index: Int) {
        guard isSideExit(index), phase != .appToApp, phase != .analysis else { return }
        guard metaCount < metaCapacity else { overflowed = true; return }
        meta[metaCount] = MetaEntry(before: index, instruction: instruction, onSideExit: true)
        metaCount += 1
    }

    func hasSideExitMeta(_ index: Int) -> Bool {
        for m in 0..<metaCount where meta[m].onSideExit && meta[m].before == index { return true }
        return false
    }

    /// The arithmetic flags that may be read at side exit `index`'s target.
    public func flagsLive(atSideExit index: Int) -> UInt16 {
        guard isSideExit(index) else { return Flag.status }
        var k = 0
        for i in 0..<index where instructions[i].controlFlow == .jcc { k += 1 }
        return k < Self.maxSideExits ? sideExitFlags[k] : Flag.status
    }

    /// The translator's own instrumentation (function wrapping): goes in whatever
    /// the phase, before the first application instruction.
    mutating func insertAtStart(_ instruction: MetaInstruction) {
        guard metaCount < metaCapacity else { overflowed = true; return }
        meta[metaCount] = MetaEntry(before: 0, instruction: instruction)
        metaCount += 1
    }

    /// App-to-app: ends the block after instruction `index` (it falls through to
    /// the next native instruction).
    public mutating func truncate(after index: Int) {
        guard phase == .appToApp, index >= 0, index + 1 < count else { return }
        count = index + 1
    }

    // MARK: liveness service

    /// What an inline check with `temporaries` temporaries costs in state saving
    /// before instruction `index`, in instructions: the flags' save and restore
    /// (6) when they are live, a spill and reload (2) for each scratch register
    /// that is not dead there. Tools with a choice of places use the cheapest.
    public func inlineCheckSavingCost(before index: Int, temporaries: Int) -> Int {
        let flagsLive = !arithmeticFlagsDead(before: index)
        let borrowable = Self.borrowableRegisters(live: liveRegisters(before: index), flagsLive: flagsLive)
        let spills = max(0, 1 + temporaries - borrowable.nonzeroBitCount)
        return (flagsLive ? 6 : 0) + 2 * spills
    }

    /// Registers an inline check may borrow without saving them: the dead ones,
    /// but never rsp or rbp (rbp may anchor the unwind a slow path makes), nor
    /// rax while it carries the flags.
    static func borrowableRegisters(live: UInt16, flagsLive: Bool) -> UInt16 {
        ~live & ~(1 << GPR.rsp.rawValue | 1 << GPR.rbp.rawValue | (flagsLive ? 1 << GPR.rax.rawValue : 0))
    }

    /// Whether the arithmetic flags (CF PF AF ZF SF OF) are all dead before
    /// instruction `index`: each is overwritten in the block before being read.
    /// At the block's end the flags in `flagsLiveAtEnd` are live.
    public func arithmeticFlagsDead(before index: Int) -> Bool {
        if livenessKnown && index >= 0 && index < count {
            return flagsDeadBefore[index >> 6] & (1 << UInt64(index & 63)) != 0
        }
        return walkLiveness(downTo: index) { _, _, _ in }.flags & Flag.status == 0
    }

    /// The first position at or after `index` where the arithmetic flags are dead,
    /// or nil.
    public func firstFlagsDeadPosition(from index: Int = 0) -> Int? {
        if livenessKnown {
            var i = max(index, 0)
            while i < count {
                if flagsDeadBefore[i >> 6] & (1 << UInt64(i & 63)) != 0 { return i }
                i += 1
            }
            return nil
        }
        var best: Int? = nil
        _ = walkLiveness(downTo: index) { i, _, flags in if flags & Flag.status == 0 { best = i } }
        return best
    }

    /// General-purpose registers (bit = GPR raw value) whose values may still be
    /// read at or after instruction `index`: at the block's end and at each side
    /// exit those the successor's lookahead could not rule out
    /// (`registersLiveAtEnd`, `sideExitRegisters`), every register before an
    /// instruction whose fault goes to a fixup (the kernel's exception table: the
    /// fixup may read what the straight path overwrites first); a full-width (32/64-bit) explicit write kills,
    /// narrower and conditional writes (cmovcc, bsf/bsr) do not. The flags are not
    /// treated so: x86 inline asm clobbers them, so compiled fixups never read
    /// flags set before the faulting instruction.
    public func liveRegisters(before index: Int) -> UInt16 {
        if livenessKnown && index >= 0 && index < count { return registersLiveBefore[index] }
        return walkLiveness(downTo: index) { _, _, _ in }.registers
    }

    /// The backward pass every liveness answer comes from: from the block's end
    /// down to instruction `index`, `visit(i, registers, flags)` with what may be
    /// read at or after instruction i; returns that for `index` (the end's when
    /// `index` is past the last instruction).
    func walkLiveness(downTo index: Int, _ visit: (Int, UInt16, UInt16) -> Void) -> (registers: UInt16, flags: UInt16) {
        var live = registersLiveAtEnd
        var flags = flagsLiveAtEnd
        var operands = Operands()
        var exits = 0
        for i in 0..<count where isSideExit(i) { exits += 1 }
        var i = count - 1
        while i >= max(index, 0) {
            let insn = instructions[i]
            if isSideExit(i) {
                exits -= 1
                live |= exits < Self.maxSideExits ? sideExitRegisters[exits] : 0xFFFF
                flags |= exits < Self.maxSideExits ? sideExitFlags[exits] : Flag.status
            }
            if faultsToFixup(i) {
                live = 0xFFFF
            } else {
                Decoder.decodeOperands(insn, into: &operands)
                live = (live & ~Self.killedRegisters(insn, operands)) | Self.readRegisters(insn, operands)
            }
            flags = (flags & ~Self.killedFlags(insn)) | insn.flagsRead
            visit(i, live, flags)
            i -= 1
        }
        return (live, flags)
    }

    /// Fills `registersLiveBefore` and `flagsDeadBefore` (the answers of
    /// `liveRegisters(before:)` and `arithmeticFlagsDead(before:)` for every
    /// instruction) in one pass; call once the block's end, side exits and fault
    /// exits are final. Blocks longer than the tables walk once per question.
    mutating func computeLiveness() {
        livenessKnown = false
        guard count <= 128 else { return }
        var registers: InlineArray<128, UInt16> = InlineArray(repeating: 0xFFFF)
        var dead: InlineArray<2, UInt64> = InlineArray(repeating: 0)
        _ = walkLiveness(downTo: 0) { i, live, flags in
            registers[i] = live
            if flags & Flag.status == 0 { dead[i >> 6] |= 1 << UInt64(i & 63) }
        }
        registersLiveBefore = registers
        flagsDeadBefore = dead
        livenessKnown = true
    }

    /// General-purpose registers whose values an instruction reads: those it
    /// names, but not the register of a zeroing idiom (`xor ecx, ecx`, `sub`),
    /// whose result does not depend on it.
    static func readRegisters(_ insn: Instruction, _ operands: Operands) -> UInt16 {
        let read = Decoder.registerAccesses(insn, operands: operands).gprRead
        guard insn.mnemonic == .xor || insn.mnemonic == .sub, operands.count >= 2 else { return read }
        let a = operands[0], b = operands[1]
        guard a.type == .register, b.type == .register, a.reg == b.reg,
              a.reg.cls == .gpr64 || a.reg.cls == .gpr32 else { return read }
        return read & ~(1 << UInt16(a.reg.index & 15))
    }

    /// General-purpose registers an instruction certainly overwrites: full-width
    /// (32/64-bit) explicit writes; cmovcc writes only when its condition holds,
    /// and bsf/bsr leave the destination alone for a zero source (Linux's fls()
    /// relies on it).
    static func killedRegisters(_ insn: Instruction, _ operands: Operands) -> UInt16 {
        let conditionalWrite = insn.map == .map0F
            && (insn.opcode & 0xF0 == 0x40 || ((insn.opcode == 0xBC || insn.opcode == 0xBD) && insn.mandatoryPrefix != 2))
        guard !conditionalWrite else { return 0 }
        var killed: UInt16 = 0
        for k in 0..<operands.count {
            let o = operands[k]
            if o.type == .register && o.isWritten && (o.reg.cls == .gpr64 || o.reg.cls == .gpr32) {
                killed |= 1 << UInt16(o.reg.index & 15)
            }
        }
        return killed
    }

    /// Flags an instruction certainly overwrites. Shifts and rotates leave the
    /// flags alone when the count is zero, so they never certainly kill them.
    static func killedFlags(_ insn: Instruction) -> UInt16 {
        switch insn.mnemonic {
        case .shl, .shr, .sar, .rol, .ror, .rcl, .rcr, .shld, .shrd: return 0
        default: return insn.flagsWritten
        }
    }
}
