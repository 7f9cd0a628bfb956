// SPDX-License-Identifier: GPL-2.0-only
//
// The translator: native basic blocks become fragments in the code cache. Direct
// exits end in stubs that return to the dispatcher and are linked to their target's
// fragment once it exists; indirect branches go through a hash lookup emitted once
// per translator (Routines.swift). Kernel-safe: all state lives in memory the host
// handed over; no allocation, no classes.
//
// Transparency: the application sees native addresses only. Calls push the native
// return address; returns and indirect branches look their native target up.

/// What the translator needs from its host, as C function pointers so the kernel and
/// user-mode hosts plug in without generics on the hot dispatch path.
public struct TranslatorHostFunctions {
    /// Executable, writable memory of `bytes` within ±1 GiB of `near`, or nil.
    public var allocateCode: @convention(c) (_ bytes: Int, _ near: UInt64) -> UnsafeMutableRawPointer?
    /// Copies up to `count` bytes of application code at `address`; returns how many
    /// were readable (it stops at the first unreadable byte).
    public var readCode: @convention(c) (_ destination: UnsafeMutableRawPointer, _ address: UInt64, _ count: Int) -> Int
    /// The host's translator lock, for Engine code that runs outside the
    /// dispatcher (wrap hooks' clean calls) and must change translator state.
    /// nil for single-threaded hosts.
    public var lock: (@convention(c) () -> Void)?
    public var unlock: (@convention(c) () -> Void)?
    /// Whether an address is a function's first instruction (native exits that
    /// return into the cache apply only there); nil: never.
    public var isFunctionStart: (@convention(c) (UInt64) -> Int32)?
    /// Whether a fault of the instruction at an address continues at a fixup
    /// (the kernel's exception table): a branch that liveness must see, since the
    /// fixup may read registers the straight path overwrites first; nil: never.
    public var hasFaultFixup: (@convention(c) (UInt64) -> Int32)?
    /// Whether the code at an address belongs to a function that returns by the
    /// psABI (compiled C): after its `ret`, only the return registers and the
    /// callee-saved ones may be read, and no status flag; nil: never known.
    public var isCFunction: (@convention(c) (UInt64) -> Int32)?

    public init(
        allocateCode: @convention(c) (Int, UInt64) -> UnsafeMutableRawPointer?,
        readCode: @convention(c) (UnsafeMutableRawPointer, UInt64, Int) -> Int,
        lock: (@convention(c) () -> Void)? = nil,
        unlock: (@convention(c) () -> Void)? = nil,
        isFunctionStart: (@convention(c) (UInt64) -> Int32)? = nil,
        hasFaultFixup: (@convention(c) (UInt64) -> Int32)? = nil,
        isCFunction: (@convention(c) (UInt64) -> Int32)? = nil
    ) {
        self.isCFunction = isCFunction
        self.allocateCode = allocateCode
        self.readCode = readCode
        self.lock = lock
        self.unlock = unlock
        self.isFunctionStart = isFunctionStart
        self.hasFaultFixup = hasFaultFixup
    }
}

/// Why a translation failed. Reported, never guessed around.
public enum TranslateError: UInt8, Sendable {
    case none = 0
    case unreadableCode
    case undecodable
    case unsupportedInstruction
    case cacheFull
    case outOfReach
    case tooManyFragments

    public var message: StaticString {
        switch self {
        case .none: return "no error"
        case .unreadableCode: return "application code is not readable"
        case .undecodable: return "undecodable instruction"
        case .unsupportedInstruction: return "instruction not supported by the translator"
        case .cacheFull: return "code cache full"
        case .outOfReach: return "RIP-relative or branch target out of rel32 reach of the code cache"
        case .tooManyFragments: return "fragment table full"
        }
    }
}

/// One region of executable memory. Units are placed near the code they hold so
/// that RIP-relative operands keep a rel32 encoding.
public struct CodeUnit {
    public var base: UnsafeMutableRawPointer
    public var capacity: Int
    public var used: Int
    @inline(__always) var address: UInt64 { UInt64(UInt(bitPattern: base)) }
    @inline(__always) var free: Int { capacity - used }
}

