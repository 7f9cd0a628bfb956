// SPDX-License-Identifier: GPL-2.0-only
//
// What the Engine needs from where it runs. Two implementations: the kernel shim
// (Kernel/KernelHost.swift over kmod/shim.c) and user-mode hosts (tests, user-mode
// translation). The Engine is generic over its host, so calls are direct, not
// through existentials (which the kernel build does not allow).

#if canImport(Protocol)
import Protocol
#endif

public protocol EngineHost {
    /// Copies `count` bytes from the caller's address space; false on a fault.
    func copyFromUser(_ destination: UnsafeMutableRawPointer, _ source: UInt64, _ count: Int) -> Bool
    /// Copies `count` bytes to the caller's address space; false on a fault.
    func copyToUser(_ destination: UInt64, _ source: UnsafeRawPointer, _ count: Int) -> Bool
    /// Whether `count` user bytes at `address` are all zero: 1 yes, 0 no, -EFAULT.
    func checkZeroedUser(_ address: UInt64, _ count: Int) -> Int32

    /// Copies `count` bytes of kernel text at `address` (as the CPU executes them
    /// now); false unless the whole range is text the kernel knows and is readable.
    func readKernelText(_ destination: UnsafeMutableRawPointer, _ address: UInt64, _ count: Int) -> Bool

    /// A zeroed block of memory for the Engine's arenas; nil when none is left.
    func allocateArena(bytes: Int) -> UnsafeMutableRawPointer?
    /// Returns a block from `allocateArena`.
    func freeArena(_ block: UnsafeMutableRawPointer)
    /// The host's own count of live allocations, arenas included (proves cleanup).
    var liveAllocations: UInt64 { get }
    var liveBytes: UInt64 { get }

    var nanosecondsSinceLoad: UInt64 { get }
    var onlineCPUs: UInt32 { get }
    /// Identifies the sources this Engine was built from.
    var buildID: UInt64 { get }

    /// Runs a built-in workload natively and translated (the kernel host); fills
    /// the reply fields. 0 or a negative errno.
    func translationSelfTest(_ request: inout SelfTestRequest) -> Int32
    /// Features beyond status and read-text that this host provides.
    var extraFeatures: FeatureBits { get }

    /// Takes the kernel over (`slot` keeps the host's takeover state between
    /// requests); fills `refusal` instead of failing when it must not attach.
    func attach(_ request: inout AttachRequest, slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Int32
    /// Changes the tool set: detach (when attached) and attach with `request`'s tools
    /// and settings, the findings so far carried into the new attach.
    func retool(_ request: inout AttachRequest, slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Int32
    /// Gives the kernel back; nothing to do when `slot` is nil.
    func detach(_ request: inout DetachRequest, slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Int32
    func cpuStats(_ request: inout CPUStatsRequest, takeover: UnsafeMutableRawPointer?) -> Int32
    /// inscount's per-block counts, copied to the request's user buffer.
    func profile(_ request: inout ProfileRequest, takeover: UnsafeMutableRawPointer?, scratch: UnsafeMutableRawPointer) -> Int32
    /// Checking tools' findings, copied to the request's user buffer.
    func findings(_ request: inout FindingsRequest, takeover: UnsafeMutableRawPointer?) -> Int32
    /// Translation totals while attached, for `status`.
    func takeoverSummary(_ takeover: UnsafeMutableRawPointer?, into reply: inout StatusReply)
}

extension EngineHost {
    public var extraFeatures: FeatureBits { FeatureBits(rawValue: 0) }
    public func attach(_ request: inout AttachRequest, slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Int32 {
        -Errno.EOPNOTSUPP
    }
    public func detach(_ request: inout DetachRequest, slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Int32 {
        -Errno.EOPNOTSUPP
    }
    public func retool(_ request: inout AttachRequest, slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Int32 {
        -Errno.EOPNOTSUPP
    }
    public func cpuStats(_ request: inout CPUStatsRequest, takeover: UnsafeMutableRawPointer?) -> Int32 {
        -Errno.EOPNOTSUPP
    }
    public func takeoverSummary(_ takeover: UnsafeMutableRawPointer?, into reply: inout StatusReply) {}
    public func profile(_ request: inout ProfileRequest, takeover: UnsafeMutableRawPointer?,
                        scratch: UnsafeMutableRawPointer) -> Int32 {
        -Errno.EOPNOTSUPP
    }

    public func findings(_ request: inout FindingsRequest, takeover: UnsafeMutableRawPointer?) -> Int32 {
        -Errno.EOPNOTSUPP
    }

    /// Hosts without built-in kernel workloads.
    public func translationSelfTest(_ request: inout SelfTestRequest) -> Int32 { -Errno.EOPNOTSUPP }
}
