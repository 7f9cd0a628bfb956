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
    /// Kernel takeover: attach, detach, per-CPU statistics.
    public static let attach = FeatureBits(rawValue: 1 << 3)
    /// Every bit this version defines.
    public static let known = FeatureBits(
        rawValue: status.rawValue | readText.rawValue | selfTest.rawValue | attach.rawValue)

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
///    64  u64 blocks             out: blocks translated while attached
///    72  u64 cache_bytes        out: code-cache bytes they take
///    80  u64 native_bytes       out: native bytes they came from
///    88  u64 attached_ns        out: time since attach (0 when detached)
///   (v2: heapcheck, all 0 when it does not run)
///    96  u64 hc_tracked         out: objects tracked since attach
///   104  u64 hc_untracked       out: allocations left untracked (tables full, zones, RCU caches)
///   112  u64 hc_quarantined     out: frees held back in the quarantine
///   120  u64 hc_released        out: objects the quarantine gave back
///   128  u64 hc_objects         out: objects tracked now (live and quarantined)
///   136  u64 hc_quarantine_bytes out
///   144  u64 hc_checks          out: memory accesses instrumented
///   152  u64 hc_slow_paths      out: inline checks that went to the slow path
///   160  u64 hc_findings        out: findings, repeats included
///   168  u64 wrap_frames_dropped out: wrapped calls whose return could not be followed
///   (v3: the attached tools and their settings, defaults resolved; 0 when detached)
///   176  u64 tools              out: ToolBits
///   184  u64 quarantine_bytes   out: heapcheck's quarantine
///   192  u32 redzone_bytes      out: heapcheck's minimum redzone
///   196  u32 stack_threshold    out: stackguard's threshold
///        (64...199 must be 0 on input)
public struct StatusReply: Equatable, Sendable {
    public static let sizeV1 = 96
    public static let sizeV2 = 176
    public static let sizeV3 = 200

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
    public var blocks: UInt64 = 0
    public var cacheBytes: UInt64 = 0
    public var nativeBytes: UInt64 = 0
    public var attachedNanoseconds: UInt64 = 0
    public var heapCheck = HeapCheckStatus()
    /// The tools attached, with their settings in effect (the reply of an attach
    /// request, as the module resolved it).
    public var tools = AttachRequest(tools: 0)

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
        if r.u32(4) != 0 || !r.isZero(64, r.bytes.count - 64) { return Errno.EINVAL }
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
        w.u64(64, blocks)
        w.u64(72, cacheBytes)
        w.u64(80, nativeBytes)
        w.u64(88, attachedNanoseconds)
        if w.bytes.count >= StatusReply.sizeV2 { heapCheck.encode(w, at: 96) }
        if w.bytes.count >= StatusReply.sizeV3 {
            w.u64(176, tools.tools)
            w.u64(184, tools.quarantineBytes)
            w.u32(192, tools.redzoneBytes)
            w.u32(196, tools.stackThreshold)
        }
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
        blocks = r.u64(64)
        cacheBytes = r.u64(72)
        nativeBytes = r.u64(80)
        attachedNanoseconds = r.u64(88)
        if r.bytes.count >= StatusReply.sizeV2 { heapCheck = HeapCheckStatus(r, at: 96) }
        if r.bytes.count >= StatusReply.sizeV3 {
            tools = AttachRequest(tools: r.u64(176), quarantineBytes: r.u64(184), redzoneBytes: r.u32(192),
                                  stackThreshold: r.u32(196))
        }
    }
}

/// heapcheck's counters in StatusReply v2.
public struct HeapCheckStatus: Equatable, Sendable {
    public var tracked: UInt64 = 0
    public var untracked: UInt64 = 0
    public var quarantined: UInt64 = 0
    public var released: UInt64 = 0
    public var objects: UInt64 = 0
    public var quarantineBytes: UInt64 = 0
    public var checks: UInt64 = 0
    public var slowPaths: UInt64 = 0
    public var findings: UInt64 = 0
    public var wrapFramesDropped: UInt64 = 0
    public init() {}

    init(_ r: LayoutReader, at o: Int) {
        tracked = r.u64(o); untracked = r.u64(o + 8); quarantined = r.u64(o + 16); released = r.u64(o + 24)
        objects = r.u64(o + 32); quarantineBytes = r.u64(o + 40); checks = r.u64(o + 48); slowPaths = r.u64(o + 56)
        findings = r.u64(o + 64); wrapFramesDropped = r.u64(o + 72)
    }