/// A translated block. Its native instructions start at `nativeStart` and lie
/// in [nativeLow, nativeEnd): with direct jumps elided (`decodeBlock`), they need
/// not be contiguous, and the range may hold code the block does not run.
public struct Fragment {
    public var nativeStart: UInt64
    public var nativeEnd: UInt64
    public var nativeLow: UInt64
    public var cacheStart: UInt64
    public var cacheEnd: UInt64
    public var instructions: UInt32
    /// Where this fragment's boundary entries start in `TranslatorState.boundaries`.
    public var boundaryStart: UInt32
    public var boundaryCount: UInt32
}

/// A native instruction boundary inside a fragment: at cache offset `cacheOffset`
/// the application state is exactly the native state before the instruction at
/// native offset `nativeOffset` from the fragment's `nativeStart` (negative for
/// code an elided jump reached backwards). Each application instruction has one
/// entry before its instrumentation and one before its own copy.
public struct Boundary {
    public var cacheOffset: UInt16
    public var nativeOffset: Int16
}

extension Fragment {
    /// The native PC of boundary `b` of this fragment.
    public func nativePC(_ b: Boundary) -> UInt64 { nativeStart &+ UInt64(bitPattern: Int64(b.nativeOffset)) }
}

/// A direct exit of a fragment. While unlinked, the block's branch goes to `stub`,
/// which records this link stub's index and enters the dispatcher; linking rewrites
/// the branch's rel32 (at `branchField`) to the target fragment.
public struct LinkStub {
    public var target: UInt64
    public var branchField: UInt64
    public var stub: UInt64
    public var linked: Bool
    /// An intercepted system call at `target`: never linked; the host performs the
    /// call and says where the application continues.
    public var isSyscall: Bool
}

public struct TranslatorStats {
    public var blocks: UInt64 = 0
    public var nativeBytes: UInt64 = 0
    public var cacheBytes: UInt64 = 0
    public var links: UInt64 = 0
    public var dispatches: UInt64 = 0
    public var indirectMisses: UInt64 = 0
    public var units: UInt64 = 0
    /// Fragments rebuilt in place of an older translation (wrapping added later).
    public var retranslations: UInt64 = 0
    /// Wrapped calls whose post hook was lost: the frame table was full.
    public var wrapFramesDropped: UInt64 = 0
}

/// Sizes of a translator instance; the host hands over one arena of
/// `TranslatorLimits.arenaBytes` for the tables.
public struct TranslatorLimits {
    public var maxUnits: Int = 16
    public var unitBytes: Int = 4 << 20
    public var maxFragments: Int = 1 << 16
    public var maxStubs: Int = 1 << 17
    /// Boundary entries for all fragments (two per application instruction).
    public var maxBoundaries: Int = 1 << 21
    /// Power of two: slots of the fragment index and of the indirect-branch table
    /// (each keeps at most half of its slots full).
    public var lookupEntries: Int = 1 << 17
    public var maxBlockInstructions: Int = 96
    public var maxTools: Int = 8
    /// Probe the indirect-branch table inline at each indirect branch.
    public var inlineLookup: Bool = true
    /// Direct jumps a block may follow into their targets (`decodeBlock`); 0
    /// ends every block at its first unconditional transfer.
    public var maxElidedJumps: Int = 4
    /// Take the indirect-branch table from the host's code memory rather than the
    /// arena, so that the inline probe reaches it with an absolute disp32 (kernel:
    /// the code pool is in the top 2 GiB; the arena is not).
    public var lookupInCodeMemory: Bool = false
    /// Clear IF and TF while the dispatcher and clean calls run (kernel: they use
    /// per-CPU state that an interrupt handler on the same CPU must not see
    /// half-written; the flags come back with the application's).
    public var maskInterruptsInDispatcher: Bool = false
    /// Meta instructions all tools together may insert into one block.
    public var maxMetaPerBlock: Int = 512
    /// Wrapped functions, return sites of wrapped calls (a power of two), and
    /// wrapped calls in flight on all threads or CPUs together (a power of two).
    public var maxWraps: Int = 64
    /// How far below its caller's stack pointer `enter` starts the translated
    /// function's stack (user mode: past the red zone and then some; the kernel's
    /// 16 KiB stacks want less).
    public var enterStackGap: Int32 = 4096
    public var postSiteEntries: Int = 1 << 12
    public var wrapFrameEntries: Int = 1 << 12
    /// Save and restore the vector and x87 state (xsave) around the dispatcher. A
    /// user-mode dispatcher is ordinary compiled code that may use any vector
    /// register; the kernel's is compiled without SSE and leaves them alone.
    public var saveExtendedState: Bool = false
    /// Bytes of the xsave area (CPUID 0xD: AVX-512 and AMX state can make it over
    /// 10 KiB); the dispatcher stack must have this much more room, and its top
    /// must start zeroed (XRSTOR faults on a non-zero header beyond XSTATE_BV,
    /// which XSAVE never writes).
    public var extendedStateBytes: Int32 = 0
    public init() {}

