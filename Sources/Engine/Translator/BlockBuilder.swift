// SPDX-License-Identifier: GPL-2.0-only
//
// Translating one block: decode from the native PC up to and including the first
// control transfer other than a conditional branch, copy the instructions
// (RIP-relative displacements re-encoded for their new address), mangle the final
// transfer, emit exit stubs. Conditional branches on the way (up to
// `InstrumentedBlock.maxSideExits`) are side exits: their fall-through continues
// in the block, so a branch not taken costs no jump of its own.

extension Translator {
    /// The cache PC for native `pc`, translating it if needed; 0 on failure (see
    /// `state.pointee.lastError`).
    public func translate(_ pc: UInt64) -> UInt64 {
        let existing = lookup(pc)
        if existing != 0 { return existing }
        return build(pc)
    }

    /// Translates the block at `pc` anew, whether or not a translation exists.
    func build(_ pc: UInt64) -> UInt64 {
        if state.pointee.nativeExitCount > 0 && isNativeExit(pc) { return emitNativeExit(pc) }
        let count = decodeBlock(pc)
        if count == 0 { return 0 }
        return emitBlock(pc, count)
    }

    /// Replaces the translation of `pc`, if there is one, with a fresh one (its
    /// instrumentation changed): the lookup entry and every linked branch to it
    /// move to the new fragment. Code already inside the old fragment finishes
    /// there; the old fragment stays in the cache until it is flushed. Returns
    /// false when the new translation failed (the old one stays in use).
    func retranslate(_ pc: UInt64) -> Bool {
        guard lookup(pc) != 0 else { return true }
        let cachePC = build(pc)
        guard cachePC != 0 else { return false }
        state.pointee.stats.retranslations += 1
        for i in 0..<state.pointee.stubCount where state.pointee.stubs[i].target == pc && state.pointee.stubs[i].linked {
            state.pointee.stubs[i].linked = false
            link(stub: i, to: cachePC)
        }
        return true
    }

    /// Decodes the block at `pc` into the scratch list; returns the instruction count
    /// (0 on failure). The instructions' bytes lie back to back in `blockBytes`.
    ///
    /// A direct `jmp` (up to `maxElidedJumps` of them) does not end the block:
    /// decoding goes on at its target, whose bytes are read in after the jump's,
    /// and the jump itself is emitted as nothing. A loop's dispatch then runs
    /// through one fragment instead of hopping between several.
    func decodeBlock(_ pc: UInt64) -> Int {
        let limits = state.pointee.limits
        let buffer = state.pointee.blockBytes
        var readable = state.pointee.host.readCode(buffer, pc, limits.blockBufferBytes)
        if readable <= 0 { return Int(fail(.unreadableCode, at: pc)) }
        let instructions = state.pointee.blockInstructions
        var offset = 0
        var count = 0
        var sideExits = 0
        var sawSwapgs = false
        var spans = DecodedSpans(start: pc)
        var address = pc
        while count < limits.maxBlockInstructions {
            let window = UnsafeRawBufferPointer(start: buffer + offset, count: readable - offset)
            let status = Decoder.decode(bytes: window, address: address, into: &instructions[count])
            if status != .ok {
                if count > 0 { break }  // end the block before it; the next block reports it
                return Int(fail(status == .truncated ? .unreadableCode : .undecodable, at: address))
            }
            // A swapgs pair is emitted as one unit (emitBlock): none past a side
            // exit, and no side exit after one.
            if instructions[count].mnemonic == .swapgs {
                if sideExits > 0 { break }
                sawSwapgs = true
            }
            let insn = instructions[count]
            offset += Int(insn.length)
            address = insn.nextAddress
            count += 1
            spans.extend(to: address)
            if insn.controlFlow == .jcc && sideExits < InstrumentedBlock.maxSideExits && !sawSwapgs {
                sideExits += 1
            } else if insn.controlFlow == .jmp, !sawSwapgs, count < limits.maxBlockInstructions,
                      let target = insn.directBranchTarget, spans.elided < min(limits.maxElidedJumps, DecodedSpans.capacity - 1),
                      mayElide(jumpTo: target, from: pc), !spans.contains(target) {
                let n = state.pointee.host.readCode(buffer + offset, target, limits.blockBufferBytes - offset)
                if n < 15 { break }  // the jump stays the block's transfer
                readable = offset + n
                address = target
                spans.begin(at: target)
            } else if insn.controlFlow != .none {
                break
            }
            if offset + 15 > readable { break }
            // Code the host runs natively starts a fragment of its own.
            if state.pointee.nativeExitCount > 0 && isNativeExit(address) { break }
        }
        state.pointee.blockLow = spans.low
        state.pointee.blockHigh = spans.high
        return count
    }

