// SPDX-License-Identifier: GPL-2.0-only
//
// stackguard: catches a kernel stack about to overflow while it is still intact.
// Instructions that move the stack pointer down (push, call, enter, sub/lea rsp)
// get an inline check of the deepest point they reach: one check for each run
// of such moves in a block, placed where it is cheapest (see `StackRun.flush`).
// Kernel stacks are 16 KiB and (task stacks) 16 KiB-aligned, so the low 14 bits
// of the new stack pointer are the bytes left below it; when they drop below a
// per-CPU trigger, the slow path finds the real stack (task, IRQ, exception) and
// its bounds, updates that stack kind's high-water mark, and, below the
// threshold, records a finding once per call path: the call chain with each
// frame's stack usage. The trigger follows the deepest point seen on the task
// stack, so the slow path runs only when a CPU goes deeper than before or below
// the threshold.

#if canImport(Protocol)
import Protocol
#endif

/// What stackguard needs from its host.
public struct StackGuardHostFunctions {
    /// The stack holding `sp`: its StackKind, lowest address and size (0: not a
    /// stack the host knows).
    public var classify: @convention(c) (UInt64, UnsafeMutablePointer<UInt64>, UnsafeMutablePointer<UInt64>) -> UInt32
    /// The call chain at (pc, sp, bp): return addresses into the first buffer,
    /// each frame's stack pointer into the second (at most `capacity`); the count.
    public var captureFrames: @convention(c) (UInt64, UInt64, UInt64, UnsafeMutablePointer<UInt64>,
                                              UnsafeMutablePointer<UInt64>, Int32) -> Int32
    /// The current task's pid and comm (16 bytes); returns the CPU.
    public var currentTask: @convention(c) (UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt8>) -> UInt32
    public var now: @convention(c) () -> UInt64
    /// Bytes the function at a code address has pushed or allocated since its
    /// entry, by known stack-pointer moves only (the kernel's ORC data: a
    /// stack-pointer-based frame); -1 when unknown.
    public var frameBytes: @convention(c) (UInt64) -> Int32

    public init(classify: @convention(c) (UInt64, UnsafeMutablePointer<UInt64>, UnsafeMutablePointer<UInt64>) -> UInt32,
                captureFrames: @convention(c) (UInt64, UInt64, UInt64, UnsafeMutablePointer<UInt64>,
                                               UnsafeMutablePointer<UInt64>, Int32) -> Int32,
                currentTask: @convention(c) (UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt8>) -> UInt32,
                now: @convention(c) () -> UInt64,
                frameBytes: @convention(c) (UInt64) -> Int32) {
        self.classify = classify
        self.captureFrames = captureFrames
        self.currentTask = currentTask
        self.now = now
        self.frameBytes = frameBytes
    }
}

/// The least free stack seen, per CPU and stack kind (bytes; UInt32.max: none yet).
public struct StackHighWater {
    public var task: UInt32 = .max
    public var irq: UInt32 = .max
    public var exception: UInt32 = .max
    public init() {}
}

public struct StackGuardState {
    public var host: StackGuardHostFunctions
    /// A finding when fewer bytes than this are left.
    public var threshold: UInt64
    var findings: UnsafeMutablePointer<FindingsRing>
    /// Per CPU (by the host's CPU number, below `cpus`).
    var highWater: UnsafeMutablePointer<StackHighWater>
    public let cpus: Int
    /// The per-context trigger's %gs offset (set at registration).
    public var triggerOffset: Int32 = 0
    /// Code not instrumented: the kernel's entry code, which runs on the small
    /// entry and exception stacks with a fixed, known depth.
    public var excludedStart: UInt64 = 0
    public var excludedEnd: UInt64 = 0
    public var slowPaths: UInt64 = 0
    public var checksInserted: UInt64 = 0
}

public enum StackGuard {
    public static let name: StaticString = "stackguard"
    public static let storageBytes: Int32 = 8
    /// Kernel stack size and alignment (THREAD_SIZE on x86-64 with KASAN off).
    public static let stackBytes: UInt64 = 16384