    /// Padding entries after a lookup table, always empty, so a probe stops
    /// without wrapping.
    static let lookupTail = 64

    /// The fragment index's bytes.
    var lookupBytes: Int { LookupTable.bytes(entries: lookupEntries) }

    public var arenaBytes: Int {
        MemoryLayout<TranslatorState>.stride + 64
            + maxUnits * MemoryLayout<CodeUnit>.stride
            + maxFragments * MemoryLayout<Fragment>.stride
            + maxStubs * MemoryLayout<LinkStub>.stride
            + maxBoundaries * MemoryLayout<Boundary>.stride
            + lookupBytes + (lookupInCodeMemory ? 0 : LookupTable.indirectBytes)
            + maxBlockInstructions * MemoryLayout<Instruction>.stride
            + maxTools * MemoryLayout<ToolRegistration>.stride
            + maxMetaPerBlock * MemoryLayout<MetaEntry>.stride
            + maxWraps * MemoryLayout<WrapRegistration>.stride
            + postSiteEntries * 8
            + wrapFrameEntries * MemoryLayout<WrapFrame>.stride
            + blockBufferBytes + 4096 + 4 * 64
    }

    /// Native bytes a block may span (instructions are at most 15 bytes).
    var blockBufferBytes: Int { maxBlockInstructions * 16 + 16 }
}

