// SPDX-License-Identifier: GPL-2.0-only
//
// Function wrapping by address (DESIGN.md principle 8): a tool's pre hook runs when
// a wrapped function is entered, with its arguments readable and writable (and may
// skip the function, returning a value of its choosing); its post hook runs when
// that same call returns, with the return value. Works however the function is
// reached: direct or indirect call, tail jump, recursion, several threads or CPUs.
//
// How: the block at a wrapped function's entry starts with a clean call to
// `wrapEntry`, which runs the pre hook and, when there is a post hook, records the
// call as a frame keyed by its entry stack pointer (unique among live frames of
// all stacks) and marks its return address a post site. A block starting at a post
// site begins with a clean call to `wrapReturn`, which matches the frame by stack
// pointer and return address and runs the post hook. The application still sees
// its native return address: nothing on its stack changes. A return site marked
// after it was translated is translated again (`Translator.retranslate`).
//
// A call left without returning (longjmp, an exception unwinding past it) leaves a
// stale frame; it is overwritten when a call reuses its stack slot and never
// matches another return, because the key includes the return address.

/// What a hook sees of one call of a wrapped function.
public struct WrapCall {
    /// The translator context: the application registers as they are at the call.
    public let context: UnsafeMutableRawPointer
    /// The wrapped function's native address.
    public let function: UInt64
    /// The native return address of this call.
    public let returnAddress: UInt64
    /// The stack pointer at the function's entry (it points at the return address).
    public let entryStackPointer: UInt64
    /// Free for the tool: set in the pre hook, read back in the post hook.
    public var userData: UInt64
    var skipValue: UInt64 = 0
    var skipRequested = false
    var redirectTarget: UInt64 = 0
    var postHookWanted = true

    init(context: UnsafeMutableRawPointer, function: UInt64, returnAddress: UInt64, entryStackPointer: UInt64,
         userData: UInt64) {
        self.context = context
        self.function = function
        self.returnAddress = returnAddress
        self.entryStackPointer = entryStackPointer
        self.userData = userData
    }

    /// Argument `index` under the SysV AMD64 ABI (integer class): rdi, rsi, rdx,
    /// rcx, r8, r9, then the stack. Meaningful in the pre hook.
    public func argument(_ index: Int) -> UInt64 {
        if let r = WrapCall.argumentRegister(index) { return register(r) }
        let slot = entryStackPointer &+ UInt64(8 * (index - 5))
        return UnsafePointer<UInt64>(bitPattern: UInt(slot))!.pointee
    }

    /// Changes a register argument (0 to 5) before the function runs.
    public func setArgument(_ index: Int, _ value: UInt64) {
        guard let r = WrapCall.argumentRegister(index) else { return }
        setRegister(r, value)
    }

    /// rax: the return value in the post hook.
    public var returnValue: UInt64 {
        get { register(.rax) }
        nonmutating set { setRegister(.rax, newValue) }
    }

    /// Pre hook only: do not run the function; its caller continues at the return
    /// address with `value` in rax, as if the function had returned it.
    public mutating func skip(returning value: UInt64) {
        skipRequested = true
        skipValue = value
    }

    /// Pre hook only: this call's post hook has nothing to do (nothing is
    /// recorded for its return, which costs a clean call less).
    public mutating func skipPostHook() { postHookWanted = false }

    /// Pre hook only: run the function at `address` in place of the wrapped one,
    /// with the arguments as they are now (change them first with setArgument);
    /// the post hook still runs when it returns to this call's return address.
    public mutating func redirect(to address: UInt64) { redirectTarget = address }

    public func register(_ r: GPR) -> UInt64 {
        context.load(fromByteOffset: Int(ContextField.appRegister(r)), as: UInt64.self)
    }

    public func setRegister(_ r: GPR, _ value: UInt64) {
        context.storeBytes(of: value, toByteOffset: Int(ContextField.appRegister(r)), as: UInt64.self)
    }

    @inline(__always) public static func from(_ raw: UnsafeMutableRawPointer) -> UnsafeMutablePointer<WrapCall> {
        raw.assumingMemoryBound(to: WrapCall.self)
    }

    static func argumentRegister(_ index: Int) -> GPR? {
        switch index {
        case 0: return .rdi
        case 1: return .rsi
        case 2: return .rdx
        case 3: return .rcx
        case 4: return .r8
        case 5: return .r9
        default: return nil
        }
    }
}

/// A pre or post hook: (the call, the tool data given to `wrap`). The call is
/// raw because C function pointers cannot name Swift structs;
/// `WrapCall.from(_:)` types it.
public typealias WrapHook = @convention(c) (UnsafeMutableRawPointer, UnsafeMutableRawPointer?) -> Void

struct WrapRegistration {
    var address: UInt64
    var pre: WrapHook?
    var post: WrapHook?
    var data: UnsafeMutableRawPointer?
}

