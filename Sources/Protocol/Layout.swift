// SPDX-License-Identifier: GPL-2.0-only
//
// Byte-exact encoding of request structs. Layouts are defined by offsets, not by
// Swift's struct layout, so the uAPI cannot drift with the compiler.

/// Little-endian field access into a request buffer. x86-64 only, like the module.
public struct LayoutReader {
    public let bytes: UnsafeRawBufferPointer
    @inlinable public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    @inlinable public func u8(_ offset: Int) -> UInt8 { bytes[offset] }
    @inlinable public func u16(_ offset: Int) -> UInt16 {
        bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self)
    }
    @inlinable public func u32(_ offset: Int) -> UInt32 {
        bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
    }
    @inlinable public func u64(_ offset: Int) -> UInt64 {
        bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
    }
    /// True when every byte in `offset ..< offset+count` is zero.
    @inlinable public func isZero(_ offset: Int, _ count: Int) -> Bool {
        var i = offset
        while i < offset + count {
            if bytes[i] != 0 { return false }
            i += 1
        }
        return true
    }
}

public struct LayoutWriter {
    public let bytes: UnsafeMutableRawBufferPointer
    @inlinable public init(_ bytes: UnsafeMutableRawBufferPointer) { self.bytes = bytes }

    @inlinable public func u8(_ offset: Int, _ value: UInt8) { bytes[offset] = value }
    @inlinable public func u16(_ offset: Int, _ value: UInt16) {
        bytes.storeBytes(of: value, toByteOffset: offset, as: UInt16.self)
    }
    @inlinable public func u32(_ offset: Int, _ value: UInt32) {
        bytes.storeBytes(of: value, toByteOffset: offset, as: UInt32.self)
    }
    @inlinable public func u64(_ offset: Int, _ value: UInt64) {
        bytes.storeBytes(of: value, toByteOffset: offset, as: UInt64.self)
    }
}

/// The common head of every request: `u32 size; u32 flags;`.
public enum RequestHeader {
    public static let sizeOffset = 0
    public static let flagsOffset = 4
    public static let byteCount = 8
}