public struct TranslatorState {
    public var host: TranslatorHostFunctions
    public var limits: TranslatorLimits
    /// Added to every ContextField offset in emitted `%gs:` operands.
    public var contextGSOffset: Int32
    public var units: UnsafeMutablePointer<CodeUnit>
    public var unitCount: Int
    public var fragments: UnsafeMutablePointer<Fragment>
    public var fragmentCount: Int
    public var stubs: UnsafeMutablePointer<LinkStub>
    public var stubCount: Int
    public var boundaries: UnsafeMutablePointer<Boundary>
    public var boundaryCount: Int
    /// Every fragment: (native PC, cache PC of the fragment's indirect entry)
    /// pairs; native PC 0 marks an empty slot. The dispatcher's index.
    public var lookup: LookupTable
    /// The same pairs for the targets indirect branches have reached: what the
    /// emitted probes search. Kept apart from the index so that it stays sparse
    /// (every block start in it would make a hot return address find its slot
    /// taken, and the probe fall back to the shared routine, one time in five).
    public var indirect: LookupTable
    /// Scratch for the block being translated.
    var blockInstructions: UnsafeMutablePointer<Instruction>
    var blockBytes: UnsafeMutableRawPointer
    /// Registered tools, in registration order, and their meta scratch.
    var tools: UnsafeMutablePointer<ToolRegistration>
    public var toolCount: Int = 0
    var toolStorageUsed: Int32 = 0
    var meta: UnsafeMutablePointer<MetaEntry>
    /// Function wrapping (Instrument/Wrap.swift).
    var wraps: UnsafeMutablePointer<WrapRegistration>
    public var wrapCount: Int = 0
    var postSites: UnsafeMutablePointer<UInt64>
    var postSiteCount: Int = 0
    var wrapFrames: UnsafeMutablePointer<WrapFrame>
    /// Addresses of the shared routines (Routines.swift).
    public var fcacheReturn: UInt64 = 0
    public var indirectLookup: UInt64 = 0
    public var enter: UInt64 = 0
    public var leave: UInt64 = 0
    public var cleanCall: UInt64 = 0
    /// The `call` instructions in fcache_return and the clean-call routine: where
    /// translated execution enters host code.
    public var fcacheReturnCall: UInt64 = 0
    public var cleanCallCall: UInt64 = 0
    /// `void takeover(void)`: called natively, returns translated (the rest of the
    /// caller runs from the cache).
    public var takeover: UInt64 = 0
    /// Loads the application state from the context (no vector state) and jumps to
    /// nextCachePC: how a new thread enters the cache.
    public var resume: UInt64 = 0
    public var stats = TranslatorStats()
    /// Runs of fragments appended in increasing cache address (a code unit fills
    /// in order; a run ends where the next fragment lies lower, in another
    /// unit): the index each run starts at. `fragment(containing:)` searches
    /// within runs; with more runs than this holds it scans.
    var fragmentRuns: InlineArray<64, Int32> = InlineArray(repeating: 0)
    var fragmentRunCount = 0
    var fragmentsInRuns = true
    public var lastError: TranslateError = .none
    public var lastErrorPC: UInt64 = 0
    /// Native address of the block being emitted (for boundary entries).
    var blockStart: UInt64 = 0
    /// The native range the decoded block lies in (`decodeBlock`).
    var blockLow: UInt64 = 0
    var blockHigh: UInt64 = 0
    /// System call numbers the host wants to see (user mode: clone, exit...).
    public var interceptedSyscalls: InlineArray<8, UInt32> = InlineArray(repeating: 0)
    public var interceptedSyscallCount: Int = 0
    /// Native addresses whose code runs natively (`addNativeExit`).
    var nativeExitStart: InlineArray<8, UInt64> = InlineArray(repeating: 0)
    var nativeExitEnd: InlineArray<8, UInt64> = InlineArray(repeating: 0)
    var nativeExitCount: Int = 0
    /// Per native-exit range: 0, or the native routine its calls return through
    /// (see `addNativeExit(_:end:returnThrough:)`).
    var nativeExitReturn: InlineArray<8, UInt64> = InlineArray(repeating: 0)
    /// Retpoline thunks by register number (0: none) and the return thunk
    /// (`setBranchThunks`).
    var indirectThunks: InlineArray<16, UInt64> = InlineArray(repeating: 0)
    var returnThunk: UInt64 = 0
    /// An `iretq` instruction: resuming here with the application state restored
    /// returns through the frame at the application's rsp.
    public var iretRoutine: UInt64 = 0
    /// Where the routines that mask interrupts hold the application's flags
    /// between `pushf` and the `popf` that masks (`savedFlags(at:)`): per routine,
    /// the addresses after the pushf, after the pop into the context, and after
    /// the popf.
    var flagsSaveWindows: InlineArray<6, UInt64> = InlineArray(repeating: 0)
    var flagsSaveWindowCount = 0
}

/// Where the application's flags are while a routine saves them.
public enum SavedFlags: UInt8 {
    /// Pushed, at the stack pointer.
    case stackTop
    /// In the context's appFlags.
    case context
}

/// A handle on a TranslatorState in host memory.
public struct Translator {
    public let state: UnsafeMutablePointer<TranslatorState>

    public init(state: UnsafeMutablePointer<TranslatorState>) { self.state = state }