/// A wrapped call in flight. `entryStackPointer` 0 marks a free slot.
struct WrapFrame {
    var entryStackPointer: UInt64 = 0
    var returnAddress: UInt64 = 0
    var userData: UInt64 = 0
    var wrap: Int = 0
}

extension Translator {
    /// Wraps the function at `address`. Several tools may wrap the same function;
    /// hooks run in wrapping order. If the function was already translated, its
    /// translation is replaced. The host holds its translator lock, as for any
    /// translator call. False when the wrap table is full or retranslation failed.
    public func wrap(address: UInt64, pre: WrapHook?, post: WrapHook?, data: UnsafeMutableRawPointer?) -> Bool {
        guard state.pointee.wrapCount < state.pointee.limits.maxWraps else { return false }
        state.pointee.wraps[state.pointee.wrapCount] = WrapRegistration(address: address, pre: pre, post: post, data: data)
        state.pointee.wrapCount += 1
        // Blocks that elided a jump into the function hold a copy of its entry
        // without the wrap call: they are built again (now stopping at the jump).
        let existing = state.pointee.fragmentCount
        for i in 0..<existing {
            let f = state.pointee.fragments[i]
            if f.nativeStart != address && f.nativeLow <= address && address < f.nativeEnd
                && lookup(f.nativeStart) == f.cacheStart + UInt64(Translator.indirectEntryBytes) {
                guard retranslate(f.nativeStart) else { return false }
            }
        }
        return retranslate(address)
    }

    /// Whether any wrap is registered at `address`.
    func isWrapped(_ address: UInt64) -> Bool {
        for i in 0..<state.pointee.wrapCount where state.pointee.wraps[i].address == address { return true }
        return false
    }

    // MARK: post sites (an insert-only open-addressing set)

    func isPostSite(_ pc: UInt64) -> Bool {
        let mask = state.pointee.limits.postSiteEntries - 1
        var i = Int(truncatingIfNeeded: pc) & mask
        for _ in 0...mask {
            let v = state.pointee.postSites[i]
            if v == pc { return true }
            if v == 0 { return false }
            i = (i + 1) & mask
        }
        return false
    }

    /// Marks `pc` a post site; true when it is one now (it was, or it was added
    /// and any older translation of it replaced).
    func markPostSite(_ pc: UInt64) -> Bool {
        if isPostSite(pc) { return true }
        let entries = state.pointee.limits.postSiteEntries
        guard state.pointee.postSiteCount * 4 < entries * 3 else { return false }
        var i = Int(truncatingIfNeeded: pc) & (entries - 1)
        while state.pointee.postSites[i] != 0 { i = (i + 1) & (entries - 1) }
        state.pointee.postSites[i] = pc
        state.pointee.postSiteCount += 1
        return retranslate(pc)
    }

    // MARK: frames: 4-way buckets keyed by the entry stack pointer

    static let frameWays = 4  // wrapReturn's buffer holds a bucket

    func frameBucket(_ sp: UInt64) -> Int {
        let buckets = state.pointee.limits.wrapFrameEntries / Translator.frameWays
        // Kernel stacks are alike below their 16 KiB alignment: the stack's own
        // address bits are mixed in, so that tasks at the same depth spread out.
        let key = (sp >> 3) ^ ((sp >> 14) &* 0x9E37_79B9)
        return (Int(truncatingIfNeeded: key) & (buckets - 1)) * Translator.frameWays
    }

    func pushFrame(_ frame: WrapFrame) {
        let bucket = state.pointee.wrapFrames + frameBucket(frame.entryStackPointer)
        var free: UnsafeMutablePointer<WrapFrame>? = nil
        for w in 0..<Translator.frameWays {
            let slot = bucket + w
            // Same key: that frame is dead (a live call now sits at its stack slot).
            if slot.pointee.entryStackPointer == frame.entryStackPointer && slot.pointee.wrap == frame.wrap {
                slot.pointee = frame
                return
            }
            if free == nil && slot.pointee.entryStackPointer == 0 { free = slot }
        }
        guard let free else {
            state.pointee.stats.wrapFramesDropped += 1
            return
        }
        free.pointee = frame
    }

    /// Removes the frames of the call returning to `returnAddress` with the stack
    /// pointer at `entryStackPointer` + 8 (one per wrap with a post hook) into
    /// `frames` (room for `frameWays`); returns how many.
    func popFrames(entryStackPointer sp: UInt64, returnAddress: UInt64,
                   into frames: UnsafeMutablePointer<WrapFrame>) -> Int {
        let bucket = state.pointee.wrapFrames + frameBucket(sp)
        var count = 0
        for w in 0..<Translator.frameWays
        where bucket[w].entryStackPointer == sp && bucket[w].returnAddress == returnAddress {
            (frames + count).initialize(to: bucket[w])
            bucket[w].entryStackPointer = 0
            count += 1
        }
        return count
    }

