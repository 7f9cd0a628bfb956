// SPDX-License-Identifier: GPL-2.0-only
//
// Request layouts of the commands. Each has `sizeV1`, `validate` (what the module
// checks on input) and encode/decode of the reply fields.

/// `KDBT_IOC_VERSION`: what the module is and can do.
///
///     0  u32 size               in: caller's struct size; out: bytes written
///     4  u32 flags              in: must be 0
///     8  u32 protocol_version   out
///    12  u32 engine_version     out: major << 16 | minor << 8 | patch
///    16  u64 build_id           out: hash of the Engine, Protocol and shim sources
///    24  u64 features           out: FeatureBits
///    32  u32 cpus               out: CPUs online when the module loaded
///    36  u32 reserved0          must be 0
///    40  u64 reserved[2]        must be 0
public struct VersionReply: Equatable, Sendable {
    public static let sizeV1 = 56

    public var protocolVersion: UInt32
    public var engineVersion: UInt32
    public var buildID: UInt64
    public var features: FeatureBits
    public var cpus: UInt32

    public init(protocolVersion: UInt32, engineVersion: UInt32, buildID: UInt64,
                features: FeatureBits, cpus: UInt32) {
        self.protocolVersion = protocolVersion
        self.engineVersion = engineVersion
        self.buildID = buildID
        self.features = features
        self.cpus = cpus
    }

    /// Input check: flags and reserved fields zero. Output fields are ignored.
    public static func validate(_ r: LayoutReader) -> Int32 {
        if r.u32(4) != 0 || !r.isZero(36, 4) || !r.isZero(40, 16) { return Errno.EINVAL }
        return 0
    }

    public func encode(_ w: LayoutWriter) {
        w.u32(8, protocolVersion)
        w.u32(12, engineVersion)
        w.u64(16, buildID)
        w.u64(24, features.rawValue)
        w.u32(32, cpus)
        w.u32(36, 0)
        w.u64(40, 0)
        w.u64(48, 0)
    }

    public init(decoding r: LayoutReader) {
        protocolVersion = r.u32(8)
        engineVersion = r.u32(12)
        buildID = r.u64(16)
        features = FeatureBits(rawValue: r.u64(24))
        cpus = r.u32(32)
    }
}

/// What the module supports, as bits, so a CLI can ask before it tries.
/// (Not an OptionSet: its array-literal conformance is an allocating type, which the
/// kernel build rejects.)
public struct FeatureBits: Equatable, Sendable {
    public let rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Status query with engine statistics.
    public static let status = FeatureBits(rawValue: 1 << 0)
    /// Reading the kernel's live text (KDBT_IOC_READ_TEXT).
    public static let readText = FeatureBits(rawValue: 1 << 1)
    /// Translation self-test on built-in kernel workloads (KDBT_IOC_SELFTEST).
    public static let selfTest = FeatureBits(rawValue: 1 << 2)
    /// Every bit this version defines.
    public static let known = FeatureBits(rawValue: status.rawValue | readText.rawValue | selfTest.rawValue)

    @inlinable public func contains(_ other: FeatureBits) -> Bool {
        rawValue & other.rawValue == other.rawValue
    }
    @inlinable public func union(_ other: FeatureBits) -> FeatureBits {
        FeatureBits(rawValue: rawValue | other.rawValue)
    }
}

/// `KDBT_IOC_STATUS`: attachment state and engine statistics.
///
///     0  u32 size               in/out as for every request
///     4  u32 flags              in: must be 0
///     8  u32 state              out: 0 detached, 1 attached
///    12  u32 cpus               out
///    16  u64 ioctl_calls        out: requests served since load
///    24  u64 arena_bytes        out: memory the host handed the Engine
///    32  u64 arena_used         out: bytes of it in use
///    40  u64 live_allocations   out: the host's count of live allocations
///    48  u64 live_bytes         out: bytes in those allocations
///    56  u64 loaded_ns          out: time since the module loaded
///    64  u64 reserved[4]        must be 0
public struct StatusReply: Equatable, Sendable {
    public static let sizeV1 = 96

    public enum State: UInt32, Sendable {
        case detached = 0
        case attached = 1
    }