    /// Lays a translator out in `arena` (at least `limits.arenaBytes`, zeroed) and
    /// emits its shared routines. nil when memory is short.
    public static func create(
        in arena: inout Arena, host: TranslatorHostFunctions, limits: TranslatorLimits, contextGSOffset: Int32
    ) -> Translator? {
        guard let statePointer = arena.allocate(TranslatorState.self),
              let units = arena.allocate(bytes: limits.maxUnits * MemoryLayout<CodeUnit>.stride, alignment: 16),
              let fragments = arena.allocate(bytes: limits.maxFragments * MemoryLayout<Fragment>.stride, alignment: 16),
              let stubs = arena.allocate(bytes: limits.maxStubs * MemoryLayout<LinkStub>.stride, alignment: 16),
              let boundaries = arena.allocate(bytes: limits.maxBoundaries * MemoryLayout<Boundary>.stride, alignment: 16),
              let indexMemory = arena.allocate(bytes: limits.lookupBytes, alignment: 64),
              let indirectMemory = limits.lookupInCodeMemory ? host.allocateCode(LookupTable.indirectBytes, 0)
                                                             : arena.allocate(bytes: LookupTable.indirectBytes, alignment: 64),
              let instructions = arena.allocate(
                  bytes: limits.maxBlockInstructions * MemoryLayout<Instruction>.stride,
                  alignment: MemoryLayout<Instruction>.alignment),
              let blockBytes = arena.allocate(bytes: limits.blockBufferBytes, alignment: 16),
              let tools = arena.allocate(bytes: limits.maxTools * MemoryLayout<ToolRegistration>.stride, alignment: 16),
              let meta = arena.allocate(bytes: limits.maxMetaPerBlock * MemoryLayout<MetaEntry>.stride, alignment: 16),
              let wraps = arena.allocate(bytes: limits.maxWraps * MemoryLayout<WrapRegistration>.stride, alignment: 16),
              let postSites = arena.allocate(bytes: limits.postSiteEntries * 8, alignment: 64),
              let wrapFrames = arena.allocate(bytes: limits.wrapFrameEntries * MemoryLayout<WrapFrame>.stride, alignment: 64)
        else { return nil }
        postSites.initializeMemory(as: UInt8.self, repeating: 0, count: limits.postSiteEntries * 8)
        wrapFrames.initializeMemory(as: UInt8.self, repeating: 0,
                                    count: limits.wrapFrameEntries * MemoryLayout<WrapFrame>.stride)
        indexMemory.initializeMemory(as: UInt8.self, repeating: 0, count: limits.lookupBytes)
        indirectMemory.initializeMemory(as: UInt8.self, repeating: 0, count: LookupTable.indirectBytes)
        statePointer.initialize(to: TranslatorState(
            host: host, limits: limits, contextGSOffset: contextGSOffset,
            units: units.bindMemory(to: CodeUnit.self, capacity: limits.maxUnits), unitCount: 0,
            fragments: fragments.bindMemory(to: Fragment.self, capacity: limits.maxFragments), fragmentCount: 0,
            stubs: stubs.bindMemory(to: LinkStub.self, capacity: limits.maxStubs), stubCount: 0,
            boundaries: boundaries.bindMemory(to: Boundary.self, capacity: limits.maxBoundaries), boundaryCount: 0,
            lookup: LookupTable(memory: indexMemory, entries: limits.lookupEntries),
            indirect: LookupTable(memory: indirectMemory, entries: LookupTable.indirectEntries),
            blockInstructions: instructions.bindMemory(to: Instruction.self, capacity: limits.maxBlockInstructions),
            blockBytes: blockBytes,
            tools: tools.bindMemory(to: ToolRegistration.self, capacity: limits.maxTools),
            meta: meta.bindMemory(to: MetaEntry.self, capacity: limits.maxMetaPerBlock),
            wraps: wraps.bindMemory(to: WrapRegistration.self, capacity: limits.maxWraps),
            postSites: postSites.bindMemory(to: UInt64.self, capacity: limits.postSiteEntries),
            wrapFrames: wrapFrames.bindMemory(to: WrapFrame.self, capacity: limits.wrapFrameEntries)))
        let translator = Translator(state: statePointer)
        guard translator.emitRoutines() else { return nil }
        return translator
    }

