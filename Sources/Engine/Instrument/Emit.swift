// SPDX-License-Identifier: GPL-2.0-only
//
// Running the registered tools on a block, and encoding the meta instructions they
// inserted.

extension Translator {
    /// Runs every tool's phases on the decoded block. Returns the block (with the
    /// possibly shortened instruction count and the inserted meta instructions).
    func instrument(_ pc: UInt64, _ count: Int) -> InstrumentedBlock {
        var block = InstrumentedBlock(
            startPC: pc, instructions: UnsafePointer(state.pointee.blockInstructions), count: count,
            meta: state.pointee.meta, metaCapacity: state.pointee.limits.maxMetaPerBlock,
            contextGSOffset: state.pointee.contextGSOffset)
        block.translator = state
        if state.pointee.wrapCount > 0 { insertWrapCalls(&block) }
        let toolCount = state.pointee.toolCount
        if toolCount == 0 { return block }
        var phase: UInt8 = 0
        while phase <= InstrumentationPhase.instrumentationToInstrumentation.rawValue {
            block.phase = InstrumentationPhase(rawValue: phase)!
            if block.phase == .analysis {
                // The block's end is final once app-to-app ran (it may truncate).
                block.flagsLiveAtEnd = flagsLive(after: block.instructions[block.count - 1])
                block.registersLiveAtEnd = registersLive(after: block.instructions[block.count - 1])
                if let hasFixup = state.pointee.host.hasFaultFixup {
                    for i in 0..<min(block.count, 128) where hasFixup(block.instructions[i].address) != 0 {
                        block.faultExits[i >> 6] |= 1 << UInt64(i & 63)
                    }
                }
                var k = 0
                var exit = block.sideExit()
                while let i = exit, k < InstrumentedBlock.maxSideExits {
                    block.sideExitFlags[k] = flagsLive(at: directTarget(block.instructions[i]))
                    block.sideExitRegisters[k] = registersLive(at: directTarget(block.instructions[i]))
                    k += 1
                    exit = block.sideExit(from: i + 1)
                }
                block.computeLiveness()
            }
            // Ascending priority, ties in registration order: a selection over the
            // small tool table, no sorting storage needed.
            var done: UInt32 = 0
            for _ in 0..<toolCount {
                var pick = -1
                for t in 0..<toolCount where done & (1 << UInt32(t)) == 0 {
                    if pick < 0 || state.pointee.tools[t].priority < state.pointee.tools[pick].priority { pick = t }
                }
                done |= 1 << UInt32(pick)
                let tool = state.pointee.tools[pick]
                if tool.phases & block.phase.bit != 0 {
                    block.toolStorage = tool.storageOffset
                    withUnsafeMutablePointer(to: &block) { tool.onBlock(tool.data, UnsafeMutableRawPointer($0), phase) }
                }
            }
            phase += 1
        }
        return block
    }

    /// Encodes the meta instructions inserted before application instruction
    /// `index` (in insertion order).
    func emitMeta(_ block: InstrumentedBlock, before index: Int, appPC: UInt64, _ a: inout Assembler) {
        var adds = FlagPreservingAdds()
        for m in 0..<block.metaCount where block.meta[m].before == index && !block.meta[m].onSideExit {
            let instruction = block.meta[m].instruction
            if case .addPreservingFlags(let memory, let value) = instruction {
                adds.add(memory, value, self, &a)
                continue
            }
            adds.finish(self, &a)
            if case .inlineCheck(let check) = instruction {
                let flagsLive = !block.arithmeticFlagsDead(before: index)
                emitInlineCheck(check, live: block.liveRegisters(before: index), flagsLive: flagsLive, &a)
            } else {
                emit(instruction, appPC: appPC, &a)
            }
        }
        adds.finish(self, &a)
    }

    /// Meta instructions of positions `from...through` emitted later, at a point
    /// where the arithmetic flags may be live: flag-writing adds become
    /// flag-preserving ones. Inline checks are dropped: their operands belong to
    /// instructions already emitted (checks between a swapgs pair: entry code, no
    /// heap).
    func emitDeferredMeta(_ block: InstrumentedBlock, from: Int, through: Int, appPC: UInt64, _ a: inout Assembler) {
        emitMetaWithoutChecks(block, appPC: appPC, preservingFlags: true, &a) {
            $0.before >= from && $0.before <= through && !$0.onSideExit
        }
    }

    /// Encodes the meta instructions on the taken path of side exit `index`.
    /// Inline checks have no place there (no operand of their own) and are left out.
    func emitSideExitMeta(_ block: InstrumentedBlock, _ index: Int, appPC: UInt64, _ a: inout Assembler) {
        emitMetaWithoutChecks(block, appPC: appPC, preservingFlags: false, &a) { $0.before == index && $0.onSideExit }
    }

