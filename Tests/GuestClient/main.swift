// SPDX-License-Identifier: GPL-2.0-only
//
// kdbt-guest-client: runs inside the guest as root and asserts, one case per
// validation rule, how the real module answers malformed requests (DESIGN.md
// principle 10). Prints one line per case and "N passed, N failed"; exits 1 on any
// failure.

import CKdbtSys
import Glibc
import KdbtClient
import Protocol

let devicePath = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : defaultDevicePath
var passed = 0
var failed = 0

@MainActor func check(_ name: String, _ ok: Bool, _ detail: @autoclosure () -> String = "") {
    if ok {
        passed += 1
        print("ok - \(name)")
    } else {
        failed += 1
        print("not ok - \(name) \(detail())")
    }
}

func describe(_ r: Int32) -> String { r == 0 ? "success" : errnoName(-r) }

let fd = kdbt_sys_open_device(devicePath)
guard fd >= 0 else {
    print("cannot open \(devicePath): \(errnoName(-fd))")
    exit(1)
}

/// A page-backed request buffer: `size` bytes at the end of a mapped page when
/// `atPageEnd`, so reads past it fault.
func withRequest(
    bytes: Int, atPageEnd: Bool = false, _ body: (UnsafeMutableRawPointer) -> Void
) {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let total = ((bytes + page - 1) / page + 1) * page
    let base = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
    // Unmap the last page: a guard against reading past the request.
    munmap(base + total - page, page)
    let start = atPageEnd ? base + (total - page - bytes) : base
    memset(start, 0, bytes)
    body(start)
    munmap(base, total - page)
}

func ioctlOn(_ command: KdbtCommand, size declared: Int, bufferBytes: Int? = nil,
             atPageEnd: Bool = false, prepare: (UnsafeMutableRawPointer) -> Void = { _ in },
             inspect: (UnsafeMutableRawPointer) -> Void = { _ in }) -> Int32 {
    var result: Int32 = 0
    withRequest(bytes: bufferBytes ?? max(declared, 8), atPageEnd: atPageEnd) { p in
        p.storeBytes(of: UInt32(truncatingIfNeeded: declared), as: UInt32.self)
        prepare(p)
        result = kdbt_sys_ioctl(fd, UInt(command.number), p)
        inspect(p)
    }
    return result
}

// Well-formed requests.
var reportedSize: UInt32 = 0
var protocolVersion: UInt32 = 0
var r = ioctlOn(.version, size: VersionReply.sizeV1, inspect: { p in
    reportedSize = p.load(as: UInt32.self)
    protocolVersion = p.load(fromByteOffset: 8, as: UInt32.self)
})
check("version: well-formed request succeeds", r == 0, describe(r))
check("version: reply size field is the bytes written", reportedSize == UInt32(VersionReply.sizeV1), "\(reportedSize)")
check("version: protocol matches the CLI", protocolVersion == kdbtProtocolVersion, "\(protocolVersion)")
r = ioctlOn(.status, size: StatusReply.sizeV1)
check("status: well-formed request succeeds", r == 0, describe(r))

// Unknown commands.
var dummy = [UInt8](repeating: 0, count: 64)
r = kdbt_sys_ioctl(fd, UInt(ioctlNumber(direction: 3, type: kdbtIoctlType, nr: 0x7F, size: 56)), &dummy)
check("unknown command number -> ENOTTY", r == -Errno.ENOTTY, describe(r))
r = kdbt_sys_ioctl(fd, UInt(ioctlNumber(direction: 3, type: kdbtIoctlType, nr: 1, size: 60)), &dummy)
check("known nr with another encoded size -> ENOTTY", r == -Errno.ENOTTY, describe(r))
r = kdbt_sys_ioctl(fd, UInt(ioctlNumber(direction: 3, type: 0x42, nr: 1, size: 56)), &dummy)
check("other ioctl type -> ENOTTY", r == -Errno.ENOTTY, describe(r))

// Sizes, flags and reserved fields, each case on an otherwise valid request.
nonisolated(unsafe) let kernelSymbols = try? Kallsyms()
nonisolated(unsafe) let textBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)