    /// Fills a context's fields that point into this translator.
    public func initializeContext(_ context: UnsafeMutableRawPointer, dispatcherStackTop: UInt64,
                                  dispatch: UInt64, sentinel: UInt64) {
        context.initializeMemory(as: UInt8.self, repeating: 0, count: ContextField.size)
        func set(_ field: Int32, _ value: UInt64) { context.storeBytes(of: value, toByteOffset: Int(field), as: UInt64.self) }
        set(ContextField.selfPointer, UInt64(UInt(bitPattern: context)))
        set(ContextField.dispatcherStack, dispatcherStackTop & ~15)
        set(ContextField.dispatchFunction, dispatch)
        set(ContextField.fcacheReturn, state.pointee.fcacheReturn)
        set(ContextField.indirectLookup, state.pointee.indirectLookup)
        set(ContextField.lookupTable, UInt64(UInt(bitPattern: state.pointee.indirect.tags)))
        set(ContextField.translator, UInt64(UInt(bitPattern: state)))
        set(ContextField.sentinel, sentinel)
        set(ContextField.cleanCallRoutine, state.pointee.cleanCall)
    }

    /// Adds a tool. Tools are registered before anything is translated (blocks
    /// translated earlier would lack their instrumentation); returns false then,
    /// or when the tool table or the per-context tool storage is full.
    public func register(_ tool: ToolRegistration, storageBytes: Int32) -> Bool {
        guard state.pointee.fragmentCount == 0, state.pointee.toolCount < state.pointee.limits.maxTools else {
            return false
        }
        let aligned = (storageBytes + 7) & ~7
        guard state.pointee.toolStorageUsed + aligned <= ContextField.toolStorageBytes else { return false }
        var registered = tool
        registered.storageOffset = ContextField.toolStorage + state.pointee.toolStorageUsed
        state.pointee.toolStorageUsed += aligned
        (state.pointee.tools + state.pointee.toolCount).initialize(to: registered)
        state.pointee.toolCount += 1
        return true
    }

    /// Routes system call `number` to the host: blocks ending in `syscall` check
    /// rax and leave through a syscall exit when it matches. Before translation.
    public func interceptSyscall(_ number: UInt32) -> Bool {
        guard state.pointee.fragmentCount == 0, state.pointee.interceptedSyscallCount < 8 else { return false }
        state.pointee.interceptedSyscalls[state.pointee.interceptedSyscallCount] = number
        state.pointee.interceptedSyscallCount += 1
        return true
    }

    /// The fragment whose code contains cache address `pc`, or -1. Newest first:
    /// recently translated code is the likeliest place to be. (Interrupts and
    /// faults in translated code ask this: a binary search per run of sorted
    /// fragments, not a scan of them all.)
    public func fragment(containing pc: UInt64) -> Int {
        let fragments = state.pointee.fragments
        guard state.pointee.fragmentsInRuns else {
            var i = state.pointee.fragmentCount - 1
            while i >= 0 {
                if pc >= fragments[i].cacheStart && pc < fragments[i].cacheEnd { return i }
                i -= 1
            }
            return -1
        }
        var end = state.pointee.fragmentCount
        var r = state.pointee.fragmentRunCount - 1
        while r >= 0 {
            let first = Int(state.pointee.fragmentRuns[r])
            defer { end = first; r -= 1 }
            guard first < end, fragments[first].cacheStart <= pc else { continue }
            // Largest i in the run with cacheStart <= pc.
            var lo = first + 1
            var hi = end
            while lo < hi {
                let mid = (lo + hi) / 2
                if fragments[mid].cacheStart <= pc { lo = mid + 1 } else { hi = mid }
            }
            if pc < fragments[lo - 1].cacheEnd { return lo - 1 }
        }
        return -1
    }