    /// How far from a block's start an elided jump may lead: boundary entries keep
    /// native offsets in 16 bits, and a block spans at most `blockBufferBytes` more.
    static let maxElisionDistance: UInt64 = 16 << 10

    /// Whether a block starting at `blockPC` may continue at the target of a direct
    /// jump: not into code that is special at its own address (a branch thunk,
    /// native code, a wrapped function's entry: each needs a fragment of its own),
    /// nor into another function where the host knows function starts (a tail
    /// call: the kernel's per-block profile names each block by its function).
    func mayElide(jumpTo target: UInt64, from blockPC: UInt64) -> Bool {
        let distance = target > blockPC ? target - blockPC : blockPC - target
        return distance <= Translator.maxElisionDistance && !isBranchThunk(target)
            && !(state.pointee.nativeExitCount > 0 && isNativeExit(target))
            && !(state.pointee.wrapCount > 0 && isWrapped(target))
            && state.pointee.host.isFunctionStart?(target) ?? 0 == 0
    }

    /// Emits the decoded block; returns its cache PC or 0.
    func emitBlock(_ pc: UInt64, _ decoded: Int) -> UInt64 {
        let instructions = state.pointee.blockInstructions
        let buffer = state.pointee.blockBytes
        let block = instrument(pc, decoded)
        let count = block.count
        let last = instructions[count - 1]
        let nativeEnd = last.nextAddress
        var nativeBytes = 0
        for i in 0..<count { nativeBytes += Int(instructions[i].length) }
        // Generous bound: copies, mangling, meta instructions (an inline check
        // with its spills and slow-path clean call is the largest, about 300
        // bytes) and at most three exit stubs.
        let worstCase = nativeBytes * 2 + count * 8 + block.metaCount * 384 + 256 + sideExitBytes(block)
        guard let u = unit(near: pc, bytes: worstCase) else { return fail(.cacheFull, at: pc) }
        guard state.pointee.fragmentCount < state.pointee.limits.maxFragments else {
            return fail(.tooManyFragments, at: pc)
        }
        var a = assembler(unit: u)
        let start = a.address
        emitIndirectEntry(&a)
        let body = a.address
        var exits = BlockExits()
        let boundaryStart = state.pointee.boundaryCount
        state.pointee.blockStart = pc
        guard boundaryStart + 2 * count + 2 <= state.pointee.limits.maxBoundaries else {
            return fail(.tooManyFragments, at: pc)
        }

        // swapgs (kernel): translated code always runs with the kernel's GS base,
        // because its spills and counters live there. An unpaired swapgs (entry
        // paths switching to the kernel's GS, which the entry stub already did) is
        // dropped; a pair in one block (`swapgs; rdgsbase; swapgs`, under
        // disabled interrupts) is copied as it is, and instrumentation meant for
        // positions between the two moves after the second.
        var swappedUntil = -1
        var deferredFrom = -1
        // Side exits with code on their taken path: the branch goes to a
        // trampoline after the block's body, which runs that code and leaves.
        var trampolines = SideExitTrampolines()
        var sideExitCount = -1  // exits before the final transfer's (-1: no final transfer)
        var bufferOffset = 0  // decodeBlock put the instructions back to back
        for i in 0..<count {
            let insn = instructions[i]
            let bytes = UnsafeRawBufferPointer(start: buffer + bufferOffset, count: Int(insn.length))
            bufferOffset += Int(insn.length)
            // An elided jump has no code and no boundary: its target's boundary,
            // at the same cache offset, must be the one a fault there finds.
            let elided = insn.controlFlow == .jmp && i < count - 1
            if !elided { recordBoundary(cacheOffset: a.count, native: insn.address) }
            if block.metaCount > 0 {
                if i <= swappedUntil {
                    if deferredFrom < 0 { deferredFrom = i }
                } else {
                    if deferredFrom >= 0 {
                        emitDeferredMeta(block, from: deferredFrom, through: i - 1, appPC: insn.address, &a)
                        deferredFrom = -1
                    }
                    emitMeta(block, before: i, appPC: insn.address, &a)
                    if !elided { recordBoundary(cacheOffset: a.count, native: insn.address) }
                }
            }
            if insn.mnemonic == .swapgs && i > swappedUntil {
                var closing = i + 1
                while closing < count && instructions[closing].mnemonic != .swapgs { closing += 1 }
                if closing == count { continue }  // unpaired: dropped
                swappedUntil = closing
            }
            if elided {
                // The next instruction is its target.
            } else if i == count - 1 && insn.controlFlow != .none {
                sideExitCount = exits.count
                if !mangleTransfer(insn, bytes, &a, &exits) { return fail(state.pointee.lastError, at: insn.address) }
            } else if insn.controlFlow == .jcc {
                let condition = Condition(rawValue: insn.opcode & 0xF)!
                if block.hasSideExitMeta(i) {
                    a.jcc(condition, to: a.address)  // to the trampoline, patched below
                    trampolines.add(instruction: i, field: a.count - 4)
                } else {
                    emitExitJump(&a, &exits, target: directTarget(insn), condition: condition)
                }
            } else {
                let error = copy(insn, bytes, &a)
                if error != .none { return fail(error, at: insn.address) }
            }
        }
        if deferredFrom >= 0 { emitDeferredMeta(block, from: deferredFrom, through: count - 1, appPC: nativeEnd, &a) }
        if block.overflowed { return fail(.cacheFull, at: pc) }
        let finalExits = sideExitCount < 0 ? 0 : exits.count - sideExitCount
        if (last.controlFlow == .none || falls(through: last.controlFlow)) && finalExits == 0 {
            // The block was cut (length limit, undecodable next) or ends in an
            // instruction that continues: exit to the next native PC.
            emitExitJump(&a, &exits, target: nativeEnd, condition: nil)
        }
        for k in 0..<trampolines.count {
            let i = trampolines.instruction[k]
            let field = trampolines.field[k]
            a.patch32(at: field, UInt32(bitPattern: Int32(truncatingIfNeeded: a.count - (field + 4))))
            emitSideExitMeta(block, i, appPC: instructions[i].address, &a)
            emitExitJump(&a, &exits, target: directTarget(instructions[i]), condition: nil)
        }
        guard emitStubs(&a, &exits) else { return fail(state.pointee.lastError, at: pc) }
        if a.overflowed { return fail(.cacheFull, at: pc) }
        if a.outOfReach { return fail(.outOfReach, at: pc) }
        commit(unit: u, a)

        appendFragment(Fragment(
            nativeStart: pc, nativeEnd: state.pointee.blockHigh, nativeLow: state.pointee.blockLow,
            cacheStart: start, cacheEnd: a.address,
            instructions: UInt32(count), boundaryStart: UInt32(boundaryStart),
            boundaryCount: UInt32(state.pointee.boundaryCount - boundaryStart)))
        guard insertLookup(pc, start) else { return fail(.tooManyFragments, at: pc) }
        state.pointee.stats.blocks += 1
        state.pointee.stats.nativeBytes += UInt64(nativeBytes)
        state.pointee.stats.cacheBytes += UInt64(a.count)
        return body
    }

