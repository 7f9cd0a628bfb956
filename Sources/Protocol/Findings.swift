// SPDX-License-Identifier: GPL-2.0-only
//
// Findings: what checking tools (heapcheck, stackguard) report, as fixed-size
// records the module keeps in its report ring and the CLI renders (KASAN-layout
// text, JSON, SARIF). Identical findings share one record with a count; findings
// that found the ring full are counted as dropped, never lost silently.

/// `KDBT_IOC_FINDINGS`: copies records `first ..< first+capacity` out of the ring.
///
///     0  u32 size               in: caller's struct size
///     4  u32 flags              in: must be 0
///     8  u32 first              in: index of the first record wanted
///    12  u32 capacity           in: records `buffer` holds (1 ... maxCapacity)
///    16  u64 buffer             in: user address of capacity * FindingRecord.sizeV1 bytes
///    24  u32 count              out: records written
///    28  u32 total              out: distinct findings in the ring
///    32  u64 dropped            out: findings that found the ring full
///    40  u32 record_bytes       out: FindingRecord size the module writes
///    44  u32 reserved           must be 0
///    48  u64 reserved           must be 0
public struct FindingsRequest: Equatable, Sendable {
    public static let sizeV1 = 56
    public static let maxCapacity: UInt32 = 1024

    public var first: UInt32
    public var capacity: UInt32
    public var buffer: UInt64
    public var count: UInt32 = 0
    public var total: UInt32 = 0
    public var dropped: UInt64 = 0
    public var recordBytes: UInt32 = 0

    public init(first: UInt32, capacity: UInt32, buffer: UInt64) {
        self.first = first
        self.capacity = capacity
        self.buffer = buffer
    }

    public static func validate(_ r: LayoutReader) -> Int32 {
        if r.u32(4) != 0 || !r.isZero(44, 12) { return Errno.EINVAL }
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
        w.u64(32, dropped)
        w.u32(40, recordBytes)
        w.u32(44, 0)
        w.u64(48, 0)
    }

    public init(decoding r: LayoutReader) {
        first = r.u32(8)
        capacity = r.u32(12)
        buffer = r.u64(16)
        count = r.u32(24)
        total = r.u32(28)
        dropped = r.u64(32)
        recordBytes = r.u32(40)
    }
}

/// Which tool reported a finding.
public enum FindingTool: UInt16, Sendable {
    case heapcheck = 1
    case stackguard = 2
}

/// heapcheck's bug classes (stable: SARIF rule ids and JSON names derive from them).
public enum HeapBugKind: UInt16, Sendable {
    case useAfterFree = 1
    case outOfBounds = 2
    case doubleFree = 3
    case invalidFree = 4

    /// KASAN's name for the class, as in `BUG: KASAN: use-after-free in ...`.
    public var name: StaticString {
        switch self {
        case .useAfterFree: return "use-after-free"
        case .outOfBounds: return "slab-out-of-bounds"
        case .doubleFree: return "double-free"
        case .invalidFree: return "invalid-free"
        }
    }
}

/// stackguard's finding classes.
public enum StackBugKind: UInt16, Sendable {
    /// The free space of a stack fell below the threshold.
    case nearOverflow = 1

    public var name: StaticString {
        switch self {
        case .nearOverflow: return "stack-near-overflow"
        }
    }
}

/// Which stack a stackguard finding is on (its `stack_kind`).
public enum StackKind: UInt32, Sendable {
    case unknown = 0
    case task = 1
    case irq = 2
    /// An exception (IST) stack: NMI, #DB, #DF, #MC.
    case exception = 3
    case entry = 4
    case softirq = 5

    public var name: StaticString {
        switch self {
        case .unknown: return "unknown"
        case .task: return "task"
        case .irq: return "irq"
        case .exception: return "exception"
        case .entry: return "entry"
        case .softirq: return "softirq"
        }
    }
}

/// Shadow byte values, KASAN's encoding: 0 all 8 bytes of the granule accessible,
/// 1...7 that many leading bytes accessible, the values below not accessible.
public enum ShadowByte {
    public static let granule = 8
    /// Slab redzone: the bytes of a slot past (or before) its object, and slots
    /// no tracked object occupies.
    public static let slabRedzone: UInt8 = 0xFC
    /// A freed object, in quarantine.
    public static let slabFree: UInt8 = 0xFB
    /// Redzone of a page-backed (large) kmalloc object.
    public static let pageRedzone: UInt8 = 0xFE
}

