// SPDX-License-Identifier: GPL-2.0-only
//
// Signals under `kdbt user`, the user-mode twin of interrupts in the kernel.
//
// The application's rt_sigaction calls are intercepted: the host records the
// application's handler and installs its own, with the application's flags, mask
// and restorer, so the kernel builds the very frame the application expects.
//
// - A signal that arrives where the cache holds the exact native state (a native
//   instruction boundary, see Translator.nativeBoundary) is delivered at once: the
//   frame's PC becomes the native PC and the application's handler runs
//   translated on that frame.
// - A signal that arrives in the middle of instrumentation or a mangled transfer
//   is delayed to the next native boundary: it is re-queued with its original
//   siginfo but blocked, and the thread single-steps (TF) until it reaches a
//   boundary; there the mask is restored and the kernel delivers it, exactly.
//   (DRK patches the next native instruction instead; in user mode the trap flag
//   is cheaper than writing into shared code.)
// - Synchronous faults inside a mangled sequence cannot be replayed; they are
//   delivered at the boundary of the application instruction that contains them.
// - rt_sigreturn from a translated handler is intercepted so that execution
//   resumes in the cache at the translation of the frame's (native) PC.

import CKdbtSys
import Engine
import Glibc

/// The kernel's struct sigaction (x86-64): handler, flags, restorer, mask.
struct KernelSigaction {
    var handler: UInt64 = 0
    var flags: UInt64 = 0
    var restorer: UInt64 = 0
    var mask: UInt64 = 0
}

enum SignalConstant {
    static let SIGTRAP: Int32 = 5
    static let SA_SIGINFO: UInt64 = 4
    static let SA_RESTORER: UInt64 = 0x0400_0000
    static let SA_RESETHAND: UInt64 = 0x8000_0000
    static let trapFlag: UInt64 = 0x100
    static let rtSigaction: Int = 13
    static let rtSigprocmask: Int = 14
    static let rtTgsigqueueinfo: Int = 297
    /// struct ucontext: gregs at 40 (RSP 15, RIP 16, EFL 17), uc_sigmask at 296.
    static let ucRSP = 40 + 15 * 8
    static let ucRIP = 40 + 16 * 8
    static let ucFlags = 40 + 17 * 8
    static let ucSigmask = 296
}

/// Context fields of the signal machinery (in the pending-signal area).
enum SignalField {
    /// Non-zero while the thread single-steps towards a boundary.
    static let stepping = ContextField.pendingSignal
    /// The blocked mask before deferral; restored at the boundary.
    static let savedMask = ContextField.pendingMask
}

extension ProcessHost {
    /// The application's actions, by signal number.
    static let maxSignal = 65

    /// rt_sigaction(sig, act, oldact, sigsetsize) on the application's behalf.
    func interceptSigaction(_ context: UnsafeMutableRawPointer) -> UInt64 {
        let sig = Int(register(.rdi, context))
        let act = register(.rsi, context)
        let oldact = register(.rdx, context)
        guard sig > 0, sig < Self.maxSignal, sig != Int(SignalConstant.SIGTRAP) || act == 0 else {
            // SIGTRAP single-steps delayed signals; it stays the host's.
            return rawSyscall(SignalConstant.rtSigaction, context)
        }
        var old = KernelSigaction()
        let r = kdbt_sys_syscall6(SignalConstant.rtSigaction, UInt64(sig), 0, UInt64(UInt(bitPattern: withUnsafeMutablePointer(to: &old) { $0 })), 8, 0, 0)
        if r < 0 { return UInt64(bitPattern: Int64(r)) }
        pthread_mutex_lock(&lock)
        if appActions[sig].handler > 1 { old = appActions[sig] }  // show the application its own handler
        pthread_mutex_unlock(&lock)
        if act != 0 {
            guard let newAction = UnsafePointer<KernelSigaction>(bitPattern: UInt(act))?.pointee else {
                return UInt64(bitPattern: -14)  // EFAULT
            }
            var installed = newAction
            if newAction.handler > 1 {
                installed.handler = UInt64(UInt(bitPattern: unsafeBitCast(ProcessHost.signalEntry, to: UnsafeRawPointer.self)))
                installed.flags |= SignalConstant.SA_SIGINFO
            }
            let r2 = withUnsafePointer(to: &installed) { p in
                kdbt_sys_syscall6(SignalConstant.rtSigaction, UInt64(sig), UInt64(UInt(bitPattern: p)), 0, 8, 0, 0)
            }
            if r2 < 0 { return UInt64(bitPattern: Int64(r2)) }
            pthread_mutex_lock(&lock)
            appActions[sig] = newAction.handler > 1 ? newAction : KernelSigaction()
            pthread_mutex_unlock(&lock)
        }
        if oldact != 0, let out = UnsafeMutablePointer<KernelSigaction>(bitPattern: UInt(oldact)) {
            out.pointee = old
        }
        return 0
    }