    /// Code the host wants run natively (kernel: the return-to-user tails, whose
    /// faults the kernel recognises by their exact native addresses, and kdbt's own
    /// text): a fragment for an address in [start, end) is a jump to it, and blocks
    /// stop before such an address. The jump itself is a native boundary.
    ///
    /// `returnThrough` (non-zero): the range holds functions translated code
    /// calls (a host's own module), and their returns must come back into the
    /// cache. An exit to one of its functions (a function start, as the host's
    /// `isFunctionStart` says) passes
    /// the caller's return address on, under a return address of `returnThrough`,
    /// a native routine that pops it and continues at its translation (or
    /// natively, once the host has let go); exits elsewhere in the range (returns
    /// into the host's code) are plain. `returnThrough` must be in the top or
    /// bottom 2 GiB.
    public func addNativeExit(_ start: UInt64, end: UInt64, returnThrough: UInt64 = 0) -> Bool {
        guard state.pointee.nativeExitCount < 8, state.pointee.fragmentCount == 0, start < end else { return false }
        state.pointee.nativeExitStart[state.pointee.nativeExitCount] = start
        state.pointee.nativeExitEnd[state.pointee.nativeExitCount] = end
        state.pointee.nativeExitReturn[state.pointee.nativeExitCount] = returnThrough
        state.pointee.nativeExitCount += 1
        return true
    }