    /// Appends a fragment (translation time; the caller made sure of room).
    func appendFragment(_ f: Fragment) {
        let index = state.pointee.fragmentCount
        if index == 0 || f.cacheStart < state.pointee.fragments[index - 1].cacheStart {
            let runs = state.pointee.fragmentRunCount
            if runs < state.pointee.fragmentRuns.count {
                state.pointee.fragmentRuns[runs] = Int32(index)
                state.pointee.fragmentRunCount = runs + 1
            } else {
                state.pointee.fragmentsInRuns = false
            }
        }
        state.pointee.fragments[index] = f
        state.pointee.fragmentCount = index + 1
    }

    /// The native PC whose exact state the cache address `pc` holds, or nil when
    /// `pc` is not an instruction boundary (inside instrumentation, a mangled
    /// transfer, a stub, a shared routine, or outside the cache).
    public func nativeBoundary(at pc: UInt64) -> UInt64? {
        let index = fragment(containing: pc)
        guard index >= 0 else { return nil }
        let f = state.pointee.fragments[index]
        let offset = pc - f.cacheStart
        var i = Int(f.boundaryStart)
        let end = i + Int(f.boundaryCount)
        while i < end {
            let b = state.pointee.boundaries[i]
            if UInt64(b.cacheOffset) == offset { return f.nativePC(b) }
            i += 1
        }
        return nil
    }

    /// Whether `pc` lies in one of the code units (cache or shared routines).
    public func isInCache(_ pc: UInt64) -> Bool {
        for i in 0..<state.pointee.unitCount {
            let u = state.pointee.units[i]
            if pc >= u.address && pc < u.address + UInt64(u.capacity) { return true }
        }
        return false
    }

    /// The `%gs:`-relative offset of a registered tool's storage, or -1.
    /// The data a tool registered with, found by its name (slow paths reached by
    /// a clean call have only the context): nil when no such tool runs.
    public func toolData(named name: StaticString) -> UnsafeMutableRawPointer? {
        for i in 0..<state.pointee.toolCount where state.pointee.tools[i].name.utf8Start == name.utf8Start {
            return state.pointee.tools[i].data
        }
        return nil
    }

    public func storageOffset(ofTool index: Int) -> Int32 {
        index < state.pointee.toolCount ? state.pointee.tools[index].storageOffset : -1
    }

    // MARK: lookup tables

    /// The cache PC of the fragment for `pc` (its body, past the indirect entry
    /// the table holds), or 0.
    public func lookup(_ pc: UInt64) -> UInt64 {
        let entry = state.pointee.lookup.find(pc)
        return entry == 0 ? 0 : entry + UInt64(Translator.indirectEntryBytes)
    }

    /// Indexes a new fragment; a retranslation also moves the indirect-branch
    /// entry, if the old fragment had one.
    func insertLookup(_ pc: UInt64, _ cachePC: UInt64) -> Bool {
        guard state.pointee.lookup.insert(pc, cachePC) else { return false }
        if state.pointee.indirect.find(pc) != 0 { _ = state.pointee.indirect.insert(pc, cachePC) }
        return true
    }

    // MARK: code units
    // MARK: code units

    /// A unit with `bytes` free within rel32 reach of `pc` (a new one if needed).
    func unit(near pc: UInt64, bytes: Int) -> Int? {
        let reach: UInt64 = 1 << 30
        // Newest first: code goes out in increasing address within a pool.
        var i = state.pointee.unitCount
        while i > 0 {
            i -= 1
            let u = state.pointee.units[i]
            let distance = u.address > pc ? u.address - pc : pc - u.address
            if distance < reach && u.free >= bytes { return i }
        }
        guard state.pointee.unitCount < state.pointee.limits.maxUnits else { return nil }
        let size = state.pointee.limits.unitBytes
        guard let base = state.pointee.host.allocateCode(size, pc) else { return nil }
        let index = state.pointee.unitCount
        state.pointee.units[index] = CodeUnit(base: base, capacity: size, used: 0)
        state.pointee.unitCount += 1
        state.pointee.stats.units += 1
        return index
    }

