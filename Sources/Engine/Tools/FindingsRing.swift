// SPDX-License-Identifier: GPL-2.0-only
//
// The report ring (DESIGN.md principle 9): checking tools' findings as
// FindingLayout records, shared by every tool of one attach. A finding is known
// by a key the tool chooses (heapcheck: class, place, direction; stackguard: the
// call path): one seen again only counts up. Findings that find the ring full are
// counted as dropped, never lost silently.

#if canImport(Protocol)
import Protocol
#endif

public struct FindingsRing {
    var records: UnsafeMutableRawPointer
    var keys: UnsafeMutablePointer<UInt64>
    public let capacity: Int
    public private(set) var count = 0
    public private(set) var dropped: UInt64 = 0
    /// Findings, repeats included.
    public private(set) var reported: UInt64 = 0
    let lock: @convention(c) () -> Void
    let unlock: @convention(c) () -> Void

    public static func bytes(capacity: Int) -> Int { capacity * (FindingLayout.recordBytes + 8) }

    /// A ring over `memory` (at least `bytes(capacity:)`, 8-byte aligned).
    public init(memory: UnsafeMutableRawPointer, capacity: Int, lock: @convention(c) () -> Void,
                unlock: @convention(c) () -> Void) {
        records = memory
        keys = (memory + capacity * FindingLayout.recordBytes).bindMemory(to: UInt64.self, capacity: capacity)
        self.capacity = capacity
        self.lock = lock
        self.unlock = unlock
    }

    /// True when a finding with `key` is already in the ring (it is counted
    /// again): the caller need not build the record.
    public mutating func countRepeat(_ key: UInt64) -> Bool {
        lock()
        defer { unlock() }
        guard let i = index(of: key) else { return false }
        bumpCount(i)
        return true
    }

    /// Like countRepeat, and lets `update` change the record (under the lock).
    public mutating func countRepeat(_ key: UInt64, update: (UnsafeMutableRawBufferPointer) -> Void) -> Bool {
        lock()
        defer { unlock() }
        guard let i = index(of: key) else { return false }
        bumpCount(i)
        update(UnsafeMutableRawBufferPointer(start: records + i * FindingLayout.recordBytes,
                                             count: FindingLayout.recordBytes))
        return true
    }

    /// Adds a finished record (FindingLayout bytes; its count field is set to 1),
    /// or counts it again when its key arrived meanwhile.
    public mutating func add(_ key: UInt64, _ record: UnsafeRawPointer) {
        lock()
        defer { unlock() }
        if let i = index(of: key) {
            bumpCount(i)
            return
        }
        guard count < capacity else {
            dropped &+= 1
            return
        }
        let at = records + count * FindingLayout.recordBytes
        at.copyMemory(from: record, byteCount: FindingLayout.recordBytes)
        LayoutWriter(UnsafeMutableRawBufferPointer(start: at, count: FindingLayout.recordBytes)).u32(FindingLayout.Offset.count, 1)
        keys[count] = key
        count += 1
        reported &+= 1
    }

    /// Copies record `index` to `destination` (under the lock: counts change).
    public mutating func copy(_ index: Int, to destination: UnsafeMutableRawPointer) -> Bool {
        lock()
        defer { unlock() }
        guard index < count else { return false }
        destination.copyMemory(from: records + index * FindingLayout.recordBytes, byteCount: FindingLayout.recordBytes)
        return true
    }

    /// The records and their keys, for keeping them past the attach (callers hold
    /// no lock; the ring no longer changes then).
    public var recordBytes: UnsafeRawPointer { UnsafeRawPointer(records) }
    public var keyBytes: UnsafeRawPointer { UnsafeRawPointer(keys) }

    /// Takes over another ring's findings (records with their counts, keys, drops),
    /// as many as fit; the rest count as dropped.
    public mutating func adopt(records from: UnsafeRawPointer, keys fromKeys: UnsafePointer<UInt64>, count n: Int,
                               dropped d: UInt64) {
        lock()
        defer { unlock() }
        dropped &+= d
        for i in 0..<n {
            guard count < capacity else {
                dropped &+= 1
                continue
            }
            (records + count * FindingLayout.recordBytes).copyMemory(from: from + i * FindingLayout.recordBytes,
                                                                     byteCount: FindingLayout.recordBytes)
            keys[count] = fromKeys[i]
            count += 1
        }
    }

    private func index(of key: UInt64) -> Int? {
        for i in 0..<count where keys[i] == key { return i }
        return nil
    }

    private mutating func bumpCount(_ i: Int) {
        let bytes = UnsafeMutableRawBufferPointer(start: records + i * FindingLayout.recordBytes,
                                                  count: FindingLayout.recordBytes)
        LayoutWriter(bytes).u32(FindingLayout.Offset.count, LayoutReader(UnsafeRawBufferPointer(bytes)).u32(FindingLayout.Offset.count) &+ 1)
        reported &+= 1
    }

    /// Starts a record in `bytes` (zeroed first): the fields every finding has,
    /// the current task's included.
    public static func writeHead(
        _ bytes: UnsafeMutableRawBufferPointer, tool: FindingTool, kind: UInt16, address: UInt64, pc: UInt64,
        size: UInt64, currentTask: @convention(c) (UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt8>) -> UInt32
    ) {
        typealias O = FindingLayout.Offset
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
        let w = LayoutWriter(bytes)
        w.u32(O.recordBytes, UInt32(FindingLayout.recordBytes))
        w.u16(O.tool, tool.rawValue)
        w.u16(O.kind, kind)
        w.u64(O.address, address)
        w.u64(O.pc, pc)
        w.u32(O.accessSize, UInt32(truncatingIfNeeded: size))
        var pid: UInt32 = 0
        let cpu = currentTask(&pid, (bytes.baseAddress! + O.comm).assumingMemoryBound(to: UInt8.self))
        w.u32(O.cpu, cpu)
        w.u32(O.pid, pid)
    }

    /// A finding's key from a few words (FNV-1a).
    public static func key(_ a: UInt64, _ b: UInt64, _ c: UInt64 = 0) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        h = (h ^ a) &* 0x100_0000_01B3
        h = (h ^ b) &* 0x100_0000_01B3
        h = (h ^ c) &* 0x100_0000_01B3
        return h
    }
}
