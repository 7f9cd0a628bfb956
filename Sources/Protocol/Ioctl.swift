// SPDX-License-Identifier: GPL-2.0-only
//
// ioctl numbers of /dev/kdbt.
//
// Every request struct starts with a u32 `size` (the caller's struct size) and a u32
// `flags`; the module accepts any size from the first published layout up to one
// page, with copy_struct_from_user semantics: bytes the module does not know must be
// zero (else E2BIG), and it writes back at most the caller's size. The number encodes
// the first published size; a later, longer layout keeps the same number. Extending a
// request means appending fields, never reusing reserved ones for other meanings
// (botching-up-ioctls.rst).

/// The uAPI version. Bumped only for an incompatible change (which we avoid: new
/// commands get new numbers, structs grow at the end).
public let kdbtProtocolVersion: UInt32 = 1

/// The ioctl "type" byte of every kdbt command.
public let kdbtIoctlType: UInt32 = 0xDB

/// The module serves requests from a stack buffer of this size: every layout it
/// knows (`currentLayoutSize`) must fit.
public let kdbtLargestKnownLayout: Int = 256

/// Largest request the module reads: one page, like copy_struct_from_user users do.
public let kdbtMaxRequestSize: Int = 4096

/// Linux `_IOC(dir, type, nr, size)` for x86-64 (asm-generic/ioctl.h).
@inlinable
public func ioctlNumber(direction: UInt32, type: UInt32, nr: UInt32, size: Int) -> UInt32 {
    (direction << 30) | (UInt32(truncatingIfNeeded: size) << 16) | (type << 8) | nr
}

public enum IoctlDirection {
    public static let none: UInt32 = 0
    public static let write: UInt32 = 1  // userland writes, kernel reads
    public static let read: UInt32 = 2  // kernel writes, userland reads
}

/// The commands. Each maps to one request layout.
public enum KdbtCommand: UInt32, Sendable {
    case version = 1
    case status = 2
    case readText = 3
    case selfTest = 4
    case attach = 5
    case detach = 6
    case cpuStats = 7
    case profile = 8
    case findings = 9
    /// Changes the attached tool set (AttachRequest v2 layout): KDBT_IOC_RETOOL.
    case retool = 10

    /// `_IOWR(0xDB, nr, <first layout>)`.
    @inlinable
    public var number: UInt32 {
        ioctlNumber(
            direction: IoctlDirection.read | IoctlDirection.write, type: kdbtIoctlType,
            nr: rawValue, size: firstLayoutSize)
    }

    /// Size of the first published layout: the minimum the module accepts.
    @inlinable
    public var firstLayoutSize: Int {
        switch self {
        case .version: return VersionReply.sizeV1
        case .status: return StatusReply.sizeV1
        case .readText: return ReadTextRequest.sizeV1
        case .selfTest: return SelfTestRequest.sizeV1
        case .attach: return AttachRequest.sizeV1
        case .detach: return DetachRequest.sizeV1
        case .cpuStats: return CPUStatsRequest.sizeV1
        case .profile: return ProfileRequest.sizeV1
        case .findings: return FindingsRequest.sizeV1
        case .retool: return AttachRequest.sizeV2
        }
    }

    /// Size of the newest layout this version knows (what it reads and writes
    /// back); callers may send any size from the first layout up.
    @inlinable
    public var currentLayoutSize: Int {
        switch self {
        case .attach: return AttachRequest.sizeV2
        case .status: return StatusReply.sizeV3
        case .cpuStats: return CPUStatsRequest.sizeV2
        default: return firstLayoutSize
        }
    }

    /// The command an ioctl number names, or nil (the module answers ENOTTY).
    @inlinable
    public init?(number: UInt32) {
        let nr = number & 0xFF
        guard let command = KdbtCommand(rawValue: nr), command.number == number else { return nil }
        self = command
    }
}
