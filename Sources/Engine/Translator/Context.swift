// SPDX-License-Identifier: GPL-2.0-only
//
// The translator context: one per application thread (user mode) or per CPU
// (kernel). Emitted code reaches it through the GS segment, so it needs no free
// register: in user mode GS is unused by x86-64 Linux programs and its base is set
// to the context; in the kernel GS is the per-CPU base and the context is a per-CPU
// variable at a fixed GS offset. `TranslatorState.contextGSOffset` is added to every
// field offset below.

/// Field offsets inside a context. Fixed numbers, because emitted code embeds them.
public enum ContextField {
    /// The context's own address, for code that needs a plain pointer to it.
    public static let selfPointer: Int32 = 0x00
    /// Scratch spill slots used by mangled instructions and exit stubs.
    public static let spillRAX: Int32 = 0x08
    public static let spillRCX: Int32 = 0x10
    public static let spillRDX: Int32 = 0x18
    public static let spillExtra: Int32 = 0x20
    /// The application's registers while the dispatcher runs, in encoding order
    /// (rax rcx rdx rbx rsp rbp rsi rdi r8 ... r15).
    public static let appRegisters: Int32 = 0x40
    public static let appFlags: Int32 = 0xC0
    /// Why the cache was left: a link-stub index, or `indirectExit` (target in
    /// `indirectTarget`).
    public static let exitReason: Int32 = 0xC8
    public static let indirectTarget: Int32 = 0xD0
    /// Where fcache_return / enter jump to next (a cache address).
    public static let nextCachePC: Int32 = 0xD8
    /// Top of the dispatcher's own stack (16-byte aligned).
    public static let dispatcherStack: Int32 = 0xE0
    /// C-callable dispatcher: `UInt64 dispatch(context)` returning the next cache PC.
    public static let dispatchFunction: Int32 = 0xE8
    /// Shared routines, reached with `jmp *%gs:field` so stubs work from any unit.
    public static let fcacheReturn: Int32 = 0xF0
    public static let indirectLookup: Int32 = 0xF8
    /// The indirect-branch table's tags (LookupTable; the probes take the slot from
    /// the target's low 16 bits). 0x108 is free.
    public static let lookupTable: Int32 = 0x100
    /// The native caller's callee-saved registers while the in-process host runs a
    /// function translated (rbx rbp r12 r13 r14 r15 rsp).
    public static let nativeSaved: Int32 = 0x110
    /// The TranslatorState this context belongs to.
    public static let translator: Int32 = 0x150
    /// Return address that ends an in-process run (the app "returns to the host").
    public static let sentinel: Int32 = 0x158
    /// Clean calls: the C function, its argument, where to resume, and the routine.
    public static let cleanCallFunction: Int32 = 0x170
    public static let cleanCallArgument: Int32 = 0x178
    public static let cleanCallReturn: Int32 = 0x180
    public static let cleanCallRoutine: Int32 = 0x188
    /// Spill slot for meta instructions that need a register.
    public static let metaSpill: Int32 = 0x190
    /// A signal (user mode) or interrupt (kernel) waiting for the next native
    /// instruction boundary: its number (0: none), the blocked mask when it
    /// arrived, and its siginfo.
    public static let pendingSignal: Int32 = 0x198
    public static let pendingMask: Int32 = 0x1A0
    public static let pendingInfo: Int32 = 0x1A8
    public static let pendingInfoBytes: Int = 128
    /// Kernel host: its takeover state, and the per-CPU fields its entry stubs and
    /// trap handler share (Kernel/KernelTakeover.swift).
    public static let hostState: Int32 = 0x160
    public static let interruptTarget: Int32 = 0x228
    public static let trapAction: Int32 = 0x230
    public static let switchStack: Int32 = 0x238
    public static let stepping: Int32 = 0x240
    public static let syscallEntries: Int32 = 0x248
    public static let userInterrupts: Int32 = 0x250
    public static let kernelInterrupts: Int32 = 0x258
    public static let kernelExceptions: Int32 = 0x260
    public static let delayedInterrupts: Int32 = 0x268
    public static let nativeFallbacks: Int32 = 0x270
    public static let untranslatedFaults: Int32 = 0x278
    public static let userExceptions: Int32 = 0x280
    public static let delayedDelivered: Int32 = 0x288
    public static let invalidations: Int32 = 0x290
    /// Inline checks: the effective address for the slow path, and spill slots
    /// for the scratch registers and flags (Instrument/Emit.swift).
    public static let inlineCheckAddress: Int32 = 0x298
    public static let inlineCheckSpill: Int32 = 0x2A0  // 4 slots: r11 r10 r9 rax
    /// Per-context storage for tools (inline counters and the like).
    public static let toolStorage: Int32 = 0x300
    public static let toolStorageBytes: Int32 = 0x100
    public static let size: Int = 0x400

    /// `exitReason` of an indirect branch that missed the lookup table.
    public static let indirectExit: UInt64 = 0xFFFF_FFFF
    /// `exitReason` of an `iretq` (kernel): the frame is at the application's rsp.
    public static let iretExit: UInt64 = 0xFFFF_FFFE

    @inline(__always) public static func appRegister(_ r: GPR) -> Int32 {
        appRegisters + Int32(r.rawValue) * 8
    }
}
