// SPDX-License-Identifier: GPL-2.0-only
//
// inscount: exact instruction counts per thread (user mode) or per CPU (kernel).
// Each block adds its instruction count once per execution, inline, to a counter in
// the tool's per-context storage: with `add` where the arithmetic flags are dead,
// else with a flags-preserving mov/lea/mov sequence.

public struct InsCountStatistics {
    /// Blocks whose counter update went where the flags are dead.
    public var blocksFlagsDead: UInt64 = 0
    /// Blocks that needed the flags-preserving update.
    public var blocksFlagsLive: UInt64 = 0
    public init() {}
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

    static let onBlock: BlockEventHandler = { data, raw, _ in
        let block = InstrumentedBlock.from(raw)
        let n = Int32(block.pointee.count)
        let statistics = data?.assumingMemoryBound(to: InsCountStatistics.self)
        let counter = block.pointee.storage(counterOffset)
        if let position = block.pointee.firstFlagsDeadPosition() {
            block.pointee.insert(.add(counter, n), before: position)
            statistics?.pointee.blocksFlagsDead += 1
        } else {
            block.pointee.insert(.addPreservingFlags(counter, n), before: 0)
            statistics?.pointee.blocksFlagsLive += 1
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