    public static func create(in arena: inout Arena, host: StackGuardHostFunctions, threshold: UInt64, cpus: Int,
                              findings: UnsafeMutablePointer<FindingsRing>) -> UnsafeMutablePointer<StackGuardState>? {
        guard let state = arena.allocate(StackGuardState.self),
              let marks = arena.allocate(bytes: cpus * MemoryLayout<StackHighWater>.stride, alignment: 8)
        else { return nil }
        let highWater = marks.bindMemory(to: StackHighWater.self, capacity: cpus)
        highWater.initialize(repeating: StackHighWater(), count: cpus)
        state.initialize(to: StackGuardState(host: host, threshold: threshold, findings: findings,
                                             highWater: highWater, cpus: cpus))
        return state
    }

    public static func arenaBytes(cpus: Int) -> Int {
        MemoryLayout<StackGuardState>.stride + cpus * MemoryLayout<StackHighWater>.stride + 32
    }

    public static func registration(_ state: UnsafeMutablePointer<StackGuardState>) -> ToolRegistration {
        ToolRegistration(name: name, priority: ToolPriority.normal, phases: InstrumentationPhase.insertion.bit,
                         data: UnsafeMutableRawPointer(state), onBlock: onBlock)
    }

    /// The trigger each context starts with: every descent goes to the slow path
    /// until the first deepest point is known, then only deeper ones.
    public static func initialTrigger(_ s: UnsafeMutablePointer<StackGuardState>) -> UInt64 { stackBytes }

    public static func highWater(_ s: UnsafeMutablePointer<StackGuardState>, cpu: Int) -> StackHighWater {
        cpu < s.pointee.cpus ? s.pointee.highWater[cpu] : StackHighWater()
    }

    // MARK: instrumentation

    static let onBlock: BlockEventHandler = { data, raw, _ in
        let s = data!.assumingMemoryBound(to: StackGuardState.self)
        let block = InstrumentedBlock.from(raw)
        var operands = Operands()
        // One check per run of stack-pointer moves whose amounts are known (a
        // prologue's pushes and `sub rsp`, a call with the pushes before it),
        // checking the deepest point the run reaches and room for one return
        // address below it (`callSlack`). A run ends at any other write of rsp
        // and at a side exit, so it checks only descents that happen.
        //
        // A call pushes its return address, but needs no check of its own when
        // the callee's prologue goes deeper straight away (its check, a few
        // instructions later, covers the return address too), or when the caller
        // has a frame: it was built by known moves since the function's entry,
        // all checked, the deepest with room for this return address.
        var run = StackRun()
        for i in 0..<block.pointee.count {
            let insn = block.pointee[i]
            if isExcluded(s, insn.address) {
                run.flush(s, block, through: i - 1)
                continue
            }
            Decoder.decodeOperands(insn, into: &operands)
            if let delta = stackMove(insn, operands) {
                if insn.controlFlow == .call, callIsCovered(s, block, insn) {
                    continue  // the last instruction: the run ends with the block
                }
                // The slow path gets the depth in 16 bits.
                if run.offset + Int64(delta) <= -(1 << 16) + Int64(callSlack) { run.flush(s, block, through: i) }
                run.move(by: Int64(delta), at: i)
            } else if Decoder.registerAccesses(insn, operands: operands).gprWritten & (1 << GPR.rsp.rawValue) != 0 {
                run.flush(s, block, through: i)
            }
            if block.pointee.isSideExit(i) { run.flush(s, block, through: i) }
        }
        run.flush(s, block, through: block.pointee.count - 1)
    }

    /// Every check also covers this much below its deepest point: the return
    /// address of a call made from there.
    static let callSlack: Int32 = 8

    /// Whether the return address `call` pushes is covered by another check.
    static func callIsCovered(_ s: UnsafeMutablePointer<StackGuardState>, _ block: UnsafeMutablePointer<InstrumentedBlock>,
                              _ call: Instruction) -> Bool {
        if let callee = call.directBranchTarget, descendsAtOnce(s, block, callee: callee) { return true }
        // The caller's frame: the slack of the check of its deepest part.
        return s.pointee.host.frameBytes(call.address) >= 8
    }

    /// Instructions read ahead at a callee's entry.
    static let calleeLookahead = 6