    /// Inserts the wrap clean calls a block at `pc` needs, ahead of every tool's
    /// instrumentation: the post check first (a return site may also be an entry).
    func insertWrapCalls(_ block: inout InstrumentedBlock) {
        if state.pointee.postSiteCount > 0 && isPostSite(block.startPC) {
            block.insertAtStart(.cleanCall(function: Translator.address(of: Translator.wrapReturn), argument: .applicationPC))
        }
        for i in 0..<state.pointee.wrapCount where state.pointee.wraps[i].address == block.startPC {
            block.insertAtStart(.cleanCall(function: Translator.address(of: Translator.wrapEntry),
                                           argument: .constant(UInt64(i))))
        }
    }

    static func address(of function: @convention(c) (UnsafeMutableRawPointer?, UInt64) -> Void) -> UInt64 {
        UInt64(UInt(bitPattern: unsafeBitCast(function, to: UnsafeRawPointer.self)))
    }

    @inline(__always) func withLock<R>(_ body: () -> R) -> R {
        state.pointee.host.lock?()
        let r = body()
        state.pointee.host.unlock?()
        return r
    }

    /// Clean call at a wrapped function's entry; `argument` is the wrap's index.
    static let wrapEntry: @convention(c) (UnsafeMutableRawPointer?, UInt64) -> Void = { context, argument in
        let context = context!
        let t = Translator(context: context)
        let wrap = t.state.pointee.wraps[Int(argument)]
        let sp = context.load(fromByteOffset: Int(ContextField.appRegister(.rsp)), as: UInt64.self)
        let returnAddress = UnsafePointer<UInt64>(bitPattern: UInt(sp))!.pointee
        var call = WrapCall(context: context, function: wrap.address, returnAddress: returnAddress,
                            entryStackPointer: sp, userData: 0)
        withUnsafeMutablePointer(to: &call) { wrap.pre?(UnsafeMutableRawPointer($0), wrap.data) }
        if call.skipRequested {
            // Continue at the return address's translation, as `ret` would.
            let cachePC = t.withLock { t.translate(returnAddress) }
            if cachePC != 0 {
                call.setRegister(.rax, call.skipValue)
                call.setRegister(.rsp, sp &+ 8)
                context.storeBytes(of: cachePC, toByteOffset: Int(ContextField.cleanCallReturn), as: UInt64.self)
                return
            }
        }
        if call.redirectTarget != 0 {
            let cachePC = t.withLock { t.translate(call.redirectTarget) }
            guard cachePC != 0 else {
                // The arguments were changed for the replacement: the wrapped
                // function must not see them. The call fails, returning 0.
                let back = t.withLock { t.translate(returnAddress) }
                call.setRegister(.rax, 0)
                call.setRegister(.rsp, sp &+ 8)
                context.storeBytes(of: back, toByteOffset: Int(ContextField.cleanCallReturn), as: UInt64.self)
                return
            }
            context.storeBytes(of: cachePC, toByteOffset: Int(ContextField.cleanCallReturn), as: UInt64.self)
        }
        guard wrap.post != nil, call.postHookWanted else { return }
        t.withLock {
            if t.markPostSite(returnAddress) {
                t.pushFrame(WrapFrame(entryStackPointer: sp, returnAddress: returnAddress, userData: call.userData,
                                      wrap: Int(argument)))
            } else {
                t.state.pointee.stats.wrapFramesDropped += 1
            }
        }
    }

    /// Clean call at a post site; `argument` is the site's native PC.
    static let wrapReturn: @convention(c) (UnsafeMutableRawPointer?, UInt64) -> Void = { context, pc in
        let context = context!
        let t = Translator(context: context)
        let sp = context.load(fromByteOffset: Int(ContextField.appRegister(.rsp)), as: UInt64.self)
        let entrySP = sp &- 8
        // This call's frames, one per wrap with a post hook, all in one bucket:
        // taken out under one lock, their hooks run after it.
        withUnsafeTemporaryAllocation(of: WrapFrame.self, capacity: Translator.frameWays) { buffer in
            let frames = buffer.baseAddress!
            var left = 0
            t.withLock { left = t.popFrames(entryStackPointer: entrySP, returnAddress: pc, into: frames) }
            // Innermost hooks last in, first out: the wrap registered last
            // returns first. A bucket holds at most four frames: the highest wrap
            // index left each time, no walk over every registered wrap.
            while left > 0 {
                var pick = 0
                for k in 1..<left where frames[k].wrap > frames[pick].wrap { pick = k }
                let frame = frames[pick]
                left -= 1
                frames[pick] = frames[left]
                let wrap = t.state.pointee.wraps[frame.wrap]
                var call = WrapCall(context: context, function: wrap.address, returnAddress: pc,
                                    entryStackPointer: entrySP, userData: frame.userData)
                withUnsafeMutablePointer(to: &call) { wrap.post!(UnsafeMutableRawPointer($0), wrap.data) }
            }
        }
    }
}