/// One finding record (`FindingRecord.sizeV1` bytes, little endian):
///
///       0  u32 record_bytes
///       4  u16 tool                 FindingTool
///       6  u16 kind                 HeapBugKind (heapcheck)
///       8  u32 flags                FindingRecord.Flags
///      12  u32 count                identical findings (same tool, kind, pc, access)
///      16  u64 address              the buggy address (frees: the pointer freed)
///      24  u64 pc                   native PC of the access (frees: the free function)
///      32  u32 access_size          bytes (frees: 0)
///      36  u32 cpu
///      40  u32 pid
///      44  u32 reserved
///      48  u8  comm[16]             NUL-padded
///      64  u64 object_start         0: no object known
///      72  u64 object_size          bytes the allocation asked for
///      80  u64 cache_object_size    the slot size of its cache ("of size 128")
///      88  u8  cache_name[32]       NUL-padded ("kmalloc-128"; page allocations: "")
///     120  stack  access            (u32 depth, u32 reserved, u64 frames[16])
///     256  track  allocated         (u32 pid, u32 cpu, u8 comm[16], stack)
///     416  track  freed             (same; depth 0 when not freed)
///     576  u64 shadow_address       memory address the first shadow row describes
///     584  u8  shadow[80]           5 rows of 16 shadow bytes (128 bytes of memory each)
///     664  u64 timestamp_ns         when it was first seen (ktime)
///     672  u32 frame_bytes[16]      stackguard: stack bytes each access-stack frame uses
///     736  u32 stack_kind           stackguard: StackKind
///     740  u8  reserved[28]
///
/// stackguard's records use the same layout: kind is a StackBugKind, `address`
/// the stack pointer that crossed the threshold, `pc` the instruction that moved
/// it, `access_size` how far it moved, `object_start`/`object_size` the stack's
/// lowest address and size, `cache_object_size` the bytes left free,
/// `cache_name` the stack kind's name, `count` how often the same call path
/// crossed it, and the access stack the call chain, with each frame's usage in
/// `frame_bytes` (0: not known).
public enum FindingLayout {
    public static let recordBytes = 768
    public static let commBytes = 16
    public static let cacheNameBytes = 32
    public static let shadowRows = 5
    public static let shadowRowBytes = 16
    public static let maxFrames = 16

    public enum Offset {
        public static let recordBytes = 0, tool = 4, kind = 6, flags = 8, count = 12
        public static let address = 16, pc = 24, accessSize = 32, cpu = 36, pid = 40
        public static let comm = 48, objectStart = 64, objectSize = 72, cacheObjectSize = 80
        public static let cacheName = 88, accessStack = 120, allocated = 256, freed = 416
        public static let shadowAddress = 576, shadow = 584, timestamp = 664
        public static let frameBytes = 672, stackKind = 736
        /// Within a stack: depth, then frames at +8.
        public static let stackFrames = 8
        /// Within a track: pid, cpu, comm, then the stack.
        public static let trackComm = 8, trackStack = 24
    }

    public struct Flags: Equatable, Sendable {
        public let rawValue: UInt32
        @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// The access wrote (else it read).
        public static let write: UInt32 = 1 << 0
        /// The object came from kmem_cache_alloc (a named cache), not kmalloc.
        public static let namedCache: UInt32 = 1 << 1
        /// The object is a page allocation (kmalloc_large).
        public static let pageBacked: UInt32 = 1 << 2
        @inlinable public func has(_ bit: UInt32) -> Bool { rawValue & bit != 0 }
    }
}

#if !hasFeature(Embedded)
// The decoded forms: hosted side only (Strings and arrays).

/// One stack as recorded by the module: up to `maxFrames` native return
/// addresses, innermost first.
public struct FindingStack: Equatable, Sendable {
    public static let maxFrames = FindingLayout.maxFrames
    public var frames: [UInt64]
    public init(frames: [UInt64]) { self.frames = frames }
}

/// Who allocated or freed an object.
public struct FindingTrack: Equatable, Sendable {
    public var pid: UInt32
    public var cpu: UInt32
    public var comm: String
    public var stack: FindingStack
    public init(pid: UInt32, cpu: UInt32, comm: String, stack: FindingStack) {
        self.pid = pid
        self.cpu = cpu
        self.comm = comm
        self.stack = stack
    }
}