    /// The selected meta instructions but inline checks, in insertion order;
    /// runs of flag-preserving adds share one spill.
    func emitMetaWithoutChecks(_ block: InstrumentedBlock, appPC: UInt64, preservingFlags: Bool, _ a: inout Assembler,
                               _ selected: (MetaEntry) -> Bool) {
        var adds = FlagPreservingAdds()
        for m in 0..<block.metaCount where selected(block.meta[m]) {
            switch block.meta[m].instruction {
            case .add(let memory, let value) where preservingFlags:
                adds.add(memory, value, self, &a)
            case .addPreservingFlags(let memory, let value):
                adds.add(memory, value, self, &a)
            case .inlineCheck:
                continue
            default:
                adds.finish(self, &a)
                emit(block.meta[m].instruction, appPC: appPC, &a)
            }
        }
        adds.finish(self, &a)
    }

    /// Room the block's side exits may take beyond its body: a trampoline with
    /// its meta instructions, and a stub, each.
    func sideExitBytes(_ block: InstrumentedBlock) -> Int {
        var exits = 0
        var metas = 0
        for i in 0..<block.count where block.isSideExit(i) { exits += 1 }
        for m in 0..<block.metaCount where block.meta[m].onSideExit { metas += 1 }
        return exits * 96 + metas * 64
    }

    func emit(_ instruction: MetaInstruction, appPC: UInt64, _ a: inout Assembler) {
        switch instruction {
        case .add(let m, let v):
            a.add(m, imm32: v)
        case .addPreservingFlags(let m, let v):
            var adds = FlagPreservingAdds()
            adds.add(m, v, self, &a)
            adds.finish(self, &a)
        case .movRegisterImmediate(let r, let v):
            a.mov(r, imm64: v)
        case .movMemoryRegister(let m, let r):
            a.mov(m, r)
        case .movRegisterMemory(let r, let m):
            a.mov(r, m)
        case .inlineCheck(let check):
            emitInlineCheck(check, live: 0xFFFF, flagsLive: true, &a)
        case .cleanCall(let function, let argument):
            // Resume point by RIP-relative lea, patched once the sequence is out.
            a.mov(gs(ContextField.spillRAX), .rax)
            let lea = a.count
            a.lea(.rax, .rip(a.address))
            a.mov(gs(ContextField.cleanCallReturn), .rax)
            a.mov(.rax, imm64: function)
            a.mov(gs(ContextField.cleanCallFunction), .rax)
            let value: UInt64
            switch argument {
            case .none: value = 0
            case .constant(let v): value = v
            case .applicationPC: value = appPC
            }
            a.mov(.rax, imm64: value)
            a.mov(gs(ContextField.cleanCallArgument), .rax)
            a.jmp(gs(ContextField.cleanCallRoutine))
            // lea rax, [rip+disp32] is 48 8d 05 disp32: the field ends the lea.
            let leaEnd = a.origin + UInt64(lea + 7)
            a.patch32(at: lea + 3, UInt32(truncatingIfNeeded: a.address &- leaEnd))
        }
    }