/// Fills the fields a valid request of `command` needs beyond its size.
func makeValid(_ command: KdbtCommand, _ p: UnsafeMutableRawPointer) {
    if command == .selfTest {
        SelfTestRequest(workload: SelfTestWorkload.recursion.rawValue, argument: 5)
            .encode(LayoutWriter(UnsafeMutableRawBufferPointer(start: p, count: SelfTestRequest.sizeV1)))
        return
    }
    guard command == .readText, let schedule = kernelSymbols?.lookup("schedule") else { return }
    ReadTextRequest(address: schedule.address, buffer: UInt64(UInt(bitPattern: textBuffer.baseAddress)), length: 16)
        .encode(LayoutWriter(UnsafeMutableRawBufferPointer(start: p, count: ReadTextRequest.sizeV1)))
}

// A well-formed retool changes the attachment; only its refusals are exercised.
r = ioctlOn(.retool, size: AttachRequest.sizeV1)
check("retool: the attach v1 size is short for it -> EINVAL", r == -Errno.EINVAL, describe(r))
r = ioctlOn(.retool, size: AttachRequest.sizeV2, prepare: { $0.storeBytes(of: UInt32(1), toByteOffset: 4, as: UInt32.self) })
check("retool: flags set -> EINVAL", r == -Errno.EINVAL, describe(r))
r = ioctlOn(.retool, size: AttachRequest.sizeV2, prepare: { $0.storeBytes(of: UInt64(1) << 40, toByteOffset: 8, as: UInt64.self) })
check("retool: an unknown tool bit -> EINVAL", r == -Errno.EINVAL, describe(r))
r = ioctlOn(.retool, size: AttachRequest.sizeV2, prepare: {
    $0.storeBytes(of: ToolBits.stackguard, toByteOffset: 8, as: UInt64.self)
    $0.storeBytes(of: UInt32(1 << 20), toByteOffset: 60, as: UInt32.self)
})
check("retool: a threshold past the stack -> EINVAL", r == -Errno.EINVAL, describe(r))

for command in [KdbtCommand.version, .status, .readText, .selfTest, .detach, .cpuStats] {
    let first = command.firstLayoutSize
    r = ioctlOn(command, size: 0, bufferBytes: first, prepare: { makeValid(command, $0); $0.storeBytes(of: UInt32(0), as: UInt32.self) })
    check("\(command): size 0 -> EINVAL", r == -Errno.EINVAL, describe(r))
    r = ioctlOn(command, size: first - 8, bufferBytes: first, prepare: { makeValid(command, $0); $0.storeBytes(of: UInt32(first - 8), as: UInt32.self) })
    check("\(command): short size -> EINVAL", r == -Errno.EINVAL, describe(r))
    // The module knows the current layout (it may be longer than the first):
    // beyond it, bytes must be zero, and it writes back no more than it knows.
    let known = command.currentLayoutSize
    var written: UInt32 = 0
    r = ioctlOn(command, size: known + 64, prepare: { makeValid(command, $0) }, inspect: { p in written = p.load(as: UInt32.self) })
    check("\(command): oversized with zero tail succeeds", r == 0, describe(r))
    check("\(command): oversized reply writes only the known size", written == UInt32(known), "\(written)")
    r = ioctlOn(command, size: known + 64, prepare: { p in makeValid(command, p); p.storeBytes(of: UInt8(1), toByteOffset: known + 63, as: UInt8.self) })
    check("\(command): oversized with non-zero tail -> E2BIG", r == -Errno.E2BIG, describe(r))
    if known > first {
        // An older caller's first layout is still served, and only that much is written back.
        r = ioctlOn(command, size: first, prepare: { makeValid(command, $0) }, inspect: { p in written = p.load(as: UInt32.self) })
        check("\(command): the first layout is still accepted", r == 0 && written == UInt32(first), "\(describe(r)) \(written)")
    }
    r = ioctlOn(command, size: kdbtMaxRequestSize + 1, bufferBytes: first, prepare: { makeValid(command, $0); $0.storeBytes(of: UInt32(kdbtMaxRequestSize + 1), as: UInt32.self) })
    check("\(command): larger than a page -> E2BIG", r == -Errno.E2BIG, describe(r))
    r = ioctlOn(command, size: first, prepare: { p in makeValid(command, p); p.storeBytes(of: UInt32(1), toByteOffset: 4, as: UInt32.self) })
    check("\(command): non-zero flags -> EINVAL", r == -Errno.EINVAL, describe(r))
    r = ioctlOn(command, size: first, prepare: { p in makeValid(command, p); p.storeBytes(of: UInt8(1), toByteOffset: first - 1, as: UInt8.self) })
    check("\(command): non-zero reserved field -> EINVAL", r == -Errno.EINVAL, describe(r))
    // The caller claims more bytes than it has mapped: the tail check faults.
    r = ioctlOn(command, size: first + 256, bufferBytes: first, atPageEnd: true, prepare: { makeValid(command, $0); $0.storeBytes(of: UInt32(first + 256), as: UInt32.self) })
    check("\(command): size past the mapped page -> EFAULT", r == -Errno.EFAULT, describe(r))
}