    /// Names the kernel's branch thunks: `call`/`jmp` to the retpoline thunk of
    /// register r (`__x86_indirect_thunk_r`) is translated as `call`/`jmp *r`, and
    /// `jmp` to the return thunk as `ret`. That is what they mean; run literally, a
    /// retpoline costs a call, a store and a second lookup per indirect call, and the
    /// cache's own indirect jumps are not retpolined anyway. The thunks' own
    /// instructions then do not run (inscount does not count them). Before the
    /// first translation; false otherwise.
    public func setBranchThunks(indirect: (GPR) -> UInt64, return returnThunk: UInt64) -> Bool {
        guard state.pointee.fragmentCount == 0 else { return false }
        for r in 0..<16 where r != Int(GPR.rsp.rawValue) {
            state.pointee.indirectThunks[r] = indirect(GPR(rawValue: UInt8(r))!)
        }
        state.pointee.returnThunk = returnThunk
        return true
    }

    /// Whether `target` is the return thunk or a retpoline thunk.
    func isBranchThunk(_ target: UInt64) -> Bool {
        target == state.pointee.returnThunk || thunkRegister(target) != nil
    }

    /// The register whose retpoline thunk is at `target`, if any.
    func thunkRegister(_ target: UInt64) -> GPR? {
        guard target != 0 else { return nil }
        for r in 0..<16 where state.pointee.indirectThunks[r] == target { return GPR(rawValue: UInt8(r)) }
        return nil
    }

    public func isNativeExit(_ pc: UInt64) -> Bool { nativeExitRange(pc) != nil }

    func nativeExitRange(_ pc: UInt64) -> Int? {
        for i in 0..<state.pointee.nativeExitCount
        where pc >= state.pointee.nativeExitStart[i] && pc < state.pointee.nativeExitEnd[i] {
            return i
        }
        return nil
    }

