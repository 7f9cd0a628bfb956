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
        if state.pointee.wrapCount > 0 { insertWrapCalls(&block) }
        let toolCount = state.pointee.toolCount
        if toolCount == 0 { return block }
        var phase: UInt8 = 0
        while phase <= InstrumentationPhase.instrumentationToInstrumentation.rawValue {
            block.phase = InstrumentationPhase(rawValue: phase)!
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
        for m in 0..<block.metaCount where block.meta[m].before == index {
            emit(block.meta[m].instruction, appPC: appPC, &a)
        }
    }

    /// Meta instructions of positions `from...through` emitted later, at a point
    /// where the arithmetic flags may be live: flag-writing adds become
    /// flag-preserving ones.
    func emitDeferredMeta(_ block: InstrumentedBlock, from: Int, through: Int, appPC: UInt64, _ a: inout Assembler) {
        for m in 0..<block.metaCount where block.meta[m].before >= from && block.meta[m].before <= through {
            if case .add(let memory, let value) = block.meta[m].instruction {
                emit(.addPreservingFlags(memory, value), appPC: appPC, &a)
            } else {
                emit(block.meta[m].instruction, appPC: appPC, &a)
            }
        }
    }

    func emit(_ instruction: MetaInstruction, appPC: UInt64, _ a: inout Assembler) {
        switch instruction {
        case .add(let m, let v):
            a.add(m, imm32: v)
        case .addPreservingFlags(let m, let v):
            a.mov(gs(ContextField.metaSpill), .rax)
            a.mov(.rax, m)
            a.lea(.rax, .at(.rax, v))
            a.mov(m, .rax)
            a.mov(.rax, gs(ContextField.metaSpill))
        case .movRegisterImmediate(let r, let v):
            a.mov(r, imm64: v)
        case .movMemoryRegister(let m, let r):
            a.mov(m, r)
        case .movRegisterMemory(let r, let m):
            a.mov(r, m)
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
}