    /// An assembler over the free part of unit `i`.
    func assembler(unit i: Int) -> Assembler {
        let u = state.pointee.units[i]
        return Assembler(base: u.base + u.used, capacity: u.free, origin: u.address + UInt64(u.used))
    }

    func commit(unit i: Int, _ a: Assembler) { state.pointee.units[i].used += a.count }

    @inline(__always) func gs(_ field: Int32) -> AsmMemory { AsmMemory.gs(state.pointee.contextGSOffset + field) }

    func fail(_ error: TranslateError, at pc: UInt64) -> UInt64 {
        state.pointee.lastError = error
        state.pointee.lastErrorPC = pc
        return 0
    }
}

/// An open-addressing hash table from native PC to cache PC (the slot is the
/// PC's low bits, linear probing), in host memory: the tags, then the cache PCs,
/// each an array of 8-byte words so that one scaled index reaches both. A tag
/// holds ~pc, so that the emitted probe compares with one `lea` (and 0, no PC,
/// is an empty slot). The emitted indirect-branch probes read the table
/// concurrently: an entry is written cache PC first, tag second, and replaced
/// with one aligned store.
public struct LookupTable {
    public let tags: UnsafeMutablePointer<UInt64>
    public let targets: UnsafeMutablePointer<UInt64>
    public let entries: Int
    public var used = 0

    /// The indirect-branch table's size: its probe takes the slot from the
    /// target's low 16 bits with one `movzx`.
    public static let indirectEntries = 1 << 16
    static var indirectBytes: Int { bytes(entries: indirectEntries) }
    /// From a tag to its cache PC, in the indirect-branch table.
    static var indirectTargetsOffset: Int32 { Int32((indirectEntries + TranslatorLimits.lookupTail) * 8) }

    static func bytes(entries: Int) -> Int { 2 * (entries + TranslatorLimits.lookupTail) * 8 }

    /// `memory`: `bytes(entries:)`, zeroed; `entries` a power of two.
    init(memory: UnsafeMutableRawPointer, entries: Int) {
        let slots = entries + TranslatorLimits.lookupTail
        tags = memory.bindMemory(to: UInt64.self, capacity: 2 * slots)
        targets = tags + slots
        self.entries = entries
    }

    @inline(__always) func home(_ pc: UInt64) -> Int { Int(pc & UInt64(entries - 1)) }

    /// The cache PC stored for `pc`, or 0.
    public func find(_ pc: UInt64) -> UInt64 {
        var i = home(pc)
        let end = entries + TranslatorLimits.lookupTail
        while i < end {
            let tag = tags[i]
            if tag == ~pc { return targets[i] }
            if tag == 0 { return 0 }
            i += 1
        }
        return 0
    }

    /// Maps `pc` to `cachePC`, replacing an entry for `pc` in place. False when
    /// the table is half full.
    mutating func insert(_ pc: UInt64, _ cachePC: UInt64) -> Bool {
        var i = home(pc)
        // The last lookupTail slots stay empty so that every probe stops.
        let end = entries + TranslatorLimits.lookupTail - 1
        while i < end {
            if tags[i] == ~pc {
                targets[i] = cachePC
                return true
            }
            if tags[i] == 0 {
                if used * 2 >= entries { return false }
                // Target before tag: a concurrent probe never sees a tag without it.
                targets[i] = cachePC
                tags[i] = ~pc
                used += 1
                return true
            }
            i += 1
        }
        return false
    }

    /// Every entry removed (tags only: a concurrent probe misses).
    mutating func clear() {
        for i in 0..<(entries + TranslatorLimits.lookupTail) { tags[i] = 0 }
        used = 0
    }
}