    public var state: State
    public var cpus: UInt32
    public var ioctlCalls: UInt64
    public var arenaBytes: UInt64
    public var arenaUsed: UInt64
    public var liveAllocations: UInt64
    public var liveBytes: UInt64
    public var loadedNanoseconds: UInt64

    public init(state: State, cpus: UInt32, ioctlCalls: UInt64, arenaBytes: UInt64,
                arenaUsed: UInt64, liveAllocations: UInt64, liveBytes: UInt64,
                loadedNanoseconds: UInt64) {
        self.state = state
        self.cpus = cpus
        self.ioctlCalls = ioctlCalls
        self.arenaBytes = arenaBytes
        self.arenaUsed = arenaUsed
        self.liveAllocations = liveAllocations
        self.liveBytes = liveBytes
        self.loadedNanoseconds = loadedNanoseconds
    }

    public static func validate(_ r: LayoutReader) -> Int32 {
        if r.u32(4) != 0 || !r.isZero(64, 32) { return Errno.EINVAL }
        return 0
    }

    public func encode(_ w: LayoutWriter) {
        w.u32(8, state.rawValue)
        w.u32(12, cpus)
        w.u64(16, ioctlCalls)
        w.u64(24, arenaBytes)
        w.u64(32, arenaUsed)
        w.u64(40, liveAllocations)
        w.u64(48, liveBytes)
        w.u64(56, loadedNanoseconds)
        var off = 64
        while off < 96 { w.u64(off, 0); off += 8 }
    }

    /// nil when the module reports a state this CLI does not know.
    public init?(decoding r: LayoutReader) {
        guard let state = State(rawValue: r.u32(8)) else { return nil }
        self.state = state
        cpus = r.u32(12)
        ioctlCalls = r.u64(16)
        arenaBytes = r.u64(24)
        arenaUsed = r.u64(32)
        liveAllocations = r.u64(40)
        liveBytes = r.u64(48)
        loadedNanoseconds = r.u64(56)
    }
}

/// Engine version as `major << 16 | minor << 8 | patch`.
public let kdbtEngineVersion: UInt32 = (0 << 16) | (1 << 8) | 0

public func formatEngineVersion(_ v: UInt32) -> (major: UInt32, minor: UInt32, patch: UInt32) {
    (v >> 16, (v >> 8) & 0xFF, v & 0xFF)
}

/// `KDBT_IOC_READ_TEXT`: copies live kernel text (as patched at run time) to user
/// memory. Only addresses the kernel itself calls text (core, modules, trampolines)
/// are read; anything else is EFAULT, never an oops.
///
///     0  u32 size               in/out as for every request
///     4  u32 flags              in: must be 0
///     8  u64 address            in: first kernel address to read
///    16  u64 buffer             in: user pointer receiving the bytes
///    24  u32 length             in: bytes to read, 1 ... maxLength
///    28  u32 bytes_read         out: bytes copied (all of them on success)
///    32  u64 reserved[2]        must be 0
public struct ReadTextRequest: Equatable, Sendable {
    public static let sizeV1 = 48
    public static let maxLength: UInt32 = 64 * 1024

    public var address: UInt64
    public var buffer: UInt64
    public var length: UInt32
    public var bytesRead: UInt32

    public init(address: UInt64, buffer: UInt64, length: UInt32, bytesRead: UInt32 = 0) {
        self.address = address
        self.buffer = buffer
        self.length = length
        self.bytesRead = bytesRead
    }

    public static func validate(_ r: LayoutReader) -> Int32 {
        if r.u32(4) != 0 || !r.isZero(28, 4) || !r.isZero(32, 16) { return Errno.EINVAL }
        let length = r.u32(24)
        if length == 0 || length > maxLength { return Errno.EINVAL }
        return 0
    }

    public init(decoding r: LayoutReader) {
        address = r.u64(8)
        buffer = r.u64(16)
        length = r.u32(24)
        bytesRead = r.u32(28)
    }

    public func encode(_ w: LayoutWriter) {
        w.u64(8, address)
        w.u64(16, buffer)
        w.u32(24, length)
        w.u32(28, bytesRead)
        w.u64(32, 0)
        w.u64(40, 0)
    }
}

