// SPDX-License-Identifier: GPL-2.0-only
//
// Bump allocation inside a block the host handed over. The kernel build has no
// allocator (-no-allocations); everything the Engine keeps lives in arenas, and
// releasing the arenas releases everything.

public struct Arena {
    public let base: UnsafeMutableRawPointer
    public let capacity: Int
    public private(set) var used: Int

    public init(base: UnsafeMutableRawPointer, capacity: Int) {
        self.base = base
        self.capacity = capacity
        self.used = 0
    }

    /// `bytes` aligned to `alignment` (a power of two), or nil when full.
    public mutating func allocate(bytes: Int, alignment: Int) -> UnsafeMutableRawPointer? {
        let start = (used + alignment - 1) & ~(alignment - 1)
        guard bytes >= 0, start <= capacity, bytes <= capacity - start else { return nil }
        used = start + bytes
        return base + start
    }

    /// Typed, uninitialized storage for one `T`.
    public mutating func allocate<T>(_ type: T.Type) -> UnsafeMutablePointer<T>? {
        allocate(bytes: MemoryLayout<T>.stride, alignment: MemoryLayout<T>.alignment)?
            .bindMemory(to: T.self, capacity: 1)
    }
}