    /// Whether the code at `callee` (translated, not excluded) moves the stack
    /// pointer down by a known amount before any branch or other rsp write.
    static func descendsAtOnce(_ s: UnsafeMutablePointer<StackGuardState>, _ block: UnsafeMutablePointer<InstrumentedBlock>,
                               callee: UInt64) -> Bool {
        guard !isExcluded(s, callee), !block.pointee.runsNatively(callee) else { return false }
        var insn = Instruction()
        var operands = Operands()
        var pc = callee
        for _ in 0..<calleeLookahead {
            guard block.pointee.decodeNative(at: pc, into: &insn) else { return false }
            Decoder.decodeOperands(insn, into: &operands)
            if let delta = stackMove(insn, operands), delta < 0 { return insn.controlFlow == .none }
            if insn.controlFlow != .none { return false }
            if Decoder.registerAccesses(insn, operands: operands).gprWritten & (1 << GPR.rsp.rawValue) != 0 { return false }
            pc = insn.nextAddress
        }
        return false
    }

    /// Stack-pointer moves since a run's first descent, relative to rsp there.
    struct StackRun {
        var first = -1
        var offset: Int64 = 0
        var deepest: Int64 = 0
        /// The move that reaches the deepest point.
        var deepestAt = -1

        mutating func move(by delta: Int64, at i: Int) {
            if first < 0 {
                guard delta < 0 else { return }  // a run starts with a descent
                first = i
            }
            offset += delta
            if offset < deepest {
                deepest = offset
                deepestAt = i
            }
        }

        /// Inserts the run's check, if it went down, and starts afresh; the run
        /// goes on no further than instruction `bound`.
        ///
        /// Any point from the run's first descent to just after its deepest move
        /// can check the deepest point (as a displacement from rsp there); the
        /// moves before it wrote only what they pushed. The check goes where it is
        /// cheapest: the flags dead, a register dead to borrow (a prologue's
        /// pushed registers usually are, right after the pushes), the latest such
        /// point. Not after a call (control leaves).
        mutating func flush(_ s: UnsafeMutablePointer<StackGuardState>, _ block: UnsafeMutablePointer<InstrumentedBlock>,
                            through bound: Int) {
            defer { self = StackRun() }
            guard first >= 0, deepest < 0, first <= bound else { return }
            let last = min(bound, block.pointee[deepestAt].controlFlow == .none ? deepestAt + 1 : deepestAt)
            var at = first, atOffset: Int64 = 0, bestCost = Int.max
            var rspOffset: Int64 = 0  // rsp before instruction j, relative to the run's start
            var operands = Operands()
            for j in first...last {
                let cost = block.pointee.inlineCheckSavingCost(before: j, temporaries: 0)
                if cost <= bestCost {
                    bestCost = cost
                    at = j
                    atOffset = rspOffset
                }
                if j < last {
                    Decoder.decodeOperands(block.pointee[j], into: &operands)
                    rspOffset += Int64(stackMove(block.pointee[j], operands) ?? 0)
                }
            }
            let down = UInt64(atOffset - deepest)  // the slow path's deepest point, without the slack
            let check = InlineCheck(
                memory: .at(.rsp, Int32(deepest - atOffset) - callSlack), emitter: emitFastPath,
                emitterData: UnsafeMutableRawPointer(s), argument: 0, slowFunction: HeapCheck.address(of: slowPath),
                slowArgument: (block.pointee[at].address & 0xFFFF_FFFF_FFFF) | down << 48, temporaries: 0)
            block.pointee.insert(.inlineCheck(check), before: at)
            s.pointee.checksInserted += 1
        }
    }

    static func isExcluded(_ s: UnsafeMutablePointer<StackGuardState>, _ pc: UInt64) -> Bool {
        pc &- s.pointee.excludedStart < s.pointee.excludedEnd &- s.pointee.excludedStart
    }