    /// An inline check: scratch registers (dead ones where there are, else
    /// spilled), effective address into the first, the tool's fast path, then
    /// either restore and go on, or restore and make the slow clean call.
    func emitInlineCheck(_ check: InlineCheck, live: UInt16, flagsLive: Bool, _ a: inout Assembler) {
        let spill = ContextField.inlineCheckSpill
        let scratchCount = 1 + Int(check.temporaries)
        // A register the application overwrites before reading it again costs
        // nothing to borrow.
        let borrowable = InstrumentedBlock.borrowableRegisters(live: live, flagsLive: flagsLive)
        var taken: UInt16 = 0
        var scratch: InlineArray<3, GPR> = InlineArray(repeating: .r11)
        var saved: UInt8 = 0  // bit k: scratch k is live, kept in spill + 8k
        for k in 0..<scratchCount {
            var pick: GPR? = nil
            var order = Self.scratchPreference
            while pick == nil, order != 0 {
                let r = GPR(rawValue: UInt8(order & 0xF))!
                if borrowable & ~taken & (1 << r.rawValue) != 0 { pick = r }
                order >>= 4
            }
            if pick == nil {
                // None dead: the first of r11, r10, r9 not already taken, spilled.
                var order = Self.scratchPreference
                while pick == nil {
                    let r = GPR(rawValue: UInt8(order & 0xF))!
                    if taken & (1 << r.rawValue) == 0 { pick = r }
                    order >>= 4
                }
                saved |= 1 << UInt8(k)
            }
            scratch[k] = pick!
            taken |= 1 << pick!.rawValue
        }
        // The address first, computed from the application's own register values.
        if saved & 1 != 0 { a.mov(gs(spill), scratch[0]) }
        a.lea(scratch[0], check.memory)
        for k in 1..<scratchCount where saved & (1 << UInt8(k)) != 0 { a.mov(gs(spill + Int32(8 * k)), scratch[k]) }
        if flagsLive {
            a.mov(gs(spill + 24), .rax)
            a.lahf()
            a.seto(.rax)
        }
        var site = InlineCheckSite(assembler: a, argument: check.argument, address: scratch[0],
                                   temporary0: scratch[1], temporary1: scratch[2])
        let emitter = unsafeBitCast(UnsafeRawPointer(bitPattern: UInt(check.emitter))!, to: InlineCheckEmitter.self)
        withUnsafeMutablePointer(to: &site) {
            emitter(UnsafeMutableRawPointer(bitPattern: UInt(check.emitterData)), UnsafeMutableRawPointer($0))
        }
        a = site.assembler
        if site.tooManyBranches { a.ud2() }  // an emitter bug must not pass silently

        func restore(_ a: inout Assembler) {
            if flagsLive {
                a.addAL(0x7F)
                a.sahf()
                a.mov(.rax, gs(spill + 24))
            }
            for k in 0..<scratchCount where saved & (1 << UInt8(k)) != 0 {
                a.mov(scratch[k], gs(spill + Int32(8 * k)))
            }
        }
        // The passing path should take one branch, not fall through into a jump
        // over the slow path: when the fast path ends in a branch to the slow
        // path, that branch is inverted to jump to `fine`, and the slow path
        // follows it (and jumps over `fine` instead).
        var inverted = -1
        if site.branchCount > 0 {
            let last = site.branch(site.branchCount - 1)
            if last.slow && last.offset + 6 == a.count { inverted = site.branchCount - 1 }
        }
        var fine: UInt64 = 0
        var slow: UInt64 = 0
        var skip = -1  // the jmp over the part that does not run, patched to `done`
        func emitFine(_ a: inout Assembler) {
            fine = a.address
            restore(&a)
        }
        func emitSlow(_ a: inout Assembler) {
            slow = a.address
            a.mov(gs(ContextField.inlineCheckAddress), scratch[0])
            restore(&a)
            emit(.cleanCall(function: check.slowFunction, argument: .constant(check.slowArgument)), appPC: 0, &a)
        }
        if inverted >= 0 {
            emitSlow(&a)
            skip = a.count
            a.jmp(to: a.address)
            emitFine(&a)
        } else {
            emitFine(&a)
            skip = a.count
            a.jmp(to: a.address)
            emitSlow(&a)
        }
        let done = a.address
        // jmp rel32 is E9 disp32, jcc rel32 is 0F 8x disp32: the displacement ends each.
        a.patch32(at: skip + 1, UInt32(truncatingIfNeeded: done &- (a.origin + UInt64(skip + 5))))
        for i in 0..<site.branchCount {
            let b = site.branch(i)
            let end = a.origin + UInt64(b.offset + 6)
            var toSlow = b.slow
            if i == inverted, !a.overflowed {
                let opcode = a.base.load(fromByteOffset: b.offset + 1, as: UInt8.self)
                a.base.storeBytes(of: opcode ^ 1, toByteOffset: b.offset + 1, as: UInt8.self)  // cc ^ 1: the negation
                toSlow = false
            }
            a.patch32(at: b.offset + 2, UInt32(truncatingIfNeeded: (toSlow ? slow : fine) &- end))
        }
    }
}

extension Translator {
    /// Scratch registers for inline checks, in the order they are borrowed (a
    /// nibble each, GPR numbers, first in the low nibble): r11, r10, r9, r8, rdi,
    /// rsi, rdx, rcx, rax, rbx, r12 to r15. The first three are the ones spilled
    /// when none is dead.
    static let scratchPreference: UInt64 = 0xFEDC_3012_6789_AB
}

/// Adds that leave the flags alone: `mov`, `lea`, `mov` through rax, which is
/// spilled once for a run of them (inscount's counter and its profile slot).
/// The memory operands must not use rax.
struct FlagPreservingAdds {
    var raxSpilled = false

    mutating func add(_ m: AsmMemory, _ value: Int32, _ t: Translator, _ a: inout Assembler) {
        if !raxSpilled {
            a.mov(t.gs(ContextField.metaSpill), .rax)
            raxSpilled = true
        }
        a.mov(.rax, m)
        a.lea(.rax, .at(.rax, value))
        a.mov(m, .rax)
    }

    /// Gives rax back, if a run is open.
    mutating func finish(_ t: Translator, _ a: inout Assembler) {
        guard raxSpilled else { return }
        a.mov(.rax, t.gs(ContextField.metaSpill))
        raxSpilled = false
    }
}
