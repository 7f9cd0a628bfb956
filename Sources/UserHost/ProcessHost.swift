// SPDX-License-Identifier: GPL-2.0-only
//
// The whole-program user-mode host behind `kdbt user`: the Engine, loaded into an
// unmodified dynamically linked program by LD_PRELOAD, takes the program over from
// the preload constructor on (the rest of the dynamic loader's start-up, _start,
// main, exit) and keeps every thread translated until the process ends.
//
// - Threads: clone/clone3 with CLONE_VM and without CLONE_VFORK are performed by
//   the host, so the new thread starts with a context of its own (GS base) and
//   continues translated after the system call. fork and vfork children run on as
//   they are: a forked child has its own copy of the cache and context; a vfork
//   child borrows the suspended parent's context.
// - exec: the new image is taken over again through LD_PRELOAD, which the
//   environment carries (a program that drops it from exec's environment runs
//   the new image natively).
// - Every other system call runs inline, from the cache.
// - Not yet: signal handlers run natively (the kernel calls them at their native
//   address; they return into the cache through sigreturn).

import CKdbtSys
import Engine
import Glibc

/// System call numbers (x86-64) the host intercepts.
enum SyscallNumber {
    static let rtSigaction: UInt64 = 13
    static let rtSigreturn: UInt64 = 15
    static let clone: UInt64 = 56
    static let exit: UInt64 = 60
    static let exitGroup: UInt64 = 231
    static let clone3: UInt64 = 435
}

/// clone flags (linux/sched.h).
enum CloneFlags {
    static let vm: UInt64 = 0x0000_0100
    static let vfork: UInt64 = 0x0000_4000
}

/// What a `kdbt user` run instruments, from the environment set by the CLI.
public struct ProcessToolConfiguration {
    public var inscount = false
    public var null = false
    /// Report translation statistics at exit (KDBT_USER_STATS).
    public var stats = false
    /// Where reports go: a duplicate of stderr taken at start-up (programs such as
    /// coreutils close stderr before exiting), or KDBT_USER_OUTPUT's file.
    public var reportFD: Int32 = 2

    public init() {}

    public static func fromEnvironment() -> ProcessToolConfiguration {
        var c = ProcessToolConfiguration()
        if let tools = getenv("KDBT_USER_TOOLS") {
            for name in String(cString: tools).split(separator: ",") {
                if name == "inscount" { c.inscount = true }
                if name == "null" { c.null = true }
            }
        }
        c.stats = getenv("KDBT_USER_STATS") != nil
        if let path = getenv("KDBT_USER_OUTPUT") {
            let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            if fd >= 0 { c.reportFD = fd }
        } else {
            let fd = fcntl(2, F_DUPFD_CLOEXEC, 200)
            if fd >= 0 { c.reportFD = fd }
        }
        return c
    }
}

/// The process-wide host: one translator shared by all threads (translation is
/// serialized by a lock), one context per thread.
public final class ProcessHost: @unchecked Sendable {
    nonisolated(unsafe) public static var shared: ProcessHost?

    public let translator: Translator
    let configuration: ProcessToolConfiguration
    var lock = pthread_mutex_t()
    let insCountOffset: Int32
    /// Instructions counted by threads that have exited.
    var exitedInstructions: UInt64 = 0
    var exitedThreads: UInt64 = 0
    /// The application's signal actions (handler > 1 where it has a handler).
    var appActions = [KernelSigaction](repeating: KernelSigaction(), count: ProcessHost.maxSignal)
    static let dispatcherStackBytes = 1 << 20

    init?(configuration: ProcessToolConfiguration) {
        self.configuration = configuration
        var limits = TranslatorLimits()
        limits.saveExtendedState = true
        limits.extendedStateBytes = Int32(kdbt_sys_xsave_size())
        limits.lookupEntries = 1 << 20
        let bytes = limits.arenaBytes
        // Low, so the inline indirect lookup addresses its table with a disp32.
        guard let arenaBlock = kdbt_sys_map_anonymous_low(bytes) else { return nil }
        var arena = Arena(base: arenaBlock, capacity: bytes)
        let host = TranslatorHostFunctions(
            allocateCode: { bytes, near in kdbt_sys_map_code_near(bytes, near) },
            readCode: { destination, address, count in kdbt_sys_read_own_memory(destination, address, count) },
            lock: { pthread_mutex_lock(&ProcessHost.shared!.lock) },
            unlock: { pthread_mutex_unlock(&ProcessHost.shared!.lock) })
        guard let t = Translator.create(in: &arena, host: host, limits: limits, contextGSOffset: 0) else { return nil }
        translator = t
        pthread_mutex_init(&lock, nil)
        var offset: Int32 = -1
        if configuration.null { _ = t.register(NullTool.registration, storageBytes: 0) }
        if configuration.inscount,
           t.register(InsCount.registration(statistics: nil), storageBytes: InsCount.storageBytes) {
            offset = t.storageOffset(ofTool: t.state.pointee.toolCount - 1) + InsCount.counterOffset
        }
        insCountOffset = offset
        for n in [SyscallNumber.clone, SyscallNumber.clone3, SyscallNumber.exit, SyscallNumber.exitGroup,
                  SyscallNumber.rtSigaction, SyscallNumber.rtSigreturn] {
            _ = t.interceptSyscall(UInt32(n))
        }
    }

