// SPDX-License-Identifier: GPL-2.0-only
//
// The in-process user-mode host: runs a function of this process translated, with
// everything it calls, until it returns. The calling thread's GS base points at its
// translator context while translated code runs (x86-64 Linux programs leave GS
// unused), and the dispatcher runs on a stack of its own.

import CKdbtSys
import Engine
import Glibc

public struct TranslationFailure: Error, CustomStringConvertible, Equatable {
    public let error: TranslateError
    public let address: UInt64
    public var description: String {
        "translation failed at 0x\(String(address, radix: 16)): \(error.message)"
    }
}

/// One translator and one context, for the thread that calls `call`.
public final class InProcessRunner: @unchecked Sendable {
    public let translator: Translator
    let arenaBlock: UnsafeMutableRawPointer
    let arenaBytes: Int
    let context: UnsafeMutableRawPointer
    let dispatcherStack: UnsafeMutableRawPointer
    static let dispatcherStackBytes = 256 * 1024
    /// The address translated code "returns" to when the function is done: never
    /// executed, recognised by the dispatcher.
    public static let sentinel: UInt64 = 0x0000_7FFF_FFFF_F000

    public init(limits requested: TranslatorLimits = TranslatorLimits()) {
        var limits = requested
        limits.saveExtendedState = true  // the dispatcher is ordinary hosted code
        limits.extendedStateBytes = Int32(kdbt_sys_xsave_size())
        limits.lookupEntries = 1 << 20
        let bytes = limits.arenaBytes
        // Low, so the inline indirect lookup addresses its table with a disp32.
        guard let block = kdbt_sys_map_anonymous_low(bytes) else { fatalError("cannot map the translator arena") }
        arenaBlock = block
        arenaBytes = bytes
        var arena = Arena(base: arenaBlock, capacity: bytes)
        let host = TranslatorHostFunctions(
            allocateCode: { bytes, near in kdbt_sys_map_code_near(bytes, near) },
            readCode: { destination, address, count in kdbt_sys_read_own_memory(destination, address, count) })
        guard let t = Translator.create(in: &arena, host: host, limits: limits, contextGSOffset: 0) else {
            fatalError("cannot create a translator: out of memory for code units")
        }
        translator = t
        context = UnsafeMutableRawPointer.allocate(byteCount: ContextField.size, alignment: 64)
        dispatcherStack = UnsafeMutableRawPointer.allocate(byteCount: Self.dispatcherStackBytes, alignment: 16)
        // Zeroed: XSAVE writes only XSTATE_BV of the area's header, and XRSTOR faults
        // unless the rest of the header (XCOMP_BV, reserved bytes) is zero.
        dispatcherStack.initializeMemory(as: UInt8.self, repeating: 0, count: Self.dispatcherStackBytes)
        let dispatch: @convention(c) (UnsafeMutableRawPointer) -> UInt64 = { context in
            let next = Translator.dispatch(context)
            if next != 0 { return next }
            // Translation failed: give up on this run; the runner reports lastError.
            let state = UnsafeMutablePointer<TranslatorState>(
                bitPattern: UInt(context.load(fromByteOffset: Int(ContextField.translator), as: UInt64.self)))!
            return state.pointee.leave
        }
        translator.initializeContext(
            context, dispatcherStackTop: UInt64(UInt(bitPattern: dispatcherStack)) + UInt64(Self.dispatcherStackBytes),
            dispatch: UInt64(UInt(bitPattern: unsafeBitCast(dispatch, to: UnsafeRawPointer.self))),
            sentinel: Self.sentinel)
    }

    deinit {
        // Code units stay mapped: a runner lives as long as the tests that use it.
        munmap(arenaBlock, arenaBytes)
        context.deallocate()
        dispatcherStack.deallocate()
    }

    public var stats: TranslatorStats { translator.state.pointee.stats }

    /// Registers a tool (before the first `call`); returns its storage offset.
    public func register(_ tool: ToolRegistration, storageBytes: Int32) -> Int32? {
        guard translator.register(tool, storageBytes: storageBytes) else { return nil }
        return translator.storageOffset(ofTool: translator.state.pointee.toolCount - 1)
    }

    /// A 64-bit word of this thread's context (tool storage, statistics).
    public func contextWord(at offset: Int32) -> UInt64 {
        context.load(fromByteOffset: Int(offset), as: UInt64.self)
    }

    public func setContextWord(at offset: Int32, to value: UInt64) {
        context.storeBytes(of: value, toByteOffset: Int(offset), as: UInt64.self)
    }

    /// A call made ready to run: `enter()` with GS base `contextAddress` runs it.
    public struct PreparedCall {
        public let contextAddress: UInt64
        public let enter: @convention(c) () -> UInt64
    }

    /// Sets up `function(arguments...)` (up to six integer arguments, SysV ABI)
    /// without running it: arguments in the context, the entry translated.
    public func prepare(_ function: UnsafeRawPointer, _ arguments: [UInt64]) throws(TranslationFailure) -> PreparedCall {
        precondition(arguments.count <= 6, "at most six register arguments")
        let argumentRegisters: [GPR] = [.rdi, .rsi, .rdx, .rcx, .r8, .r9]
        for (i, value) in arguments.enumerated() {
            context.storeBytes(of: value, toByteOffset: Int(ContextField.appRegister(argumentRegisters[i])), as: UInt64.self)
        }
        translator.state.pointee.lastError = .none
        let entry = translator.translate(UInt64(UInt(bitPattern: function)))
        guard entry != 0 else { throw lastFailure }
        context.storeBytes(of: entry, toByteOffset: Int(ContextField.nextCachePC), as: UInt64.self)
        let enter = unsafeBitCast(
            UnsafeRawPointer(bitPattern: UInt(translator.state.pointee.enter))!,
            to: (@convention(c) () -> UInt64).self)
        return PreparedCall(contextAddress: UInt64(UInt(bitPattern: context)), enter: enter)
    }

    var lastFailure: TranslationFailure {
        TranslationFailure(error: translator.state.pointee.lastError, address: translator.state.pointee.lastErrorPC)
    }

    /// Runs `function(arguments...)` translated on this thread; returns its rax.
    public func call(_ function: UnsafeRawPointer, _ arguments: UInt64...) throws(TranslationFailure) -> UInt64 {
        let prepared = try prepare(function, arguments)
        let savedGS = kdbt_sys_get_gs_base()
        guard kdbt_sys_set_gs_base(prepared.contextAddress) == 0 else {
            fatalError("arch_prctl(ARCH_SET_GS) failed")
        }
        let result = prepared.enter()
        _ = kdbt_sys_set_gs_base(savedGS)
        if translator.state.pointee.lastError != .none { throw lastFailure }
        return result
    }
}