// Bad pointers.
r = kdbt_sys_ioctl_raw(fd, UInt(KdbtCommand.version.number), 0)
check("NULL argument -> EFAULT", r == -Errno.EFAULT, describe(r))
r = kdbt_sys_ioctl_raw(fd, UInt(KdbtCommand.status.number), 0xffff_ffff_8100_0000)
check("kernel address as argument -> EFAULT", r == -Errno.EFAULT, describe(r))
r = kdbt_sys_ioctl_raw(fd, UInt(KdbtCommand.status.number), 0x0000_7fff_dead_0000)
check("unmapped user address -> EFAULT", r == -Errno.EFAULT, describe(r))

// Reading live kernel text: text symbols only.
func readText(_ address: UInt64, _ length: UInt32) -> (Int32, [UInt8]) {
    var bytes = [UInt8](repeating: 0, count: Int(min(length, 4096)))
    var result: Int32 = 0
    bytes.withUnsafeMutableBytes { out in
        result = ioctlOn(.readText, size: ReadTextRequest.sizeV1, prepare: { p in
            ReadTextRequest(address: address, buffer: UInt64(UInt(bitPattern: out.baseAddress)), length: length)
                .encode(LayoutWriter(UnsafeMutableRawBufferPointer(start: p, count: ReadTextRequest.sizeV1)))
        })
    }
    return (result, bytes)
}
do {
    let symbols = try Kallsyms()
    let schedule = symbols.lookup("schedule")!
    var (r, bytes) = readText(schedule.address, 64)
    check("read text: 64 bytes of schedule()", r == 0, describe(r))
    // Debian's kernel has no IBT: functions start with the __fentry__ NOP5 or push.
    check("read text: bytes are code, not zeros", bytes.contains { $0 != 0 })
    (r, _) = readText(schedule.address & ~0xFFF, 4096)
    check("read text: a whole page of core text", r == 0, describe(r))
    let jiffies = symbols.lookup("jiffies_64")!
    (r, _) = readText(jiffies.address, 8)
    check("read text: a data symbol (jiffies_64) -> EFAULT", r == -Errno.EFAULT, describe(r))
    (r, _) = readText(0, 16)
    check("read text: address 0 -> EFAULT", r == -Errno.EFAULT, describe(r))
    (r, _) = readText(0xffff_8880_0000_0000, 16)
    check("read text: the direct map -> EFAULT", r == -Errno.EFAULT, describe(r))
    (r, _) = readText(schedule.address, 0)
    check("read text: length 0 -> EINVAL", r == -Errno.EINVAL, describe(r))
    (r, _) = readText(schedule.address, ReadTextRequest.maxLength + 1)
    check("read text: length above the maximum -> EINVAL", r == -Errno.EINVAL, describe(r))
    r = ioctlOn(.readText, size: ReadTextRequest.sizeV1, prepare: { p in
        ReadTextRequest(address: schedule.address, buffer: 0x10, length: 16)
            .encode(LayoutWriter(UnsafeMutableRawBufferPointer(start: p, count: ReadTextRequest.sizeV1)))
    })
    check("read text: bad destination buffer -> EFAULT", r == -Errno.EFAULT, describe(r))
} catch {
    check("read text: /proc/kallsyms readable", false, error.description)
}