    func rawSyscall(_ number: Int, _ context: UnsafeMutableRawPointer) -> UInt64 {
        UInt64(bitPattern: Int64(kdbt_sys_syscall6(
            number, register(.rdi, context), register(.rsi, context), register(.rdx, context),
            register(.r10, context), register(.r8, context), register(.r9, context))))
    }

    /// rt_sigreturn from a translated handler: resume at the translation of the
    /// frame's PC (the kernel restores every register and the mask).
    func interceptSigreturn(_ context: UnsafeMutableRawPointer) -> Never {
        let uc = register(.rsp, context)
        let ucontext = UnsafeMutableRawPointer(bitPattern: UInt(uc))!
        let pc = ucontext.load(fromByteOffset: SignalConstant.ucRIP, as: UInt64.self)
        if !translator.isInCache(pc) {
            pthread_mutex_lock(&lock)
            let entry = translator.translate(pc)
            pthread_mutex_unlock(&lock)
            if entry != 0 { ucontext.storeBytes(of: entry, toByteOffset: SignalConstant.ucRIP, as: UInt64.self) }
        }
        kdbt_sys_sigreturn(uc)
    }

    /// The host's handler for every signal the application handles, and SIGTRAP.
    /// Runs natively on the signal stack: no allocation (the application may have
    /// been interrupted inside malloc).
    static let signalEntry: @convention(c) (Int32, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = {
        sig, info, uc in
        guard let host = ProcessHost.shared, let info, let uc else { return }
        let contextAddress = kdbt_sys_get_gs_base()
        guard let context = UnsafeMutableRawPointer(bitPattern: UInt(contextAddress)) else { return }
        host.handleSignal(sig, info, uc, context)
    }

    func handleSignal(_ sig: Int32, _ info: UnsafeMutableRawPointer, _ uc: UnsafeMutableRawPointer,
                      _ context: UnsafeMutableRawPointer) {
        let pc = uc.load(fromByteOffset: SignalConstant.ucRIP, as: UInt64.self)
        let stepping = context.load(fromByteOffset: Int(SignalField.stepping), as: UInt64.self) != 0
        let boundary = translator.nativeBoundary(at: pc)
        if sig == SignalConstant.SIGTRAP && stepping {
            guard boundary != nil else {
                if translator.isInCache(pc) && !isHostCall(pc) { return }  // keep stepping
                // Entering host code: stop stepping; the dispatcher starts again.
                clearTrap(uc)
                return
            }
            // At a boundary: unblock the deferred signals; the kernel delivers
            // them now, exactly here, as soon as this handler returns.
            clearTrap(uc)
            uc.storeBytes(of: context.load(fromByteOffset: Int(SignalField.savedMask), as: UInt64.self),
                          toByteOffset: SignalConstant.ucSigmask, as: UInt64.self)
            context.storeBytes(of: UInt64(0), toByteOffset: Int(SignalField.stepping), as: UInt64.self)
            return
        }
        let action = appActions[Int(sig)]
        guard action.handler > 1 else { return }
        if let native = boundary {
            deliver(sig, info, uc, native: native, handler: action.handler)
        }
        let code = info.load(fromByteOffset: 8, as: Int32.self)
        let synchronous = code > 0 && (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE)
        if synchronous {
            // A fault inside a mangled sequence: deliver at its instruction.
            deliver(sig, info, uc, native: nearestBoundary(before: pc) ?? pc, handler: action.handler)
        }
        // Delay: re-queue the signal blocked, step to the next boundary.
        if !stepping {
            context.storeBytes(of: uc.load(fromByteOffset: SignalConstant.ucSigmask, as: UInt64.self),
                               toByteOffset: Int(SignalField.savedMask), as: UInt64.self)
            context.storeBytes(of: UInt64(1), toByteOffset: Int(SignalField.stepping), as: UInt64.self)
        }
        let mask = uc.load(fromByteOffset: SignalConstant.ucSigmask, as: UInt64.self) | (1 << UInt64(sig - 1))
        uc.storeBytes(of: mask, toByteOffset: SignalConstant.ucSigmask, as: UInt64.self)
        _ = kdbt_sys_syscall6(SignalConstant.rtTgsigqueueinfo, UInt64(getpid()),
                              UInt64(kdbt_sys_syscall6(186, 0, 0, 0, 0, 0, 0)), UInt64(sig),
                              UInt64(UInt(bitPattern: info)), 0, 0)
        if translator.isInCache(pc) && !isHostCall(pc) {
            let flags = uc.load(fromByteOffset: SignalConstant.ucFlags, as: UInt64.self)
            uc.storeBytes(of: flags | SignalConstant.trapFlag, toByteOffset: SignalConstant.ucFlags, as: UInt64.self)
        }
        // In host code (dispatcher): the dispatcher resumes the application with TF
        // set (dispatchEntry), which starts the stepping.
    }

    /// Whether `pc` is the call into host code in fcache_return or the clean-call
    /// routine: stepping into the dispatcher would be pointless (it re-arms the
    /// stepping when it resumes the application).
    func isHostCall(_ pc: UInt64) -> Bool {
        let s = translator.state.pointee
        return pc == s.fcacheReturnCall || pc == s.cleanCallCall
    }

    func clearTrap(_ uc: UnsafeMutableRawPointer) {
        let flags = uc.load(fromByteOffset: SignalConstant.ucFlags, as: UInt64.self)
        uc.storeBytes(of: flags & ~SignalConstant.trapFlag, toByteOffset: SignalConstant.ucFlags, as: UInt64.self)
    }

    /// The native PC of the last boundary at or before `pc` in its fragment.
    func nearestBoundary(before pc: UInt64) -> UInt64? {
        let index = translator.fragment(containing: pc)
        guard index >= 0 else { return nil }
        let s = translator.state.pointee
        let f = s.fragments[index]
        var best: UInt64? = nil
        var bestOffset = -1
        for i in Int(f.boundaryStart)..<Int(f.boundaryStart + f.boundaryCount) {
            let b = s.boundaries[i]
            if UInt64(b.cacheOffset) <= pc - f.cacheStart && Int(b.cacheOffset) > bestOffset {
                bestOffset = Int(b.cacheOffset)
                best = f.nativePC(b)
            }
        }
        return best
    }

    /// Runs the application's handler translated, on the kernel's frame, with the
    /// frame showing the native PC.
    func deliver(_ sig: Int32, _ info: UnsafeMutableRawPointer, _ uc: UnsafeMutableRawPointer,
                 native: UInt64, handler: UInt64) {
        uc.storeBytes(of: native, toByteOffset: SignalConstant.ucRIP, as: UInt64.self)
        clearTrap(uc)
        pthread_mutex_lock(&lock)
        let entry = translator.translate(handler)
        pthread_mutex_unlock(&lock)
        guard entry != 0 else { return }
        let frame = UInt64(UInt(bitPattern: uc)) - 8
        kdbt_sys_enter_handler(frame, Int(sig), info, uc, entry)
    }

    /// Installs the host's SIGTRAP handler (for stepping to a boundary).
    func installTrapHandler() {
        var action = KernelSigaction()
        action.handler = UInt64(UInt(bitPattern: unsafeBitCast(ProcessHost.signalEntry, to: UnsafeRawPointer.self)))
        action.flags = SignalConstant.SA_SIGINFO | SignalConstant.SA_RESTORER
        action.restorer = UInt64(UInt(bitPattern: kdbt_sys_restorer_address()))
        _ = withUnsafePointer(to: &action) { p in
            kdbt_sys_syscall6(SignalConstant.rtSigaction, UInt64(SignalConstant.SIGTRAP), UInt64(UInt(bitPattern: p)), 0, 8, 0, 0)
        }
    }
}