    /// A context (and dispatcher stack) for a new thread, GS base not yet set.
    func makeContext() -> UnsafeMutableRawPointer? {
        guard let context = kdbt_sys_map_anonymous(ContextField.size),
              let stack = kdbt_sys_map_anonymous(Self.dispatcherStackBytes)
        else { return nil }
        translator.initializeContext(
            context, dispatcherStackTop: UInt64(UInt(bitPattern: stack)) + UInt64(Self.dispatcherStackBytes),
            dispatch: UInt64(UInt(bitPattern: unsafeBitCast(ProcessHost.dispatchEntry, to: UnsafeRawPointer.self))),
            sentinel: 0)
        return context
    }

    /// fcache_return's C entry: handles intercepted system calls, then translates
    /// the next block under the translator lock.
    static let dispatchEntry: @convention(c) (UnsafeMutableRawPointer) -> UInt64 = { context in
        let host = ProcessHost.shared!
        let savedErrno = errno  // the application's errno: the dispatcher must not change it
        defer { errno = savedErrno }
        pthread_mutex_lock(&host.lock)
        let exit = host.translator.exit(of: context)
        pthread_mutex_unlock(&host.lock)
        var target = exit.target
        if exit.isSyscall { target = host.performSyscall(context, at: exit.target) }
        pthread_mutex_lock(&host.lock)
        let next = host.translator.resume(at: target, after: exit)
        pthread_mutex_unlock(&host.lock)
        // A signal waits for a native boundary: resume single-stepping (Signals.swift).
        if context.load(fromByteOffset: Int(SignalField.stepping), as: UInt64.self) != 0 {
            let flags = context.load(fromByteOffset: Int(ContextField.appFlags), as: UInt64.self)
            context.storeBytes(of: flags | SignalConstant.trapFlag, toByteOffset: Int(ContextField.appFlags), as: UInt64.self)
        }

        if next == 0 {
            let s = host.translator.state.pointee
            host.report("kdbt: translation failed at 0x\(String(s.lastErrorPC, radix: 16)): "
                + "\(s.lastError.message.description); the program cannot continue\n")
            kdbt_sys_exit_group(70)
        }
        return next
    }

    // MARK: system calls

    func register(_ r: GPR, _ context: UnsafeMutableRawPointer) -> UInt64 {
        context.load(fromByteOffset: Int(ContextField.appRegister(r)), as: UInt64.self)
    }

    func setRegister(_ r: GPR, _ value: UInt64, _ context: UnsafeMutableRawPointer) {
        context.storeBytes(of: value, toByteOffset: Int(ContextField.appRegister(r)), as: UInt64.self)
    }

    /// Performs the intercepted system call at `pc`; returns where the application
    /// continues.
    func performSyscall(_ context: UnsafeMutableRawPointer, at pc: UInt64) -> UInt64 {
        let next = pc + 2  // `syscall` is 0f 05
        let number = register(.rax, context)
        switch number {
        case SyscallNumber.rtSigaction:
            setRegister(.rax, interceptSigaction(context), context)
            return next
        case SyscallNumber.rtSigreturn:
            interceptSigreturn(context)
        case SyscallNumber.exit:
            threadExiting(context)
            kdbt_sys_exit_thread(Int32(truncatingIfNeeded: register(.rdi, context)))
        case SyscallNumber.exitGroup:
            threadExiting(context)
            reportTotals()
            kdbt_sys_exit_group(Int32(truncatingIfNeeded: register(.rdi, context)))
        case SyscallNumber.clone:
            let flags = register(.rdi, context)
            if flags & CloneFlags.vm != 0 && flags & CloneFlags.vfork == 0 {
                setRegister(.rax, cloneThread(context, flags: flags, childStack: register(.rsi, context),
                                              parentTID: register(.rdx, context), childTID: register(.r10, context),
                                              tls: register(.r8, context), next: next), context)
                return next
            }
        case SyscallNumber.clone3:
            // struct clone_args { flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, ... }
            // The host needs its own stack for the child's first steps, so clone3
            // becomes clone; a library that relies on clone3-only fields sees ENOSYS
            // and falls back to clone, as glibc does.
            setRegister(.rax, UInt64(bitPattern: -38), context)  // -ENOSYS
            return next
        default:
            break
        }
        // Anything else intercepted but not special: perform it as it is.
        setRegister(.rax, UInt64(bitPattern: Int64(kdbt_sys_syscall6(
            Int(bitPattern: UInt(number)), register(.rdi, context), register(.rsi, context), register(.rdx, context),
            register(.r10, context), register(.r8, context), register(.r9, context)))), context)
        return next
    }