// Self-test requests: workload and argument bounds.
func selfTest(_ workload: UInt32, _ argument: UInt64) -> Int32 {
    ioctlOn(.selfTest, size: SelfTestRequest.sizeV1, prepare: { p in
        SelfTestRequest(workload: workload, argument: argument)
            .encode(LayoutWriter(UnsafeMutableRawBufferPointer(start: p, count: SelfTestRequest.sizeV1)))
    })
}
r = selfTest(SelfTestWorkload.recursion.rawValue, 10)
check("selftest: recursion 10 succeeds", r == 0, describe(r))
r = selfTest(0, 10)
check("selftest: workload 0 -> EINVAL", r == -Errno.EINVAL, describe(r))
r = selfTest(99, 10)
check("selftest: unknown workload -> EINVAL", r == -Errno.EINVAL, describe(r))
r = selfTest(SelfTestWorkload.sort.rawValue, 0)
check("selftest: argument 0 -> EINVAL", r == -Errno.EINVAL, describe(r))
r = selfTest(SelfTestWorkload.sort.rawValue, SelfTestWorkload.sort.maximumArgument + 1)
check("selftest: argument above the maximum -> EINVAL", r == -Errno.EINVAL, describe(r))

// Attach: rejected inputs change nothing (the kernel stays detached).
func attachRequest(_ prepare: (UnsafeMutableRawPointer) -> Void) -> Int32 {
    ioctlOn(.attach, size: AttachRequest.sizeV1, prepare: prepare)
}
r = attachRequest { p in p.storeBytes(of: UInt32(1), toByteOffset: 4, as: UInt32.self) }
check("attach: non-zero flags -> EINVAL", r == -Errno.EINVAL, describe(r))
r = attachRequest { p in p.storeBytes(of: UInt64(1) << 40, toByteOffset: 8, as: UInt64.self) }
check("attach: unknown tool bit -> EINVAL", r == -Errno.EINVAL, describe(r))
r = attachRequest { p in p.storeBytes(of: UInt8(1), toByteOffset: 40, as: UInt8.self) }
check("attach: non-zero reserved field -> EINVAL", r == -Errno.EINVAL, describe(r))
r = ioctlOn(.cpuStats, size: CPUStatsRequest.sizeV1, prepare: { p in
    p.storeBytes(of: UInt32(4096), toByteOffset: 8, as: UInt32.self)
})
check("cpu stats: CPU out of range -> EINVAL", r == -Errno.EINVAL, describe(r))
var detachedState: UInt32 = 9
r = ioctlOn(.status, size: StatusReply.sizeV1, inspect: { p in detachedState = p.load(fromByteOffset: 8, as: UInt32.self) })
check("still detached after the rejected attaches", r == 0 && detachedState == 0, "\(detachedState)")

// Privilege: the device node is 0600 and every ioctl checks CAP_SYS_ADMIN, so an
// inherited descriptor does not help an unprivileged process.
var st = stat()
check("device mode is 0600", stat(devicePath, &st) == 0 && (st.st_mode & 0o777) == 0o600,
      String(st.st_mode & 0o777, radix: 8))
let child = fork()
if child == 0 {
    guard setgid(65534) == 0, setuid(65534) == 0 else { _exit(10) }
    var buffer = [UInt8](repeating: 0, count: VersionReply.sizeV1)
    buffer.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(VersionReply.sizeV1), as: UInt32.self) }
    let denied = kdbt_sys_ioctl(fd, UInt(KdbtCommand.version.number), &buffer)
    let reopened = kdbt_sys_open_device(devicePath)
    _exit(denied == -Errno.EPERM ? (reopened == -Errno.EACCES ? 0 : 12) : 11)
}
var status: Int32 = 0
waitpid(child, &status, 0)
let code = (status >> 8) & 0xff
check("unprivileged ioctl on an inherited fd -> EPERM", code == 0 || code == 12, "child exit \(code)")
check("unprivileged open -> EACCES", code == 0, "child exit \(code)")

print("\(passed) passed, \(failed) failed")
exit(failed == 0 ? 0 : 1)