/// `KDBT_IOC_SELFTEST`: runs one of the module's built-in kernel workloads natively
/// and then translated (from the code cache, on the calling CPU, preemption off,
/// inscount on) and reports both results and the translation's statistics. Proves
/// the Engine's translator on real kernel code before anything is taken over.
///
///     0  u32 size               in/out as for every request
///     4  u32 flags              in: must be 0
///     8  u32 workload           in: SelfTestWorkload
///    12  u32 reserved0          must be 0
///    16  u64 argument           in: size of the work, 1 ... the workload's maximum
///    24  u64 native_result      out
///    32  u64 translated_result  out
///    40  u64 instructions       out: inscount's count for the translated run
///    48  u64 blocks             out: blocks translated
///    56  u64 cache_bytes        out: code-cache bytes they took
///    64  u64 native_bytes       out: native bytes they came from
///    72  u32 translate_error    out: TranslateError raw value, 0 on success
///    76  u32 cpu                out: the CPU it ran on
///    80  u64 error_pc           out: where translation failed
///    88  u64 reserved[1]        must be 0
public struct SelfTestRequest: Equatable, Sendable {
    public static let sizeV1 = 96

    public var workload: UInt32
    public var argument: UInt64
    public var nativeResult: UInt64 = 0
    public var translatedResult: UInt64 = 0
    public var instructions: UInt64 = 0
    public var blocks: UInt64 = 0
    public var cacheBytes: UInt64 = 0
    public var nativeBytes: UInt64 = 0
    public var translateError: UInt32 = 0
    public var cpu: UInt32 = 0
    public var errorPC: UInt64 = 0

    public init(workload: UInt32, argument: UInt64) {
        self.workload = workload
        self.argument = argument
    }

    public static func validate(_ r: LayoutReader) -> Int32 {
        if r.u32(4) != 0 || !r.isZero(12, 4) || !r.isZero(88, 8) { return Errno.EINVAL }
        guard let w = SelfTestWorkload(rawValue: r.u32(8)) else { return Errno.EINVAL }
        let argument = r.u64(16)
        if argument == 0 || argument > w.maximumArgument { return Errno.EINVAL }
        return 0
    }

    public func encode(_ w: LayoutWriter) {
        w.u32(8, workload)
        w.u32(12, 0)
        w.u64(16, argument)
        w.u64(24, nativeResult)
        w.u64(32, translatedResult)
        w.u64(40, instructions)
        w.u64(48, blocks)
        w.u64(56, cacheBytes)
        w.u64(64, nativeBytes)
        w.u32(72, translateError)
        w.u32(76, cpu)
        w.u64(80, errorPC)
        w.u64(88, 0)
    }

    public init(decoding r: LayoutReader) {
        workload = r.u32(8)
        argument = r.u64(16)
        nativeResult = r.u64(24)
        translatedResult = r.u64(32)
        instructions = r.u64(40)
        blocks = r.u64(48)
        cacheBytes = r.u64(56)
        nativeBytes = r.u64(64)
        translateError = r.u32(72)
        cpu = r.u32(76)
        errorPC = r.u64(80)
    }
}

/// The module's built-in kernel workloads (kmod/selftest.c), each deterministic.
public enum SelfTestWorkload: UInt32, Sendable {
    /// Recursive Fibonacci of the argument.
    case recursion = 1
    /// lib/sort.c's sort() with a comparator (indirect calls through the kernel's
    /// retpoline thunks) over `argument` pseudo-random u32s.
    case sort = 2
    /// snprintf, strlen, memcpy and crc32 in a loop.
    case strings = 3
    /// A switch-heavy bytecode interpreter (jump tables).
    case interpreter = 4
    /// kmalloc/kfree (GFP_ATOMIC) of varied sizes: the slab fast paths, per-CPU
    /// (%gs) operations, cmpxchg.
    case slab = 5

    public var maximumArgument: UInt64 {
        switch self {
        case .recursion: return 24
        case .sort: return 4096
        case .strings: return 20_000
        case .interpreter: return 2_000_000
        case .slab: return 20_000
        }
    }
}
