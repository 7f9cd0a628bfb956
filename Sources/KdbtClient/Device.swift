// SPDX-License-Identifier: GPL-2.0-only
//
// Talking to /dev/kdbt. `DeviceConnection` is the seam tests replace: the real
// device issues ioctls, test devices answer in-process.

import CKdbtSys
import Protocol

#if canImport(Glibc)
import Glibc
#endif

public let defaultDevicePath = "/dev/kdbt"

/// Something that serves kdbt ioctls on a request buffer.
public protocol DeviceConnection {
    /// Issues `number` on `buffer` (which starts with the request's size field).
    /// Returns 0 or a negative errno, exactly as the module does.
    func perform(_ number: UInt32, _ buffer: UnsafeMutableRawBufferPointer) -> Int32
    func close()
}

/// Why talking to the module failed; each case knows what to tell the user.
public enum DeviceError: Error, Equatable, CustomStringConvertible {
    case notLoaded(path: String)
    case permissionDenied(path: String)
    case openFailed(path: String, errno: Int32)
    case requestFailed(command: String, errno: Int32)
    case protocolMismatch(module: UInt32, cli: UInt32)
    case malformedReply(command: String)

    public var description: String {
        switch self {
        case .notLoaded(let path):
            return """
                \(path) does not exist: the kdbt kernel module is not loaded.
                Load it as root with `insmod kmod/kdbt.ko` (built by `make kmod`), or pass \
                --device PATH if the device lives elsewhere.
                """
        case .permissionDenied(let path):
            return "permission denied opening \(path): kdbt needs root (CAP_SYS_ADMIN); run it with sudo."
        case .openFailed(let path, let errno):
            return "cannot open \(path): \(errnoName(errno))"
        case .requestFailed(let command, let errno):
            if errno == Errno.EPERM {
                return "the kdbt module refused \(command): CAP_SYS_ADMIN is required; run it as root."
            }
            return "the kdbt module rejected \(command): \(errnoName(errno))"
        case .protocolMismatch(let module, let cli):
            return """
                protocol mismatch: the loaded module speaks kdbt protocol \(module), this kdbt \
                speaks \(cli). Load the module built from the same sources as this CLI \
                (`make kmod`).
                """
        case .malformedReply(let command):
            return "the kdbt module sent a reply to \(command) that this CLI cannot read"
        }
    }
}

/// The real device: an open file descriptor on /dev/kdbt.
public struct KdbtDevice: DeviceConnection {
    public let path: String
    public let fd: Int32

    public static func open(path: String) throws(DeviceError) -> KdbtDevice {
        let fd = kdbt_sys_open_device(path)
        if fd >= 0 { return KdbtDevice(path: path, fd: fd) }
        switch -fd {
        case ENOENT, ENXIO, ENODEV: throw .notLoaded(path: path)
        case EACCES, EPERM: throw .permissionDenied(path: path)
        default: throw .openFailed(path: path, errno: -fd)
        }
    }

    public func perform(_ number: UInt32, _ buffer: UnsafeMutableRawBufferPointer) -> Int32 {
        kdbt_sys_ioctl(fd, UInt(number), buffer.baseAddress)
    }

    public func close() { _ = Glibc.close(fd) }
}

/// "ENOTTY (25)" style names for the errnos the module returns.
public func errnoName(_ errno: Int32) -> String {
    let names: [Int32: String] = [
        Errno.EPERM: "EPERM", Errno.ENOENT: "ENOENT", Errno.E2BIG: "E2BIG",
        Errno.ENOMEM: "ENOMEM", Errno.EACCES: "EACCES", Errno.EFAULT: "EFAULT",
        Errno.EBUSY: "EBUSY", Errno.EINVAL: "EINVAL", Errno.ENOTTY: "ENOTTY",
        Errno.EOPNOTSUPP: "EOPNOTSUPP",
    ]
    let message = String(cString: strerror(errno))
    if let name = names[errno] { return "\(name) (\(message))" }
    return "errno \(errno) (\(message))"
}