    func emitNativeExit(_ pc: UInt64) -> UInt64 {
        guard let u = unit(near: pc, bytes: 64) else { return fail(.cacheFull, at: pc) }
        guard state.pointee.fragmentCount < state.pointee.limits.maxFragments,
              state.pointee.boundaryCount < state.pointee.limits.maxBoundaries
        else { return fail(.tooManyFragments, at: pc) }
        var a = assembler(unit: u)
        let start = a.address
        emitIndirectEntry(&a)
        let body = a.address
        let boundaryStart = state.pointee.boundaryCount
        let through = nativeExitRange(pc).map { state.pointee.nativeExitReturn[$0] } ?? 0
        if through != 0 && state.pointee.host.isFunctionStart?(pc) ?? 0 != 0 {
            // [rsp] = R  ->  [rsp] = through, [rsp+8] = R (no flags touched). Not
            // a native boundary: an interrupt here waits for the jump.
            a.push(.at(.rsp))
            a.mov(.at(.rsp), imm32: Int32(truncatingIfNeeded: Int64(bitPattern: through)))
        }
        state.pointee.blockStart = pc
        recordBoundary(cacheOffset: a.count, native: pc)
        a.jmp(to: pc)
        if a.outOfReach { return fail(.outOfReach, at: pc) }
        if a.overflowed { return fail(.cacheFull, at: pc) }
        commit(unit: u, a)
        appendFragment(Fragment(
            nativeStart: pc, nativeEnd: pc, nativeLow: pc, cacheStart: start, cacheEnd: a.address, instructions: 0,
            boundaryStart: UInt32(boundaryStart), boundaryCount: 1))
        guard insertLookup(pc, start) else { return fail(.tooManyFragments, at: pc) }
        return body
    }

    /// Records that cache offset `cacheOffset` of the block being emitted holds
    /// the native state before `native` (within `maxElisionDistance` of the
    /// block's start, so the offset fits).
    func recordBoundary(cacheOffset: Int, native: UInt64) {
        let i = state.pointee.boundaryCount
        state.pointee.boundaries[i] = Boundary(cacheOffset: UInt16(truncatingIfNeeded: cacheOffset),
                                               nativeOffset: Int16(truncatingIfNeeded: Int64(bitPattern: native &- state.pointee.blockStart)))
        state.pointee.boundaryCount += 1
    }

    /// Transfers after which execution continues at the next instruction.
    func falls(through flow: ControlFlow) -> Bool {
        switch flow {
        case .syscall, .int3, .interrupt, .int1, .hlt, .ud: return true
        default: return false
        }
    }

    /// Copies a non-transfer instruction to the cache, its RIP-relative
    /// displacement re-encoded for the new address (X86/Relocate.swift).
    func copy(_ insn: Instruction, _ bytes: UnsafeRawBufferPointer, _ a: inout Assembler) -> TranslateError {
        switch Relocator.relocate(insn, bytes: bytes, to: a.address, into: &a) {
        case .relocated: return .none
        case .outOfReach: return .outOfReach
        case .noRoom: return .cacheFull
        case .unsupported: return .unsupportedInstruction
        }
    }
}

/// The exits of the block being emitted: where each jump to a stub sits.
struct BlockExits {
    // Room for the side exits and two more (a final conditional branch's).
    var count = 0
    var targets: InlineArray<7, UInt64> = InlineArray(repeating: 0)
    var syscall: InlineArray<7, Bool> = InlineArray(repeating: false)
    /// Offset (in the assembler) of each branch's rel32 field.
    var fields: InlineArray<7, Int> = InlineArray(repeating: 0)
}

/// The side exits of the block being emitted that have a trampoline: the
/// instruction's index and where its branch's rel32 is.
struct SideExitTrampolines {
    var count = 0
    var instruction: InlineArray<4, Int> = InlineArray(repeating: 0)
    var field: InlineArray<4, Int> = InlineArray(repeating: 0)

    mutating func add(instruction i: Int, field f: Int) {
        instruction[count] = i
        field[count] = f
        count += 1
    }
}