    /// The parent's side of a new thread: the child gets a copy of the parent's
    /// application state in a context of its own and resumes after the syscall.
    func cloneThread(_ parent: UnsafeMutableRawPointer, flags: UInt64, childStack: UInt64, parentTID: UInt64,
                     childTID: UInt64, tls: UInt64, next: UInt64) -> UInt64 {
        guard let child = makeContext() else { return UInt64(bitPattern: -12) }  // -ENOMEM
        // The child's application state: the parent's registers, rax 0, its stack.
        let registerBytes = Int(ContextField.appFlags - ContextField.appRegisters) + 8
        (child + Int(ContextField.appRegisters)).copyMemory(
            from: parent + Int(ContextField.appRegisters), byteCount: registerBytes)
        setRegister(.rax, 0, child)
        if childStack != 0 { setRegister(.rsp, childStack, child) }
        pthread_mutex_lock(&lock)
        let entry = translator.translate(next)
        pthread_mutex_unlock(&lock)
        guard entry != 0 else { return UInt64(bitPattern: -12) }
        child.storeBytes(of: entry, toByteOffset: Int(ContextField.nextCachePC), as: UInt64.self)
        let stackTop = child.load(fromByteOffset: Int(ContextField.dispatcherStack), as: UInt64.self)
        return UInt64(bitPattern: Int64(kdbt_sys_clone_thread(
            flags, stackTop, parentTID, childTID, tls, UInt64(UInt(bitPattern: child)),
            translator.state.pointee.resume)))
    }

    // MARK: reports

    func report(_ text: String) {
        var text = text
        text.withUTF8 { bytes in _ = write(configuration.reportFD, bytes.baseAddress, bytes.count) }
    }

    func threadExiting(_ context: UnsafeMutableRawPointer) {
        guard insCountOffset >= 0 else { return }
        let count = context.load(fromByteOffset: Int(insCountOffset), as: UInt64.self)
        pthread_mutex_lock(&lock)
        exitedInstructions += count
        exitedThreads += 1
        pthread_mutex_unlock(&lock)
        report("kdbt: inscount: thread \(kdbt_sys_syscall6(186, 0, 0, 0, 0, 0, 0)): \(count) instructions\n")
    }

    func reportTotals() {
        if insCountOffset >= 0 {
            report("kdbt: inscount: total \(exitedInstructions) instructions in \(exitedThreads) threads\n")
        }
        if configuration.stats {
            let s = translator.state.pointee.stats
            let ratio = s.nativeBytes == 0 ? 0 : (s.cacheBytes * 100 + s.nativeBytes / 2) / s.nativeBytes
            report("kdbt: translation: \(s.blocks) blocks, \(s.nativeBytes) native bytes -> \(s.cacheBytes) "
                + "cache bytes (\(ratio / 100).\(ratio % 100 < 10 ? "0" : "")\(ratio % 100) per native byte), "
                + "\(s.links) links, \(s.dispatches) dispatches, \(s.indirectMisses) indirect-lookup misses\n")
        }
    }

    // MARK: start-up

    /// Called from the preload constructor: sets up the host and this thread's
    /// context; returns the takeover routine (calling it returns translated), or
    /// nil to run natively.
    public static func start() -> UnsafeRawPointer? {
        let debug = getenv("KDBT_DEBUG") != nil
        guard shared == nil, let host = ProcessHost(configuration: .fromEnvironment()),
              let context = host.makeContext()
        else {
            if debug { debugMessage("kdbt: user-mode host setup failed\n") }
            return nil
        }
        if debug { debugMessage("kdbt: taking over pid \(getpid())\n") }
        shared = host
        host.installTrapHandler()
        guard kdbt_sys_set_gs_base(UInt64(UInt(bitPattern: context))) == 0 else { return nil }
        return UnsafeRawPointer(bitPattern: UInt(host.translator.state.pointee.takeover))
    }
}

/// A line on stderr, for KDBT_DEBUG.
func debugMessage(_ text: String) {
    var text = text
    text.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
}
