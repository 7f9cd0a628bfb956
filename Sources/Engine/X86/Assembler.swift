// SPDX-License-Identifier: GPL-2.0-only
//
// Emits the instructions a translator synthesizes (branches, moves, spills, counter
// updates) into caller-provided memory. Kernel-safe: no allocation; running out of
// room sets `overflowed` instead of writing past the end, and a branch whose target
// is out of rel32 reach is reported, never silently truncated.

/// A 64-bit general-purpose register by its encoding number.
public enum GPR: UInt8, Sendable {
    case rax = 0, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15

    @inline(__always) var low3: UInt8 { rawValue & 7 }
    @inline(__always) var extended: Bool { rawValue >= 8 }
}

/// Segment override for a synthesized memory operand.
public enum SegmentOverride: UInt8, Sendable {
    case none = 0
    case fs = 0x64
    case gs = 0x65
}

/// A memory operand to encode: [base + index*scale + disp], RIP-relative, or absolute.
public struct AsmMemory: Sendable, Equatable {
    public enum Base: Sendable, Equatable {
        case register(GPR)
        /// RIP-relative to an absolute target; the displacement is computed at emit time.
        case rip(target: UInt64)
        /// No base: absolute disp32 (sign-extended), e.g. %gs:offset.
        case absolute
    }

    public var base: Base
    public var index: GPR?
    public var scale: UInt8
    public var displacement: Int32
    public var segment: SegmentOverride

    public init(base: Base, index: GPR? = nil, scale: UInt8 = 1, displacement: Int32 = 0,
                segment: SegmentOverride = .none) {
        self.base = base
        self.index = index
        self.scale = scale
        self.displacement = displacement
        self.segment = segment
    }

    public static func at(_ base: GPR, _ displacement: Int32 = 0) -> AsmMemory {
        AsmMemory(base: .register(base), displacement: displacement)
    }
    public static func rip(_ target: UInt64) -> AsmMemory { AsmMemory(base: .rip(target: target)) }
    public static func gs(_ offset: Int32) -> AsmMemory {
        AsmMemory(base: .absolute, displacement: offset, segment: .gs)
    }
}

extension AsmMemory {
    /// The general-purpose registers the address is computed from (bit = GPR raw value).
    public var registersUsed: UInt16 {
        var uses: UInt16 = 0
        if case .register(let b) = base { uses |= 1 << UInt16(b.rawValue) }
        if let x = index { uses |= 1 << UInt16(x.rawValue) }
        return uses
    }
}

/// Condition codes as encoded in Jcc/SETcc/CMOVcc (the low nibble).
public enum Condition: UInt8, Sendable {
    case o = 0, no, b, ae, e, ne, be, a, s, ns, p, np, l, ge, le, g
}

/// Emits machine code at `address` (the address the bytes will execute at).
public struct Assembler {
    public let base: UnsafeMutableRawPointer
    public let capacity: Int
    /// Address of `base` when the code runs (differs from `base` when code is
    /// written through an alias mapping).
    public let origin: UInt64
    public private(set) var count: Int = 0
    /// Set when an emit did not fit; nothing past `capacity` was written.
    public private(set) var overflowed = false
    /// Set when a rel32 or RIP-relative target was out of reach.
    public private(set) var outOfReach = false

    public init(base: UnsafeMutableRawPointer, capacity: Int, origin: UInt64) {
        self.base = base
        self.capacity = capacity
        self.origin = origin
    }

    /// Address of the next byte to be emitted.
    @inline(__always) public var address: UInt64 { origin &+ UInt64(count) }
    public var failed: Bool { overflowed || outOfReach }

    // MARK: raw bytes