extension Translator {
    /// Emits `jmp rel32` (or `jcc rel32`) to a stub for `target`, with the rel32
    /// field 4-byte aligned so linking can rewrite it with one atomic store.
    func emitExitJump(_ a: inout Assembler, _ exits: inout BlockExits, target: UInt64, condition: Condition?,
                      syscall: Bool = false) {
        let opcodeBytes = condition == nil ? 1 : 2
        // Linking rewrites the rel32 with one 4-byte store while other CPUs may run
        // it: the field is kept 4-byte aligned. (With only an aligned quadword
        // around it, which the SDM and the APM call atomic for data, attach cycles
        // under load crashed in 3 of 4 guest runs, in zeroed code-pool memory; the
        // cause was not found.) The padding is up to three CS segment-override
        // prefixes on the branch itself, which 64-bit mode ignores for branches
        // (assemblers pad branches the same way): no instruction of its own, so
        // every exit costs one instruction, whereas a NOP ran on every path.
        let misaligned = Int((a.address &+ UInt64(opcodeBytes)) & 3)
        if misaligned != 0 { for _ in misaligned..<4 { a.byte(Assembler.ignoredPrefix) } }
        exits.fields[exits.count] = a.count + opcodeBytes
        exits.targets[exits.count] = target
        exits.syscall[exits.count] = syscall
        exits.count += 1
        if let c = condition { a.jcc(c, to: a.address) } else { a.jmp(to: a.address) }
    }

    /// Stubs after the block: `mov %rax,%gs:spillRAX; mov $index,%eax;
    /// jmp *%gs:fcacheReturn`, and the block's branches pointed at them.
    func emitStubs(_ a: inout Assembler, _ exits: inout BlockExits) -> Bool {
        for e in 0..<exits.count {
            let index = state.pointee.stubCount
            guard index < state.pointee.limits.maxStubs else {
                state.pointee.lastError = .tooManyFragments
                return false
            }
            let stub = a.address
            a.mov(gs(ContextField.spillRAX), .rax)
            a.mov(.rax, imm64: UInt64(index))
            a.jmp(gs(ContextField.fcacheReturn))
            let field = exits.fields[e]
            let fieldAddress = a.origin + UInt64(field)
            a.patch32(at: field, UInt32(bitPattern: Int32(truncatingIfNeeded: Int64(bitPattern: stub &- (fieldAddress + 4)))))
            state.pointee.stubs[index] = LinkStub(
                target: exits.targets[e], branchField: fieldAddress, stub: stub, linked: false,
                isSyscall: exits.syscall[e])
            state.pointee.stubCount += 1
        }
        return true
    }

    /// Points a stub's branch at the fragment now translated for its target.
    func link(stub index: Int, to cachePC: UInt64) {
        var stub = state.pointee.stubs[index]
        guard !stub.linked, !stub.isSyscall, let rel = Assembler.rel32(from: stub.branchField + 4, to: cachePC) else { return }
        UnsafeMutableRawPointer(bitPattern: UInt(stub.branchField))!
            .storeBytes(of: UInt32(bitPattern: rel), as: UInt32.self)
        stub.linked = true
        state.pointee.stubs[index] = stub
        state.pointee.stats.links += 1
    }

    /// Whether any fragment translated native code in [start, end).
    public func hasFragments(from start: UInt64, to end: UInt64) -> Bool {
        for i in 0..<state.pointee.fragmentCount {
            let f = state.pointee.fragments[i]
            if f.nativeLow < end && f.nativeEnd > start { return true }
        }
        return false
    }

    /// Every linked branch back to its stub and every lookup entry removed: from
    /// now on each fragment exit and indirect branch reaches the dispatcher (the
    /// kernel host's detach). Aligned 4- and 8-byte stores: code running
    /// concurrently sees the old or the new target.
    public func unlinkAll() {
        for i in 0..<state.pointee.stubCount where state.pointee.stubs[i].linked {
            let stub = state.pointee.stubs[i]
            if let rel = Assembler.rel32(from: stub.branchField + 4, to: stub.stub) {
                UnsafeMutableRawPointer(bitPattern: UInt(stub.branchField))!.storeBytes(of: UInt32(bitPattern: rel), as: UInt32.self)
                state.pointee.stubs[i].linked = false
            }
        }
        state.pointee.lookup.clear()
        state.pointee.indirect.clear()
    }

    /// The dispatcher for hosts without policy of their own: continue at the exit's
    /// target. Returns the cache PC to go to (the leave routine for the in-process
    /// sentinel), or 0 when translation failed (see `lastError`).
    public static func dispatch(_ context: UnsafeMutableRawPointer) -> UInt64 {
        let translator = Translator(context: context)
        let exit = translator.exit(of: context)
        if exit.target == context.load(fromByteOffset: Int(ContextField.sentinel), as: UInt64.self) {
            return translator.state.pointee.leave
        }
        return translator.resume(at: exit.target, after: exit)
    }