    /// How far `insn` moves the stack pointer, when the amount is known and under
    /// 64 KiB (negative: down): push, pushf, call, enter, pop, popf, and add, sub
    /// or lea of rsp with an immediate. nil for anything else, including other
    /// writes of rsp (pop rsp, mov rsp, leave).
    static func stackMove(_ insn: Instruction, _ operands: Operands) -> Int? {
        func isRSP(_ k: Int) -> Bool {
            operands.count > k && operands[k].type == .register && operands[k].reg.cls == .gpr64
                && operands[k].reg.index == GPR.rsp.rawValue
        }
        let delta: Int
        switch insn.mnemonic {
        case .push, .pushf, .pushfq:
            delta = -Int(insn.operandSize) / 8
        case .pop, .popf, .popfq:
            guard !isRSP(0) else { return nil }  // pop rsp loads it from memory
            delta = Int(insn.operandSize) / 8
        case .call:
            delta = -8
        case .enter:
            delta = -(Int(insn.imm & 0xFFFF) + 8)
        case .sub, .add:
            guard operands.count == 2, isRSP(0), operands[1].type == .immediate else { return nil }
            let v = Int(operands[1].immediate)
            delta = insn.mnemonic == .sub ? -v : v
        case .lea:
            guard operands.count == 2, isRSP(0), operands[1].type == .memory,
                  operands[1].mem.base.cls == .gpr64, operands[1].mem.base.index == GPR.rsp.rawValue,
                  operands[1].mem.index.cls == .none else { return nil }
            delta = Int(operands[1].mem.disp)
        default:
            return nil
        }
        return delta != 0 && delta > -(1 << 16) && delta < 1 << 16 ? delta : nil
    }

    /// The address register holds the new stack pointer: its offset in a 16 KiB
    /// stack below the CPU's trigger goes to the slow path.
    static let emitFastPath: InlineCheckEmitter = { data, raw in
        let s = data!.assumingMemoryBound(to: StackGuardState.self)
        let site = InlineCheckSite.from(raw)
        let address = site.pointee.address
        site.pointee.assembler.and(address, imm32: Int32(stackBytes - 1))
        site.pointee.assembler.cmp(address, .gs(s.pointee.triggerOffset))
        site.pointee.slowPath(if: .b)
    }

    // MARK: slow path

    static let slowPath: @convention(c) (UnsafeMutableRawPointer?, UInt64) -> Void = { context, argument in
        let context = context!
        guard let raw = Translator(context: context).toolData(named: name) else { return }
        let s = raw.assumingMemoryBound(to: StackGuardState.self)
        s.pointee.slowPaths &+= 1
        // argument: the PC's low 48 bits (kernel and user halves sign-extend), the descent above.
        let pc = UInt64(bitPattern: Int64(bitPattern: argument << 16) >> 16)
        let down = argument >> 48
        func reg(_ r: GPR) -> UInt64 { context.load(fromByteOffset: Int(ContextField.appRegister(r)), as: UInt64.self) }
        let sp = reg(.rsp) &- down
        var base: UInt64 = 0
        var size: UInt64 = 0
        let kind = s.pointee.host.classify(sp, &base, &size)
        var pid: UInt32 = 0
        var comm: InlineArray<16, UInt8> = InlineArray(repeating: 0)
        let cpu = Int(s.pointee.host.currentTask(&pid, &comm[0]))
        guard size > 0, sp >= base, sp < base &+ size else { return }
        let free = sp &- base
        if cpu < s.pointee.cpus {
            let f = UInt32(min(free, UInt64(UInt32.max - 1)))
            switch StackKind(rawValue: kind) {
            case .task: s.pointee.highWater[cpu].task = min(s.pointee.highWater[cpu].task, f)
            case .irq, .softirq: s.pointee.highWater[cpu].irq = min(s.pointee.highWater[cpu].irq, f)
            case .exception: s.pointee.highWater[cpu].exception = min(s.pointee.highWater[cpu].exception, f)
            default: break
            }
        }
        // Only the task stack is 16 KiB-aligned: there the trigger follows the
        // deepest point, never below the threshold (crossings below it all count).
        if StackKind(rawValue: kind) == .task {
            let trigger = context.load(fromByteOffset: Int(s.pointee.triggerOffset - gsBase(context)), as: UInt64.self)
            let offset = (sp &- UInt64(callSlack)) & (stackBytes - 1)  // what the fast path compares
            let next = max(offset, s.pointee.threshold)
            if next < trigger {
                context.storeBytes(of: next, toByteOffset: Int(s.pointee.triggerOffset - gsBase(context)), as: UInt64.self)
            }
        }
        // Smaller stacks (exception stacks) get a proportional threshold; the
        // entry stack is full by design.
        guard StackKind(rawValue: kind) != .entry,
              free < s.pointee.threshold * min(size, stackBytes) / stackBytes else { return }
        report(s, context, pc: pc, sp: sp, down: down, kind: kind, base: base, size: size, free: free)
    }

