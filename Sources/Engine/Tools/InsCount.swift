// SPDX-License-Identifier: GPL-2.0-only
//
// inscount: exact instruction counts per thread (user mode) or per CPU (kernel).
// Each block adds its instruction count once per execution, inline, to a counter in
// the tool's per-context storage: with `add` where the arithmetic flags are dead,
// else with a flags-preserving mov/lea/mov sequence. A block left by a side exit
// counts what ran up to it, on the way out.

public struct InsCountStatistics {
    /// Blocks whose counter update went where the flags are dead.
    public var blocksFlagsDead: UInt64 = 0
    /// Blocks that needed the flags-preserving update.
    public var blocksFlagsLive: UInt64 = 0
    public init() {}
}

/// Optional per-block counts (the kernel's `kdbt report` top functions): slot i
/// counts the executions of the block at `blockStart[i]` times its instruction
/// count. `counters` must be within rel32 reach of the code cache (the counter is
/// updated RIP-relative, with no register). Not atomic across CPUs: concurrent
/// updates of one block's slot can lose counts, so it ranks hot code; the
/// per-context totals stay exact.
public struct InsCountProfile {
    public var counters: UnsafeMutablePointer<UInt64>
    public var blockStart: UnsafeMutablePointer<UInt64>
    public var capacity: Int
    public var used: Int = 0
    /// Blocks that found the profile full.
    public var overflow: UInt64 = 0

    public init(counters: UnsafeMutablePointer<UInt64>, blockStart: UnsafeMutablePointer<UInt64>, capacity: Int) {
        self.counters = counters
        self.blockStart = blockStart
        self.capacity = capacity
    }
}

/// What the inscount tool's data pointer refers to.
public struct InsCountData {
    public var statistics = InsCountStatistics()
    public var profile: UnsafeMutablePointer<InsCountProfile>?
    public init(profile: UnsafeMutablePointer<InsCountProfile>? = nil) { self.profile = profile }
}

public enum InsCount {
    public static let name: StaticString = "inscount"
    /// The counter's offset in the tool's storage.
    public static let counterOffset: Int32 = 0
    public static let storageBytes: Int32 = 8

    /// `statistics` (optional) receives placement counts; it must outlive the
    /// translator.
    public static func registration(statistics: UnsafeMutablePointer<InsCountStatistics>?) -> ToolRegistration {
        ToolRegistration(
            name: name, priority: ToolPriority.normal, phases: InstrumentationPhase.insertion.bit,
            data: UnsafeMutableRawPointer(statistics), onBlock: onBlock)
    }

    /// With per-block counts as well; `data` must outlive the translator.
    public static func registration(data: UnsafeMutablePointer<InsCountData>) -> ToolRegistration {
        ToolRegistration(
            name: name, priority: ToolPriority.normal, phases: InstrumentationPhase.insertion.bit,
            data: UnsafeMutableRawPointer(data), onBlock: onBlockProfiled)
    }

    static let onBlock: BlockEventHandler = { data, raw, _ in
        count(InstrumentedBlock.from(raw), data?.assumingMemoryBound(to: InsCountStatistics.self), profile: nil)
    }

    static let onBlockProfiled: BlockEventHandler = { data, raw, _ in
        let d = data!.assumingMemoryBound(to: InsCountData.self)
        count(InstrumentedBlock.from(raw), &d.pointee.statistics, profile: d.pointee.profile)
    }

    static func count(_ block: UnsafeMutablePointer<InstrumentedBlock>,
                      _ statistics: UnsafeMutablePointer<InsCountStatistics>?,
                      profile: UnsafeMutablePointer<InsCountProfile>?) {
        let n = Int32(block.pointee.count)
        let counter = block.pointee.storage(counterOffset)
        var slot: AsmMemory? = nil
        if let p = profile {
            if p.pointee.used < p.pointee.capacity {
                let i = p.pointee.used
                p.pointee.used += 1
                p.pointee.blockStart[i] = block.pointee.startPC
                slot = AsmMemory.rip(UInt64(UInt(bitPattern: p.pointee.counters + i)))
            } else {
                p.pointee.overflow += 1
            }
        }
        // Counted where the block is left: a side exit taken adds the
        // instructions up to it on its way out, and the last stretch (after the
        // last side exit, which only runs when none was taken) adds them all, so
        // that each execution pays for one update. Adds go where the flags are
        // dead: when the last stretch has no such place, the whole count goes to
        // the latest earlier stretch that has one, and the side exits after it
        // take back what they skipped instead.
        var stretchStarts: InlineArray<8, Int> = InlineArray(repeating: 0)
        var stretches = 1
        var exit = block.pointee.sideExit()
        while let e = exit, stretches < 8 {
            stretchStarts[stretches] = e + 1
            stretches += 1
            exit = block.pointee.sideExit(from: e + 1)
        }
        var position: Int? = nil
        var k = stretches - 1
        while k >= 0 && position == nil {
            position = block.pointee.firstFlagsDeadPosition(from: stretchStarts[k])
            k -= 1
        }
        let at = position ?? stretchStarts[stretches - 1]
        if position != nil {
            block.pointee.insert(.add(counter, n), before: at)
            if let m = slot { block.pointee.insert(.add(m, n), before: at) }
            statistics?.pointee.blocksFlagsDead += 1
        } else {
            block.pointee.insert(.addPreservingFlags(counter, n), before: at)
            if let m = slot { block.pointee.insert(.addPreservingFlags(m, n), before: at) }
            statistics?.pointee.blocksFlagsLive += 1
        }
        exit = block.pointee.sideExit()
        while let e = exit {
            // Taken: instructions 0...e ran, and the whole count was added if
            // its place came before the branch.
            let adjustment = Int32(e + 1) - (at <= e ? n : 0)
            let flagsDead = block.pointee.flagsLive(atSideExit: e) == 0
            func update(_ m: AsmMemory) -> MetaInstruction {
                flagsDead ? .add(m, adjustment) : .addPreservingFlags(m, adjustment)
            }
            block.pointee.insert(update(counter), onSideExit: e)
            if let m = slot { block.pointee.insert(update(m), onSideExit: e) }
            exit = block.pointee.sideExit(from: e + 1)
        }
    }
}

/// The null tool: registered like any tool, inserts nothing. Measures the cost of
/// translation alone and checks the tool plumbing.
public enum NullTool {
    public static let name: StaticString = "null"

    public static var registration: ToolRegistration {
        ToolRegistration(
            name: name, priority: ToolPriority.normal, phases: InstrumentationPhase.insertion.bit, data: nil,
            onBlock: { _, _, _ in })
    }
}
