// SPDX-License-Identifier: GPL-2.0-only
//
// The translator on real kernel code, before any takeover: a built-in workload
// (kmod/selftest.c) runs natively, then translated from the code cache with
// inscount, on the calling CPU with preemption off, entered and left like the
// user-mode in-process host does. The context is this CPU's per-CPU context,
// reached through %gs exactly as attached code will reach it.

#if hasFeature(Embedded)

#if canImport(Protocol)
import Protocol
#endif

@_extern(c, "kdbt_host_selftest_begin")
func kdbt_host_selftest_begin() -> Int
@_extern(c, "kdbt_host_selftest_end")
func kdbt_host_selftest_end()
@_extern(c, "kdbt_host_code_alloc")
func kdbt_host_code_alloc(_ bytes: Int, _ near: UInt64) -> UnsafeMutableRawPointer?
@_extern(c, "kdbt_host_read_code")
func kdbt_host_read_code(_ destination: UnsafeMutableRawPointer, _ address: UInt64, _ count: Int) -> Int
@_extern(c, "kdbt_host_context_gs_offset")
func kdbt_host_context_gs_offset() -> Int
@_extern(c, "kdbt_host_context_bytes")
func kdbt_host_context_bytes() -> Int
@_extern(c, "kdbt_host_this_cpu_context")
func kdbt_host_this_cpu_context() -> UnsafeMutableRawPointer
@_extern(c, "kdbt_host_selftest_stack_top")
func kdbt_host_selftest_stack_top() -> UInt64
@_extern(c, "kdbt_host_preempt_disable")
func kdbt_host_preempt_disable()
@_extern(c, "kdbt_host_preempt_enable")
func kdbt_host_preempt_enable()
@_extern(c, "kdbt_host_cpu")
func kdbt_host_cpu() -> UInt32
@_extern(c, "kdbt_host_selftest_native")
func kdbt_host_selftest_native(_ workload: Int, _ argument: Int) -> Int
@_extern(c, "kdbt_host_selftest_entry")
func kdbt_host_selftest_entry() -> UInt64

/// The return address the translated call "returns" to: never executed, never a
/// kernel address (non-canonical), recognised by the dispatcher.
private let selfTestSentinel: UInt64 = 0x8000_0000_0000_0000

/// fcache_return's C entry in the kernel: translate the next block, or leave on
/// failure (the flow reads lastError).
private let kernelSelfTestDispatch: @convention(c) (UnsafeMutableRawPointer) -> UInt64 = { context in
    let next = Translator.dispatch(context)
    if next != 0 { return next }
    return Translator(context: context).state.pointee.leave
}

extension KernelHost {

    /// Sizes for the self-test: one workload's worth of code.
    static var selfTestLimits: TranslatorLimits {
        var limits = TranslatorLimits()
        limits.maxUnits = 8
        limits.unitBytes = 1 << 20
        limits.maxFragments = 1 << 14
        limits.maxStubs = 1 << 15
        limits.maxBoundaries = 1 << 19
        limits.lookupEntries = 1 << 15
        limits.saveExtendedState = false  // the Engine is built without SSE/x87
        limits.enterStackGap = 1024  // kernel stacks are 16 KiB
        return limits
    }

    func translationSelfTest(_ request: inout SelfTestRequest) -> Int32 {
        let gsOffset = kdbt_host_context_gs_offset()
        guard kdbt_host_context_bytes() >= ContextField.size,
              gsOffset >= 0, gsOffset + ContextField.size <= Int(Int32.max)
        else { return -Errno.EOPNOTSUPP }
        guard kdbt_host_selftest_begin() == 0 else { return -Errno.ENOMEM }
        defer { kdbt_host_selftest_end() }
        let workload = Int(request.workload)
        let argument = Int(truncatingIfNeeded: request.argument)
        request.nativeResult = UInt64(bitPattern: Int64(kdbt_host_selftest_native(workload, argument)))

        let limits = KernelHost.selfTestLimits
        guard let block = allocateArena(bytes: limits.arenaBytes) else { return -Errno.ENOMEM }
        defer { freeArena(block) }
        var arena = Arena(base: block, capacity: limits.arenaBytes)
        let functions = TranslatorHostFunctions(
            allocateCode: { bytes, near in kdbt_host_code_alloc(bytes, near) },
            readCode: { destination, address, count in kdbt_host_read_code(destination, address, count) })
        guard let translator = Translator.create(in: &arena, host: functions, limits: limits,
                                                 contextGSOffset: Int32(gsOffset)),
              translator.register(InsCount.registration(statistics: nil), storageBytes: InsCount.storageBytes)
        else { return -Errno.ENOMEM }
        let counter = Int(translator.storageOffset(ofTool: 0) + InsCount.counterOffset)

        // From here to the end of the run this CPU's context is ours: no migration.
        kdbt_host_preempt_disable()
        request.cpu = kdbt_host_cpu()
        let context = kdbt_host_this_cpu_context()
        translator.initializeContext(
            context, dispatcherStackTop: kdbt_host_selftest_stack_top(),
            dispatch: UInt64(UInt(bitPattern: unsafeBitCast(kernelSelfTestDispatch, to: UnsafeRawPointer.self))),
            sentinel: selfTestSentinel)
        context.storeBytes(of: UInt64(workload), toByteOffset: Int(ContextField.appRegister(.rdi)), as: UInt64.self)
        context.storeBytes(of: UInt64(argument), toByteOffset: Int(ContextField.appRegister(.rsi)), as: UInt64.self)
        let entry = translator.translate(kdbt_host_selftest_entry())
        if entry != 0 {
            context.storeBytes(of: entry, toByteOffset: Int(ContextField.nextCachePC), as: UInt64.self)
            let enter = unsafeBitCast(UnsafeRawPointer(bitPattern: UInt(translator.state.pointee.enter))!,
                                      to: (@convention(c) () -> UInt64).self)
            request.translatedResult = enter()
            request.instructions = context.load(fromByteOffset: counter, as: UInt64.self)
        }
        kdbt_host_preempt_enable()

        let s = translator.state.pointee
        request.translateError = UInt32(s.lastError.rawValue)
        request.errorPC = s.lastErrorPC
        request.blocks = s.stats.blocks
        request.cacheBytes = s.stats.cacheBytes
        request.nativeBytes = s.stats.nativeBytes
        return 0
    }
}

#endif