    /// The translator a context belongs to.
    public init(context: UnsafeMutableRawPointer) {
        state = UnsafeMutablePointer<TranslatorState>(
            bitPattern: UInt(context.load(fromByteOffset: Int(ContextField.translator), as: UInt64.self)))!
    }

    /// Why the application left the cache (read from the context).
    public func exit(of context: UnsafeMutableRawPointer) -> CacheExit {
        state.pointee.stats.dispatches += 1
        let reason = context.load(fromByteOffset: Int(ContextField.exitReason), as: UInt64.self)
        if reason == ContextField.indirectExit {
            state.pointee.stats.indirectMisses += 1
            return CacheExit(
                target: context.load(fromByteOffset: Int(ContextField.indirectTarget), as: UInt64.self),
                stub: -1, isSyscall: false)
        }
        if reason == ContextField.iretExit {
            // The frame's rip, at the application's rsp.
            let sp = context.load(fromByteOffset: Int(ContextField.appRegister(.rsp)), as: UInt64.self)
            let rip = UnsafePointer<UInt64>(bitPattern: UInt(sp))!.pointee
            return CacheExit(target: rip, stub: -1, isSyscall: false, isIret: true)
        }
        let stub = state.pointee.stubs[Int(reason)]
        return CacheExit(target: stub.target, stub: Int(reason), isSyscall: stub.isSyscall)
    }

    /// The cache PC for native `target`, translating it and linking the exit's
    /// branch to it; 0 when translation failed.
    public func resume(at target: UInt64, after exit: CacheExit) -> UInt64 {
        let cachePC = translate(target)
        guard cachePC != 0, exit.target == target else { return cachePC }
        if exit.stub >= 0 && !exit.isSyscall {
            link(stub: exit.stub, to: cachePC)
        } else if exit.stub < 0 && !exit.isIret {
            // An indirect branch's target: from now on the probes find it. (A full
            // table only means more trips through here.)
            _ = state.pointee.indirect.insert(target, cachePC - UInt64(Translator.indirectEntryBytes))
        }
        return cachePC
    }
}

/// An exit from the cache, as the dispatcher sees it.
public struct CacheExit {
    /// Native PC the application continues at (for a syscall exit: the address of
    /// the `syscall` instruction).
    public var target: UInt64
    /// Link-stub index, or -1 for an indirect-branch miss.
    public var stub: Int
    public var isSyscall: Bool
    /// An `iretq`: `target` is its frame's rip; the host returns through the frame
    /// (`TranslatorState.iretRoutine`) after deciding where it goes.
    public var isIret: Bool = false
}

/// The native address ranges a block being decoded has covered so far: one per
/// elided jump, plus the first.
struct DecodedSpans {
    static let capacity = 8
    var starts: InlineArray<8, UInt64> = InlineArray(repeating: 0)
    var ends: InlineArray<8, UInt64> = InlineArray(repeating: 0)
    var count = 1
    var elided: Int { count - 1 }

    init(start: UInt64) {
        starts[0] = start
        ends[0] = start
    }

    mutating func extend(to end: UInt64) { ends[count - 1] = end }

    mutating func begin(at start: UInt64) {
        starts[count] = start
        ends[count] = start
        count += 1
    }

    /// Whether `pc` was decoded already (a jump back into the block: a loop).
    func contains(_ pc: UInt64) -> Bool {
        for i in 0..<count where pc >= starts[i] && pc < ends[i] { return true }
        return false
    }

    var low: UInt64 {
        var v = starts[0]
        for i in 1..<count { v = min(v, starts[i]) }
        return v
    }

    var high: UInt64 {
        var v = ends[0]
        for i in 1..<count { v = max(v, ends[i]) }
        return v
    }
}