    /// The context's own %gs offset (contexts are reached through %gs; tool storage
    /// offsets are relative to %gs, not to the context).
    static func gsBase(_ context: UnsafeMutableRawPointer) -> Int32 {
        Translator(context: context).state.pointee.contextGSOffset
    }

    /// A finding, once per call path (the frames' return addresses), showing its
    /// deepest point.
    static func report(_ s: UnsafeMutablePointer<StackGuardState>, _ context: UnsafeMutableRawPointer, pc: UInt64,
                       sp: UInt64, down: UInt64, kind: UInt32, base: UInt64, size: UInt64, free: UInt64) {
        typealias O = FindingLayout.Offset
        func reg(_ r: GPR) -> UInt64 { context.load(fromByteOffset: Int(ContextField.appRegister(r)), as: UInt64.self) }
        let maxFrames = FindingLayout.maxFrames
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 2 * maxFrames) { buffer in
            let frames = buffer.baseAddress!
            let sps = frames + maxFrames
            let depth = Int(max(0, s.pointee.host.captureFrames(pc, reg(.rsp), reg(.rbp), frames, sps, Int32(maxFrames))))
            var path: UInt64 = 0xCBF2_9CE4_8422_2325
            for k in 0..<depth { path = (path ^ frames[k]) &* 0x100_0000_01B3 }
            let key = FindingsRing.key(UInt64(FindingTool.stackguard.rawValue) << 32 | UInt64(StackBugKind.nearOverflow.rawValue),
                                       path)
            // Seen on this path before: keep the deepest point.
            let repeated = s.pointee.findings.pointee.countRepeat(key) { record in
                let r = LayoutReader(UnsafeRawBufferPointer(record))
                guard free < r.u64(O.cacheObjectSize) else { return }
                let w = LayoutWriter(record)
                w.u64(O.address, sp)
                w.u64(O.cacheObjectSize, free)
                w.u32(O.accessSize, UInt32(truncatingIfNeeded: down))
                w.u64(O.pc, pc)
            }
            if repeated { return }
            withUnsafeTemporaryAllocation(byteCount: FindingLayout.recordBytes, alignment: 8) { bytes in
                FindingsRing.writeHead(bytes, tool: .stackguard, kind: StackBugKind.nearOverflow.rawValue, address: sp,
                                       pc: pc, size: down, currentTask: s.pointee.host.currentTask)
                let w = LayoutWriter(bytes)
                w.u64(O.objectStart, base)
                w.u64(O.objectSize, size)
                w.u64(O.cacheObjectSize, free)
                let name = StackKind(rawValue: kind)?.name ?? StackKind.unknown.name
                for k in 0..<min(name.utf8CodeUnitCount, FindingLayout.cacheNameBytes - 1) {
                    w.u8(O.cacheName + k, name.utf8Start[k])
                }
                w.u32(O.stackKind, kind)
                w.u32(O.accessStack, UInt32(depth))
                for k in 0..<depth {
                    w.u64(O.accessStack + O.stackFrames + 8 * k, frames[k])
                    // Frame k's usage: from its stack pointer up to its caller's
                    // (the innermost starts at the new stack pointer).
                    let low = k == 0 ? sp : sps[k]
                    let high = k + 1 < depth ? sps[k + 1] : 0
                    let used = high > low && high &- low < size ? high &- low : 0
                    w.u32(O.frameBytes + 4 * k, UInt32(used))
                }
                w.u64(O.timestamp, s.pointee.host.now())
                s.pointee.findings.pointee.add(key, UnsafeRawPointer(bytes.baseAddress!))
            }
        }
    }
}