/// A decoded finding record (layout: FindingLayout).
public struct FindingRecord: Equatable, Sendable {
    public typealias Offset = FindingLayout.Offset
    public typealias Flags = FindingLayout.Flags
    public static let sizeV1 = FindingLayout.recordBytes
    public static let commBytes = FindingLayout.commBytes
    public static let cacheNameBytes = FindingLayout.cacheNameBytes
    public static let shadowRows = FindingLayout.shadowRows
    public static let shadowRowBytes = FindingLayout.shadowRowBytes

    public var tool: UInt16
    public var kind: UInt16
    public var flags: Flags
    public var count: UInt32
    public var address: UInt64
    public var pc: UInt64
    public var accessSize: UInt32
    public var cpu: UInt32
    public var pid: UInt32
    public var comm: String
    public var objectStart: UInt64
    public var objectSize: UInt64
    public var cacheObjectSize: UInt64
    public var cacheName: String
    public var accessStack: FindingStack
    public var allocated: FindingTrack
    public var freed: FindingTrack?
    public var shadowAddress: UInt64
    public var shadow: [UInt8]
    public var timestampNanoseconds: UInt64
    /// stackguard: stack bytes each access-stack frame uses (0: not known), one
    /// per frame of `accessStack`.
    public var frameBytes: [UInt32]
    /// stackguard: which stack (a StackKind's raw value; kept raw so kinds a newer
    /// module adds still decode).
    public var stackKind: UInt32

    /// Decodes a record the module wrote (hosted side only: builds Strings and arrays).
    public init(decoding r: LayoutReader) {
        typealias O = Offset
        tool = r.u16(O.tool)
        kind = r.u16(O.kind)
        flags = Flags(rawValue: r.u32(O.flags))
        count = r.u32(O.count)
        address = r.u64(O.address)
        pc = r.u64(O.pc)
        accessSize = r.u32(O.accessSize)
        cpu = r.u32(O.cpu)
        pid = r.u32(O.pid)
        comm = FindingRecord.string(r, O.comm, FindingRecord.commBytes)
        objectStart = r.u64(O.objectStart)
        objectSize = r.u64(O.objectSize)
        cacheObjectSize = r.u64(O.cacheObjectSize)
        cacheName = FindingRecord.string(r, O.cacheName, FindingRecord.cacheNameBytes)
        accessStack = FindingRecord.stack(r, O.accessStack)
        allocated = FindingRecord.track(r, O.allocated)
        let f = FindingRecord.track(r, O.freed)
        freed = f.stack.frames.isEmpty ? nil : f
        shadowAddress = r.u64(O.shadowAddress)
        var s: [UInt8] = []
        for i in 0..<(FindingRecord.shadowRows * FindingRecord.shadowRowBytes) { s.append(r.u8(O.shadow + i)) }
        shadow = s
        timestampNanoseconds = r.u64(O.timestamp)
        // One entry per recorded frame: the rest of the array is padding.
        frameBytes = (0..<accessStack.frames.count).map { r.u32(O.frameBytes + 4 * $0) }
        stackKind = r.u32(O.stackKind)
    }

    static func string(_ r: LayoutReader, _ offset: Int, _ bytes: Int) -> String {
        var chars: [UInt8] = []
        for i in 0..<bytes {
            let c = r.u8(offset + i)
            if c == 0 { break }
            chars.append(c)
        }
        return String(decoding: chars, as: UTF8.self)
    }

    static func stack(_ r: LayoutReader, _ offset: Int) -> FindingStack {
        let depth = min(Int(r.u32(offset)), FindingStack.maxFrames)
        var frames: [UInt64] = []
        for i in 0..<depth { frames.append(r.u64(offset + Offset.stackFrames + 8 * i)) }
        return FindingStack(frames: frames)
    }

    static func track(_ r: LayoutReader, _ offset: Int) -> FindingTrack {
        FindingTrack(pid: r.u32(offset), cpu: r.u32(offset + 4),
                     comm: string(r, offset + Offset.trackComm, commBytes),
                     stack: stack(r, offset + Offset.trackStack))
    }
}
#endif