    @inline(__always) public mutating func byte(_ b: UInt8) {
        guard count < capacity else { overflowed = true; return }
        base.storeBytes(of: b, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    public mutating func bytes(_ source: UnsafeRawBufferPointer) {
        guard source.count <= capacity - count else { overflowed = true; return }
        if source.count > 0 { (base + count).copyMemory(from: source.baseAddress!, byteCount: source.count) }
        count += source.count
    }

    @inline(__always) public mutating func u32(_ v: UInt32) {
        byte(UInt8(truncatingIfNeeded: v)); byte(UInt8(truncatingIfNeeded: v >> 8))
        byte(UInt8(truncatingIfNeeded: v >> 16)); byte(UInt8(truncatingIfNeeded: v >> 24))
    }

    @inline(__always) public mutating func u64(_ v: UInt64) {
        u32(UInt32(truncatingIfNeeded: v)); u32(UInt32(truncatingIfNeeded: v >> 32))
    }

    /// Overwrites 4 bytes at `offset` (for patching a rel32 emitted earlier).
    public func patch32(at offset: Int, _ v: UInt32) {
        guard offset >= 0, offset + 4 <= count else { return }
        (base + offset).storeBytes(of: v.littleEndian, as: UInt32.self)
    }

    /// The rel32 from the end of an instruction at `end` to `target`, or nil.
    @inline(__always) public static func rel32(from end: UInt64, to target: UInt64) -> Int32? {
        let delta = Int64(bitPattern: target &- end)
        return delta >= Int64(Int32.min) && delta <= Int64(Int32.max) ? Int32(delta) : nil
    }

    private mutating func rel32(to target: UInt64) {
        // The displacement is the last field: the instruction ends after it.
        if let d = Assembler.rel32(from: address &+ 4, to: target) {
            u32(UInt32(bitPattern: d))
        } else {
            outOfReach = true
            u32(0)
        }
    }

    // MARK: prefixes and ModRM

    /// REX prefix when needed (or forced by W).
    private mutating func rex(w: Bool, r: Bool = false, x: Bool = false, b: Bool = false, force: Bool = false) {
        let value: UInt8 = 0x40 | (w ? 8 : 0) | (r ? 4 : 0) | (x ? 2 : 0) | (b ? 1 : 0)
        if value != 0x40 || force { byte(value) }
    }

    private mutating func segment(_ m: AsmMemory) {
        if m.segment != .none { byte(m.segment.rawValue) }
    }

    /// REX for an instruction with a register in ModRM.reg and memory in ModRM.rm.
    private mutating func rexFor(w: Bool, reg: UInt8, memory m: AsmMemory, force: Bool = false) {
        var b = false
        if case .register(let r) = m.base { b = r.extended }
        rex(w: w, r: reg >= 8, x: m.index?.extended ?? false, b: b, force: force)
    }

    /// ModRM (+SIB, +disp) for `reg` and memory `m`. `trailing` is the number of
    /// immediate bytes that follow, needed to compute a RIP-relative displacement.
    private mutating func modrm(reg: UInt8, memory m: AsmMemory, trailing: Int = 0) {
        let r = (reg & 7) << 3
        switch m.base {
        case .rip(let target):
            byte(0x05 | r)
            if let d = Assembler.rel32(from: address &+ 4 &+ UInt64(trailing), to: target &+ UInt64(bitPattern: Int64(m.displacement))) {
                u32(UInt32(bitPattern: d))
            } else {
                outOfReach = true
                u32(0)
            }
        case .absolute:
            // mod=00 rm=100 SIB base=101 index=100 (none): [disp32].
            byte(0x04 | r)
            let index = m.index.map { $0.low3 } ?? 4
            byte(scaleBits(m.scale) << 6 | index << 3 | 5)
            u32(UInt32(bitPattern: m.displacement))
        case .register(let baseRegister):
            let needsSIB = m.index != nil || baseRegister.low3 == 4  // rsp/r12 need a SIB
            let mod: UInt8
            if m.displacement == 0 && baseRegister.low3 != 5 {  // rbp/r13 have no disp-less form
                mod = 0
            } else if m.displacement >= -128 && m.displacement <= 127 {
                mod = 1
            } else {
                mod = 2
            }
            if needsSIB {
                byte(mod << 6 | r | 4)
                let index = m.index.map { $0.low3 } ?? 4
                byte(scaleBits(m.scale) << 6 | index << 3 | baseRegister.low3)
            } else {
                byte(mod << 6 | r | baseRegister.low3)
            }
            if mod == 1 { byte(UInt8(bitPattern: Int8(m.displacement))) }
            if mod == 2 { u32(UInt32(bitPattern: m.displacement)) }
        }
    }

    private func scaleBits(_ scale: UInt8) -> UInt8 {
        switch scale {
        case 2: return 1
        case 4: return 2
        case 8: return 3
        default: return 0
        }
    }

    /// Opcode with a register operand in ModRM.reg and memory in ModRM.rm.
    private mutating func regMem(_ opcode: UInt8, w: Bool, reg: UInt8, _ m: AsmMemory, trailing: Int = 0, twoByte: Bool = false) {
        segment(m)
        rexFor(w: w, reg: reg, memory: m)
        if twoByte { byte(0x0F) }
        byte(opcode)
        modrm(reg: reg, memory: m, trailing: trailing)
    }

    /// Opcode with register operands: ModRM mod=11.
    private mutating func regReg(_ opcode: UInt8, w: Bool, reg: UInt8, rm: UInt8, forceRex: Bool = false) {
        rex(w: w, r: reg >= 8, b: rm >= 8, force: forceRex)
        byte(opcode)
        byte(0xC0 | (reg & 7) << 3 | (rm & 7))
    }

    // MARK: control flow

    /// jmp rel32.
    public mutating func jmp(to target: UInt64) { byte(0xE9); rel32(to: target) }
    /// call rel32.
    public mutating func call(to target: UInt64) { byte(0xE8); rel32(to: target) }
    /// jcc rel32.
    public mutating func jcc(_ c: Condition, to target: UInt64) { byte(0x0F); byte(0x80 | c.rawValue); rel32(to: target) }
    /// jmp *[mem].
    public mutating func jmp(_ m: AsmMemory) { regMem(0xFF, w: false, reg: 4, m) }
    /// jmp *reg.
    public mutating func jmp(_ r: GPR) { regReg(0xFF, w: false, reg: 4, rm: r.rawValue) }
    /// call *reg.
    public mutating func call(_ r: GPR) { regReg(0xFF, w: false, reg: 2, rm: r.rawValue) }
    /// call *[mem].
    public mutating func call(_ m: AsmMemory) { regMem(0xFF, w: false, reg: 2, m) }
    /// jmp rel8 (short forward skips inside emitted sequences).
    public mutating func jmpShort(_ displacement: Int8) { byte(0xEB); byte(UInt8(bitPattern: displacement)) }
    public mutating func ret() { byte(0xC3) }
    public mutating func cld() { byte(0xFC) }
    public mutating func iretq() { byte(0x48); byte(0xCF) }
    public mutating func swapgs() { byte(0x0F); byte(0x01); byte(0xF8) }
    /// test byte [m], imm8
    public mutating func testByte(_ m: AsmMemory, imm8 v: UInt8) { regMem(0xF6, w: false, reg: 0, m, trailing: 1); byte(v) }
    /// cmp qword [m], imm8 (sign-extended)

    public mutating func int3() { byte(0xCC) }
    public mutating func ud2() { byte(0x0F); byte(0x0B) }

    // MARK: data movement

    /// mov r64, imm64 (or the 32-bit zero-extending form when it fits).
    public mutating func mov(_ r: GPR, imm64 v: UInt64) {
        if v <= UInt64(UInt32.max) {
            rex(w: false, b: r.extended)
            byte(0xB8 | r.low3)
            u32(UInt32(v))
        } else {
            rex(w: true, b: r.extended)
            byte(0xB8 | r.low3)
            u64(v)
        }
    }
    /// mov dst, src (64-bit).
    public mutating func mov(_ dst: GPR, _ src: GPR) { regReg(0x89, w: true, reg: src.rawValue, rm: dst.rawValue) }
    /// mov r64, [mem].
    public mutating func mov(_ dst: GPR, _ m: AsmMemory) { regMem(0x8B, w: true, reg: dst.rawValue, m) }
    /// mov [mem], r64.
    public mutating func mov(_ m: AsmMemory, _ src: GPR) { regMem(0x89, w: true, reg: src.rawValue, m) }
    /// mov qword [mem], simm32.
    public mutating func mov(_ m: AsmMemory, imm32 v: Int32) {
        regMem(0xC7, w: true, reg: 0, m, trailing: 4)
        u32(UInt32(bitPattern: v))
    }
    /// mov dword [mem], imm32 (used to build a 64-bit value in memory without flags).
    public mutating func movDword(_ m: AsmMemory, imm32 v: UInt32) {
        regMem(0xC7, w: false, reg: 0, m, trailing: 4)
        u32(v)
    }
    /// lea r64, [mem].
    public mutating func lea(_ dst: GPR, _ m: AsmMemory) { regMem(0x8D, w: true, reg: dst.rawValue, m) }
    public mutating func push(_ r: GPR) { rex(w: false, b: r.extended); byte(0x50 | r.low3) }
    public mutating func pop(_ r: GPR) { rex(w: false, b: r.extended); byte(0x58 | r.low3) }
    /// push simm32 (sign-extended to 64 bits).
    public mutating func push(imm32 v: Int32) { byte(0x68); u32(UInt32(bitPattern: v)) }
    /// push qword [mem].
    public mutating func push(_ m: AsmMemory) { regMem(0xFF, w: false, reg: 6, m) }
    /// pop qword [mem].
    public mutating func pop(_ m: AsmMemory) { regMem(0x8F, w: false, reg: 0, m) }
    public mutating func pushf() { byte(0x9C) }
    public mutating func popf() { byte(0x9D) }
    public mutating func lahf() { byte(0x9F) }
    public mutating func sahf() { byte(0x9E) }
    /// xchg r64, [mem] (implicitly locked by the CPU).
    public mutating func xchg(_ r: GPR, _ m: AsmMemory) { regMem(0x87, w: true, reg: r.rawValue, m) }
    /// xchg r64, r64.
    public mutating func xchg(_ a: GPR, _ b: GPR) { regReg(0x87, w: true, reg: a.rawValue, rm: b.rawValue) }

    // MARK: arithmetic used by instrumentation

    /// add qword [mem], simm32 (imm8 form when it fits).
    public mutating func add(_ m: AsmMemory, imm32 v: Int32) {
        if v >= -128 && v <= 127 {
            regMem(0x83, w: true, reg: 0, m, trailing: 1)
            byte(UInt8(bitPattern: Int8(v)))
        } else {
            regMem(0x81, w: true, reg: 0, m, trailing: 4)
            u32(UInt32(bitPattern: v))
        }
    }
    /// add r64, simm32.
    public mutating func add(_ r: GPR, imm32 v: Int32) {
        if v >= -128 && v <= 127 {
            regReg(0x83, w: true, reg: 0, rm: r.rawValue)
            byte(UInt8(bitPattern: Int8(v)))
        } else {
            regReg(0x81, w: true, reg: 0, rm: r.rawValue)
            u32(UInt32(bitPattern: v))
        }
    }
    /// add [mem], r64.
    public mutating func add(_ m: AsmMemory, _ r: GPR) { regMem(0x01, w: true, reg: r.rawValue, m) }
    /// inc qword [mem].
    public mutating func inc(_ m: AsmMemory) { regMem(0xFF, w: true, reg: 0, m) }
    /// cmp r64, [mem].
    public mutating func cmp(_ r: GPR, _ m: AsmMemory) { regMem(0x3B, w: true, reg: r.rawValue, m) }
    /// cmp a, b (64-bit): flags of a - b.
    public mutating func cmp(_ a: GPR, _ b: GPR) { regReg(0x39, w: true, reg: b.rawValue, rm: a.rawValue) }
    /// sub dst, src (64-bit).
    public mutating func sub(_ dst: GPR, _ src: GPR) { regReg(0x29, w: true, reg: src.rawValue, rm: dst.rawValue) }
    /// sub r64, [mem].
    public mutating func sub(_ r: GPR, _ m: AsmMemory) { regMem(0x2B, w: true, reg: r.rawValue, m) }
    /// cmp r64, simm32.
    public mutating func cmp(_ r: GPR, imm32 v: Int32) {
        regReg(0x81, w: true, reg: 7, rm: r.rawValue)
        u32(UInt32(bitPattern: v))
    }
    /// and r64, simm32.
    public mutating func and(_ r: GPR, imm32 v: Int32) {
        regReg(0x81, w: true, reg: 4, rm: r.rawValue)
        u32(UInt32(bitPattern: v))
    }
    /// movzx r32, r/m16 (register form; zero-extends into the whole register, no flags).
    public mutating func movzxWord(_ dst: GPR, _ src: GPR) {
        rex(w: false, r: dst.extended, b: src.extended)
        byte(0x0F); byte(0xB7)
        byte(0xC0 | dst.low3 << 3 | src.low3)
    }
    /// not r64 (no flags).
    public mutating func not(_ r: GPR) { regReg(0xF7, w: true, reg: 2, rm: r.rawValue) }
    /// jrcxz rel8.
    public mutating func jrcxz(_ displacement: Int8) { byte(0xE3); byte(UInt8(bitPattern: displacement)) }
    /// and r64, [mem].
    public mutating func and(_ r: GPR, _ m: AsmMemory) { regMem(0x23, w: true, reg: r.rawValue, m) }
    /// add r64, [mem].
    public mutating func add(_ r: GPR, _ m: AsmMemory) { regMem(0x03, w: true, reg: r.rawValue, m) }
    /// cmp qword [mem], simm8.
    public mutating func cmp(_ m: AsmMemory, imm8 v: Int8) {
        regMem(0x83, w: true, reg: 7, m, trailing: 1)
        byte(UInt8(bitPattern: v))
    }
    /// shl r64, imm8.
    public mutating func shl(_ r: GPR, _ count: UInt8) {
        regReg(0xC1, w: true, reg: 4, rm: r.rawValue)
        byte(count)
    }
    /// shr r64, imm8.
    public mutating func shr(_ r: GPR, _ count: UInt8) {
        regReg(0xC1, w: true, reg: 5, rm: r.rawValue)
        byte(count)
    }
    /// add dst, src (64-bit).
    public mutating func add(_ dst: GPR, _ src: GPR) { regReg(0x01, w: true, reg: src.rawValue, rm: dst.rawValue) }
    /// test r64, r64.
    public mutating func test(_ a: GPR, _ b: GPR) { regReg(0x85, w: true, reg: b.rawValue, rm: a.rawValue) }
    /// add al, imm8 (restores OF after `seto al`, see the indirect-branch lookup).
    public mutating func addAL(_ v: UInt8) { byte(0x04); byte(v) }
    /// seto r8 (low byte; REX forced for spl..dil).
    public mutating func seto(_ r: GPR) {
        rex(w: false, b: r.extended, force: r.rawValue >= 4)
        byte(0x0F); byte(0x90); byte(0xC0 | r.low3)
    }

    /// xsave64 [mem] / xrstor64 [mem]: the components selected by edx:eax.
    public mutating func xsave64(_ m: AsmMemory) { regMem(0xAE, w: true, reg: 4, m, twoByte: true) }
    public mutating func xrstor64(_ m: AsmMemory) { regMem(0xAE, w: true, reg: 5, m, twoByte: true) }

    /// CS segment override: ignored on branches in 64-bit mode (0x3E there is a
    /// taken hint on some parts, 0x66 changes the operand size on AMD), so it pads
    /// a branch without adding an instruction.
    public static let ignoredPrefix: UInt8 = 0x2E

    /// Pads with multi-byte NOPs to `alignment` (a power of two).
    public mutating func align(_ alignment: Int) {
        while Int(address & UInt64(alignment - 1)) != 0 && !overflowed {
            nop(min(9, alignment - Int(address & UInt64(alignment - 1))))
        }
    }

    /// One NOP instruction of `length` bytes, 1 to 9 (the SDM's recommended
    /// forms): padding that executes costs one instruction, not one per byte.
    public mutating func nop(_ length: Int) {
        switch length {
        case 1: byte(0x90)
        case 2: byte(0x66); byte(0x90)
        case 3: byte(0x0F); byte(0x1F); byte(0x00)
        case 4: byte(0x0F); byte(0x1F); byte(0x40); byte(0x00)
        case 5: byte(0x0F); byte(0x1F); byte(0x44); byte(0x00); byte(0x00)
        case 6: byte(0x66); byte(0x0F); byte(0x1F); byte(0x44); byte(0x00); byte(0x00)
        case 7: byte(0x0F); byte(0x1F); byte(0x80); u32(0)
        case 8: byte(0x0F); byte(0x1F); byte(0x84); byte(0x00); u32(0)
        case 9: byte(0x66); byte(0x0F); byte(0x1F); byte(0x84); byte(0x00); u32(0)
        default: break
        }
    }
}