    func encode(_ w: LayoutWriter, at o: Int) {
        w.u64(o, tracked); w.u64(o + 8, untracked); w.u64(o + 16, quarantined); w.u64(o + 24, released)
        w.u64(o + 32, objects); w.u64(o + 40, quarantineBytes); w.u64(o + 48, checks); w.u64(o + 56, slowPaths)
        w.u64(o + 64, findings); w.u64(o + 72, wrapFramesDropped)
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

/// `KDBT_IOC_ATTACH`: every CPU's IDT and syscall entry point at kdbt's stubs; the
/// kernel runs from the code cache until detach.
///
/// `KDBT_IOC_RETOOL` takes the same layout (v2 and up): attached, it detaches and
/// attaches again with the tools and settings it names, in one request (the code
/// cache is rebuilt; findings carry over; inscount starts counting afresh); not
/// attached, it attaches.
///
///     0  u32 size               in/out as for every request
///     4  u32 flags              in: must be 0
///     8  u64 tools              in: ToolBits to enable
///    16  u32 refusal            out: AttachRefusal (0: attached)
///    20  u32 cpus               out: CPUs taken over
///    24  u64 attach_ns          out: how long attaching took
///    32  u64 blocks             out: blocks translated ahead (entry points)
///    40  u64 reserved           must be 0
///   (v2)
///    48  u64 quarantine_bytes   in: heapcheck's quarantine (0: the default)
///    56  u32 redzone_bytes      in: heapcheck's minimum redzone (0: the default; at most 4096)
///    60  u32 stack_threshold    in: stackguard reports stacks with fewer free bytes (0: default)
public struct AttachRequest: Equatable, Sendable {
    public static let sizeV1 = 48
    public static let sizeV2 = 64
    public static let maxRedzone: UInt32 = 4096

    public var tools: UInt64
    public var refusal: UInt32 = 0
    public var cpus: UInt32 = 0
    public var attachNanoseconds: UInt64 = 0
    public var blocks: UInt64 = 0
    public var quarantineBytes: UInt64 = 0
    public var redzoneBytes: UInt32 = 0
    public var stackThreshold: UInt32 = 0
    /// A threshold must leave room below a 16 KiB kernel stack's top.
    public static let maxStackThreshold: UInt32 = 15 << 10

    public init(tools: UInt64, quarantineBytes: UInt64 = 0, redzoneBytes: UInt32 = 0, stackThreshold: UInt32 = 0) {
        self.tools = tools
        self.quarantineBytes = quarantineBytes
        self.redzoneBytes = redzoneBytes
        self.stackThreshold = stackThreshold
    }

    public static func validate(_ r: LayoutReader) -> Int32 {
        if r.u32(4) != 0 || !r.isZero(40, 8) { return Errno.EINVAL }
        if r.u64(8) & ~ToolBits.known != 0 { return Errno.EINVAL }
        if r.bytes.count >= sizeV2 && (r.u32(60) > maxStackThreshold || r.u32(56) > maxRedzone) { return Errno.EINVAL }
        return 0
    }

    public func encode(_ w: LayoutWriter) {
        w.u64(8, tools)
        w.u32(16, refusal)
        w.u32(20, cpus)
        w.u64(24, attachNanoseconds)
        w.u64(32, blocks)
        w.u64(40, 0)
        guard w.bytes.count >= AttachRequest.sizeV2 else { return }
        w.u64(48, quarantineBytes)
        w.u32(56, redzoneBytes)
        w.u32(60, stackThreshold)
    }

    public init(decoding r: LayoutReader) {
        tools = r.u64(8)
        refusal = r.u32(16)
        cpus = r.u32(20)
        attachNanoseconds = r.u64(24)
        blocks = r.u64(32)
        if r.bytes.count >= AttachRequest.sizeV2 {
            quarantineBytes = r.u64(48)
            redzoneBytes = r.u32(56)
            stackThreshold = r.u32(60)
        }
    }
}

/// Tools a request names, as bits.
public enum ToolBits {
    public static let inscount: UInt64 = 1 << 0
    public static let null: UInt64 = 1 << 1
    public static let heapcheck: UInt64 = 1 << 2
    public static let stackguard: UInt64 = 1 << 3
    public static let known: UInt64 = inscount | null | heapcheck | stackguard
    /// Tools that report findings.
    public static let checking: UInt64 = heapcheck | stackguard
}

#if !hasFeature(Embedded)
extension ToolBits {
    /// Each tool's name, as the CLI spells it.
    public static let named: [(name: String, bit: UInt64)] = [
        ("inscount", inscount), ("null", null), ("heapcheck", heapcheck), ("stackguard", stackguard),
    ]
    /// The names of the tools in `bits`, in `named` order.
    public static func names(_ bits: UInt64) -> [String] { named.filter { bits & $0.bit != 0 }.map(\.name) }
}
#endif

/// Why attach refused (the module changed nothing).
public enum AttachRefusal: UInt32, Sendable {
    case none = 0
    case alreadyAttached = 1
    /// Page-table isolation is on: the entry code switches CR3 around the cache.
    case pageTableIsolation = 2
    /// The syscall entry MSR does not point at an entry_SYSCALL_64 that starts
    /// with swapgs (another tool or hypervisor owns it).
    case unexpectedSyscallEntry = 3
    /// The IDT is not the kernel's 256-gate table.
    case unexpectedIDT = 4
    /// Out of memory for the cache, the tables or the stacks.
    case outOfMemory = 5
    /// A kernel entry point could not be translated.
    case untranslatableEntry = 6

    public var message: String {
        switch self {
        case .none: return "attached"
        case .alreadyAttached: return "already attached; run `kdbt detach` first"
        case .pageTableIsolation:
            return "page-table isolation (PTI) is on, which kdbt does not support yet; boot with pti=off (or mitigations=off) to use kdbt"
        case .unexpectedSyscallEntry:
            return "the syscall entry point (MSR_LSTAR) is not the kernel's entry_SYSCALL_64; another tracer or a hypervisor owns it"
        case .unexpectedIDT: return "the IDT is not the kernel's 256-entry table"
        case .outOfMemory: return "not enough memory for the code cache and tables"
        case .untranslatableEntry: return "a kernel entry point could not be translated (see the kernel log)"
        }
    }
}

/// `KDBT_IOC_DETACH`: the native IDT and syscall entry back on every CPU, the cache
/// freed once no CPU is in it.
///
///     0  u32 size               in/out as for every request
///     4  u32 flags              in: must be 0
///     8  u32 was_attached       out: 0 when there was nothing to detach
///    12  u32 reserved0          must be 0
///    16  u64 detach_ns          out
///    24  u64 instructions       out: inscount's total when it ran
///    32  u64 reserved           must be 0
public struct DetachRequest: Equatable, Sendable {
    public static let sizeV1 = 40

    public var wasAttached: UInt32 = 0
    public var detachNanoseconds: UInt64 = 0
    public var instructions: UInt64 = 0

    public init() {}

    public static func validate(_ r: LayoutReader) -> Int32 {
        if r.u32(4) != 0 || !r.isZero(12, 4) || !r.isZero(32, 8) { return Errno.EINVAL }
        return 0
    }

    public func encode(_ w: LayoutWriter) {
        w.u32(8, wasAttached)
        w.u32(12, 0)
        w.u64(16, detachNanoseconds)
        w.u64(24, instructions)
        w.u64(32, 0)
    }

    public init(decoding r: LayoutReader) {
        wasAttached = r.u32(8)
        detachNanoseconds = r.u64(16)
        instructions = r.u64(24)
    }
}

/// `KDBT_IOC_CPU_STATS`: one CPU's counters while attached (zeros when detached).
///
///     0  u32 size               in/out as for every request
///     4  u32 flags              in: must be 0
///     8  u32 cpu                in
///    12  u32 attached           out: 1 while attached
///    16  u64 syscalls           out: syscall entries
///    24  u64 user_interrupts    out: interrupts and exceptions from user mode
///    32  u64 kernel_interrupts  out: interrupts arriving in kernel mode
///    40  u64 exceptions         out: exceptions raised in kernel mode
///    48  u64 delayed            out: interrupts delayed to a native boundary
///    56  u64 instructions       out: inscount on this CPU
///    64  u64 native_fallbacks   out: exits to native code (translation failed)
///    72  u64 user_exceptions    out: exceptions from user mode (page faults...)
///    80  u64 delayed_delivered  out: delayed interrupts delivered since
///    88  u64 untranslated_faults out: exceptions inside instrumentation (bugs)
///    96  u64 invalidations      out: cache invalidations this CPU triggered
///                               (kernel text patched, modules loaded/unloaded)
///   104  u64 reserved           must be 0
///   (v2: stackguard's high-water marks, the least free bytes seen; 0xFFFFFFFF: none)
///   112  u32 task_stack_min_free out
///   116  u32 irq_stack_min_free  out
///   120  u32 exception_stack_min_free out
///   124  u32 reserved           must be 0
public struct CPUStatsRequest: Equatable, Sendable {
    public static let sizeV1 = 112
    public static let sizeV2 = 128
    public static let noHighWater: UInt32 = 0xFFFF_FFFF

    public var cpu: UInt32
    public var attached: UInt32 = 0
    public var syscalls: UInt64 = 0
    public var userInterrupts: UInt64 = 0
    public var kernelInterrupts: UInt64 = 0
    public var exceptions: UInt64 = 0
    public var delayed: UInt64 = 0
    public var instructions: UInt64 = 0
    public var nativeFallbacks: UInt64 = 0
    public var userExceptions: UInt64 = 0
    public var delayedDelivered: UInt64 = 0
    public var untranslatedFaults: UInt64 = 0
    public var invalidations: UInt64 = 0
    public var taskStackMinFree: UInt32 = CPUStatsRequest.noHighWater
    public var irqStackMinFree: UInt32 = CPUStatsRequest.noHighWater
    public var exceptionStackMinFree: UInt32 = CPUStatsRequest.noHighWater

    public init(cpu: UInt32) { self.cpu = cpu }

    public static func validate(_ r: LayoutReader) -> Int32 {
        if r.u32(4) != 0 || !r.isZero(104, 8) { return Errno.EINVAL }
        if r.bytes.count >= sizeV2 && !r.isZero(124, 4) { return Errno.EINVAL }
        return 0
    }

    public func encode(_ w: LayoutWriter) {
        w.u32(8, cpu)
        w.u32(12, attached)
        w.u64(16, syscalls)
        w.u64(24, userInterrupts)
        w.u64(32, kernelInterrupts)
        w.u64(40, exceptions)
        w.u64(48, delayed)
        w.u64(56, instructions)
        w.u64(64, nativeFallbacks)
        w.u64(72, userExceptions)
        w.u64(80, delayedDelivered)
        w.u64(88, untranslatedFaults)
        w.u64(96, invalidations)
        w.u64(104, 0)
        guard w.bytes.count >= CPUStatsRequest.sizeV2 else { return }
        w.u32(112, taskStackMinFree)
        w.u32(116, irqStackMinFree)
        w.u32(120, exceptionStackMinFree)
        w.u32(124, 0)
    }

    public init(decoding r: LayoutReader) {
        cpu = r.u32(8)
        attached = r.u32(12)
        syscalls = r.u64(16)
        userInterrupts = r.u64(24)
        kernelInterrupts = r.u64(32)
        exceptions = r.u64(40)
        delayed = r.u64(48)
        instructions = r.u64(56)
        nativeFallbacks = r.u64(64)
        userExceptions = r.u64(72)
        delayedDelivered = r.u64(80)
        untranslatedFaults = r.u64(88)
        invalidations = r.u64(96)
        if r.bytes.count >= CPUStatsRequest.sizeV2 {
            taskStackMinFree = r.u32(112)
            irqStackMinFree = r.u32(116)
            exceptionStackMinFree = r.u32(120)
        }
    }
}

/// `KDBT_IOC_PROFILE`: inscount's per-block counts while attached: entries
/// `first ..< first + count` of (block native address, instructions executed),
/// written to a user buffer. ENOENT when not attached with inscount.
///
///     0  u32 size               in/out as for every request
///     4  u32 flags              in: must be 0
///     8  u32 first              in: first entry
///    12  u32 capacity           in: entries the buffer holds, 1 ... maxCapacity
///    16  u64 buffer             in: user pointer, capacity * 16 bytes
///    24  u32 count              out: entries written
///    28  u32 total              out: blocks profiled so far
///    32  u64 overflow           out: blocks translated after the profile filled
///    40  u64 reserved           must be 0
public struct ProfileRequest: Equatable, Sendable {
    public static let sizeV1 = 48
    public static let maxCapacity: UInt32 = 1 << 16
    public static let entryBytes = 16

    public var first: UInt32
    public var capacity: UInt32
    public var buffer: UInt64
    public var count: UInt32 = 0
    public var total: UInt32 = 0
    public var overflow: UInt64 = 0

    public init(first: UInt32, capacity: UInt32, buffer: UInt64) {
        self.first = first
        self.capacity = capacity
        self.buffer = buffer
    }

    public static func validate(_ r: LayoutReader) -> Int32 {
        if r.u32(4) != 0 || !r.isZero(40, 8) { return Errno.EINVAL }
        let capacity = r.u32(12)
        if capacity == 0 || capacity > maxCapacity { return Errno.EINVAL }
        return 0
    }

    public func encode(_ w: LayoutWriter) {
        w.u32(8, first)
        w.u32(12, capacity)
        w.u64(16, buffer)
        w.u32(24, count)
        w.u32(28, total)
        w.u64(32, overflow)
        w.u64(40, 0)
    }

    public init(decoding r: LayoutReader) {
        first = r.u32(8)
        capacity = r.u32(12)
        buffer = r.u64(16)
        count = r.u32(24)
        total = r.u32(28)
        overflow = r.u64(32)
    }
}
