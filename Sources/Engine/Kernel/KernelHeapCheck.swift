// SPDX-License-Identifier: GPL-2.0-only
//
// heapcheck in the kernel: the allocator entry points it wraps, and the shim
// services it runs on (kmod/heapcheck.c).
//
// kmalloc requests are served from heapcheck's own caches (kmalloc's geometry,
// one class up, so every object has a redzone): the sized entry points are
// pointed at them (kmalloc_trace's cache argument) or redirected to
// kmem_cache_alloc{,_node}. Objects allocated this way stay valid after detach:
// the pointer is the slot's start, so a later native kfree is an ordinary free.
// Page-backed kmallocs get `redzone` more bytes; named caches' objects are tracked
// as they are. Frees of tracked objects go to the quarantine instead of the
// allocator; double and invalid frees are reported and never reach it.

#if hasFeature(Embedded)

#if canImport(Protocol)
import Protocol
#endif

@_extern(c, "kdbt_hc_capture_stack")
func kdbt_hc_capture_stack(_ pc: UInt64, _ sp: UInt64, _ bp: UInt64, _ frames: UnsafeMutablePointer<UInt64>, _ capacity: Int32,
                           _ reads: UnsafeMutablePointer<UInt64>?, _ count: UnsafeMutablePointer<Int32>?) -> Int32
@_extern(c, "kdbt_hc_current_task_slot")
func kdbt_hc_current_task_slot() -> Int64
@_extern(c, "kdbt_hc_task_struct_bytes")
func kdbt_hc_task_struct_bytes() -> Int64
@_extern(c, "kdbt_hc_current_task")
func kdbt_hc_current_task(_ pid: UnsafeMutablePointer<UInt32>, _ comm: UnsafeMutablePointer<UInt8>) -> UInt32
@_extern(c, "kdbt_hc_release")
func kdbt_hc_release(_ cache: UInt64, _ pointer: UInt64)
@_extern(c, "kdbt_hc_cache_object_size")
func kdbt_hc_cache_object_size(_ cache: UInt64) -> UInt64
@_extern(c, "kdbt_hc_describe_cache")
func kdbt_hc_describe_cache(_ cache: UInt64, _ name: UnsafeMutablePointer<UInt8>, _ objectSize: UnsafeMutablePointer<UInt64>) -> Int32
@_extern(c, "kdbt_hc_lock")
func kdbt_hc_lock()
@_extern(c, "kdbt_hc_unlock")
func kdbt_hc_unlock()
@_extern(c, "kdbt_hc_classes")
func kdbt_hc_classes(_ sizes: UnsafeMutablePointer<UInt64>, _ caches: UnsafeMutablePointer<UInt64>, _ capacity: Int32) -> Int32
@_extern(c, "kdbt_hc_direct_map_base")
func kdbt_hc_direct_map_base() -> UInt64
@_extern(c, "kdbt_hc_direct_map_pages")
func kdbt_hc_direct_map_pages() -> UInt64
@_extern(c, "kdbt_hc_set_active")
func kdbt_hc_set_active(_ active: Int32)
@_extern(c, "kdbt_hc_page_bytes")
func kdbt_hc_page_bytes(_ size: UInt64) -> UInt64
@_extern(c, "kdbt_host_module_data_alloc")
func kdbt_host_module_data_alloc(_ bytes: Int) -> UnsafeMutableRawPointer?
@_extern(c, "kdbt_host_module_data_free")
func kdbt_host_module_data_free(_ p: UnsafeMutableRawPointer)
@_extern(c, "kdbt_hc_flat_shadow_allowed")
func kdbt_hc_flat_shadow_allowed() -> Int32
@_extern(c, "kdbt_hc_report_shadow")
func kdbt_hc_report_shadow(_ flatBytes: UInt64)

/// What the wrap hooks need: the tool state and the functions they redirect to.
struct KernelHeapCheck {
    var state: UnsafeMutablePointer<HeapCheckState>
    var kmemCacheAlloc: UInt64 = 0
    var kmemCacheAllocNode: UInt64 = 0
    /// The arena holding all of it (freed at detach).
    var arena: UnsafeMutableRawPointer

    /// The largest flat shadow taken (an eighth of a 4 GiB direct map); a bigger
    /// direct map, or memory too short for it, keeps shadow in chunks.
    static let maxFlatShadowBytes = 512 << 20
    static let defaultRedzone: UInt64 = 16
    static let defaultQuarantine: UInt64 = 4 << 20
    /// GFP zone bits (___GFP_DMA, ___GFP_DMA32): those requests keep their zone.
    static let zoneFlags: UInt64 = 0x01 | 0x04
    /// userData: a pending tracked allocation (size in the low 40 bits).
    static let fromClassTag: UInt64 = 1 << 62
    static let fromPagesTag: UInt64 = 1 << 61
    static let sizeMask: UInt64 = (1 << 40) - 1

    /// Creates the tool state and registers the tool (before anything is
    /// translated). nil when memory is short.
    static func create(_ t: Translator, redzone: UInt64, quarantine: UInt64, findings: UnsafeMutablePointer<FindingsRing>,
                       allocate: (Int) -> UnsafeMutableRawPointer?,
                       free: (UnsafeMutableRawPointer) -> Void) -> UnsafeMutablePointer<KernelHeapCheck>? {
        var limits = HeapCheckLimits()
        let pages = kdbt_hc_direct_map_pages()
        guard pages > 0 else { return nil }
        // The flat shadow where it fits: the check then needs neither the page
        // table nor a second temporary (HeapCheck.emitFlatFastPath).
        let flatBytes = FlatShadow.bytes(pages: pages)
        let flat = kdbt_hc_flat_shadow_allowed() != 0 && flatBytes <= maxFlatShadowBytes
            ? kdbt_host_module_data_alloc(flatBytes) : nil
        if flat != nil { limits.shadowChunks = 0 }
        let bytes = HeapCheck.arenaBytes(limits, pages: pages) + MemoryLayout<KernelHeapCheck>.stride + 64
        guard let block = allocate(bytes),
              let table = kdbt_host_code_alloc(Int(pages) * 8, 0)  // disp32 reach, as the inline check needs
        else {
            if let f = flat { kdbt_host_module_data_free(f) }
            return nil
        }
        var arena = Arena(base: block, capacity: bytes)
        var done = false
        defer {
            if !done {
                free(block)
                if let f = flat { kdbt_host_module_data_free(f) }
            }
        }
        // The shim's functions themselves, not closures calling them: each
        // closure is two more calls on every allocation and free.
        let host = HeapCheckHostFunctions(
            captureStack: kdbt_hc_capture_stack, currentTask: kdbt_hc_current_task, release: kdbt_hc_release,
            describeCache: kdbt_hc_describe_cache, lock: kdbt_hc_lock, unlock: kdbt_hc_unlock, now: kdbt_host_ktime_ns)
        guard let kh = arena.allocate(KernelHeapCheck.self),
              let state = HeapCheck.create(
                in: &arena, host: host, limits: limits, directMapBase: kdbt_hc_direct_map_base(), pages: pages,
                pageTable: table.bindMemory(to: UInt64.self, capacity: Int(pages)),
                flatShadow: flat?.bindMemory(to: UInt8.self, capacity: flatBytes),
                redzone: (redzone + 7) & ~7, quarantineLimit: quarantine, findings: findings)
        else { return nil }
        state.pointee.currentTaskSlot = kdbt_hc_current_task_slot()
        state.pointee.taskStructBytes = Int(kdbt_hc_task_struct_bytes())
        state.pointee.classCount = Int(kdbt_hc_classes(state.pointee.classSize, state.pointee.classCache,
                                                       Int32(HeapCheck.maxClasses)))
        guard state.pointee.classCount > 0 else { return nil }
        state.pointee.classCacheLow = ~0
        for c in 0..<state.pointee.classCount {
            state.pointee.classCacheLow = min(state.pointee.classCacheLow, state.pointee.classCache[c])
            state.pointee.classCacheHigh = max(state.pointee.classCacheHigh, state.pointee.classCache[c])
        }
        kh.initialize(to: KernelHeapCheck(state: state, arena: block))
        guard t.register(HeapCheck.registration(state), storageBytes: 0) else { return nil }
        kdbt_hc_report_shadow(flat != nil ? UInt64(flatBytes) : 0)
        done = true
        return kh
    }

    /// Frees what `create` allocated (`free` gives arenas back).
    static func destroy(_ kh: UnsafeMutablePointer<KernelHeapCheck>, free: (UnsafeMutableRawPointer) -> Void) {
        // The flat shadow is an allocation of its own; kh and the state live in
        // the arena.
        let flat = kh.pointee.state.pointee.flatShadow
        free(kh.pointee.arena)
        if let f = flat { kdbt_host_module_data_free(UnsafeMutableRawPointer(f)) }
    }

    /// Wraps the allocator's entry points; those the kernel lacks are skipped.
    static func wrapAllocator(_ t: Translator, _ kh: UnsafeMutablePointer<KernelHeapCheck>,
                              symbol: (StaticString) -> UInt64) {
        kh.pointee.kmemCacheAlloc = symbol("kmem_cache_alloc")
        kh.pointee.kmemCacheAllocNode = symbol("kmem_cache_alloc_node")
        let data = UnsafeMutableRawPointer(kh)
        func wrap(_ name: StaticString, _ pre: WrapHook?, _ post: WrapHook?) {
            let address = symbol(name)
            if address != 0 { _ = t.wrap(address: address, pre: pre, post: post, data: data) }
        }
        guard kh.pointee.kmemCacheAlloc != 0, kh.pointee.kmemCacheAllocNode != 0 else { return }
        wrap("__kmalloc", kmallocPre, allocationPost)
        wrap("__kmalloc_node", kmallocNodePre, allocationPost)
        wrap("__kmalloc_node_track_caller", kmallocNodePre, allocationPost)
        wrap("kmalloc_trace", kmallocTracePre, allocationPost)
        wrap("kmalloc_node_trace", kmallocNodeTracePre, allocationPost)
        wrap("kmalloc_large", kmallocLargePre, allocationPost)
        wrap("kmalloc_large_node", kmallocLargePre, allocationPost)
        wrap("kmem_cache_alloc", cacheAllocPre, cacheAllocPost)
        wrap("kmem_cache_alloc_lru", cacheAllocPre, cacheAllocPost)
        wrap("kmem_cache_alloc_node", cacheAllocPre, cacheAllocPost)
        wrap("kfree", kfreePre, nil)
        wrap("kmem_cache_free", cacheFreePre, nil)
        wrap("kmem_cache_free_bulk", freeBulkPre, nil)
        wrap("ksize", ksizePre, nil)
        // krealloc sizes the old object with __ksize (not exported, but called).
        wrap("__ksize", ksizePre, nil)
    }

    static func status(_ s: UnsafeMutablePointer<HeapCheckState>, into r: inout HeapCheckStatus) {
        kdbt_hc_lock()
        let st = s.pointee.statistics
        r.tracked = st.tracked
        r.untracked = st.untracked
        r.quarantined = st.quarantined
        r.released = st.released
        r.objects = UInt64(s.pointee.objectCount)
        r.quarantineBytes = s.pointee.quarantineBytes
        r.checks = st.checksInserted
        r.slowPaths = st.slowPaths
        r.findings = st.findings
        kdbt_hc_unlock()
    }

    // MARK: hooks

    @inline(__always) static func context(_ call: UnsafeMutableRawPointer, _ data: UnsafeMutableRawPointer?)
        -> (UnsafeMutablePointer<WrapCall>, UnsafeMutablePointer<KernelHeapCheck>) {
        (WrapCall.from(call), data!.assumingMemoryBound(to: KernelHeapCheck.self))
    }

    /// Picks a class for `size` and points argument `cacheArgument` at its cache;
    /// else tags page-sized requests for tracking. True when a class was taken.
    static func takeClass(_ call: UnsafeMutablePointer<WrapCall>, _ kh: UnsafeMutablePointer<KernelHeapCheck>,
                          size: UInt64, flags: UInt64, cacheArgument: Int) -> Bool {
        let s = kh.pointee.state
        guard flags & zoneFlags == 0, size > 0, size <= sizeMask, HeapCheck.hasRoom(s) else { return false }
        guard let c = HeapCheck.sizeClass(s, for: size, naturallyAligned: size & (size - 1) == 0) else { return false }
        call.pointee.setArgument(cacheArgument, s.pointee.classCache[c])
        call.pointee.userData = fromClassTag | UInt64(c) << 48 | size
        return true
    }

    /// __kmalloc(size, flags) -> kmem_cache_alloc(class cache, flags).
    static let kmallocPre: WrapHook = { raw, data in
        let (call, kh) = context(raw, data)
        let size = call.pointee.argument(0)
        if takeClass(call, kh, size: size, flags: call.pointee.argument(1), cacheArgument: 0) {
            call.pointee.redirect(to: kh.pointee.kmemCacheAlloc)
        } else {
            largePre(call, kh, size: size)
        }
        postOnlyIfTracked(call)
    }

    /// The post hooks track what the pre hook tagged (userData); untagged calls
    /// need none.
    @inline(__always) static func postOnlyIfTracked(_ call: UnsafeMutablePointer<WrapCall>) {
        if call.pointee.userData == 0 { call.pointee.skipPostHook() }
    }

    /// __kmalloc_node{,_track_caller}(size, flags, node[, caller]) ->
    /// kmem_cache_alloc_node(class cache, flags, node).
    static let kmallocNodePre: WrapHook = { raw, data in
        let (call, kh) = context(raw, data)
        let size = call.pointee.argument(0)
        if takeClass(call, kh, size: size, flags: call.pointee.argument(1), cacheArgument: 0) {
            call.pointee.redirect(to: kh.pointee.kmemCacheAllocNode)
        } else {
            largePre(call, kh, size: size)
        }
        postOnlyIfTracked(call)
    }

    /// kmalloc_trace(cache, flags, size): only the cache changes.
    static let kmallocTracePre: WrapHook = { raw, data in
        let (call, kh) = context(raw, data)
        _ = takeClass(call, kh, size: call.pointee.argument(2), flags: call.pointee.argument(1), cacheArgument: 0)
        postOnlyIfTracked(call)
    }

    /// kmalloc_node_trace(cache, flags, node, size).
    static let kmallocNodeTracePre: WrapHook = { raw, data in
        let (call, kh) = context(raw, data)
        _ = takeClass(call, kh, size: call.pointee.argument(3), flags: call.pointee.argument(1), cacheArgument: 0)
        postOnlyIfTracked(call)
    }

    /// kmalloc_large{,_node}(size, flags[, node]): `redzone` more bytes.
    static let kmallocLargePre: WrapHook = { raw, data in
        let (call, kh) = context(raw, data)
        largePre(call, kh, size: call.pointee.argument(0))
        postOnlyIfTracked(call)
    }

    /// Page-sized requests (argument 0 is the size) grow by the redzone.
    static func largePre(_ call: UnsafeMutablePointer<WrapCall>, _ kh: UnsafeMutablePointer<KernelHeapCheck>, size: UInt64) {
        let s = kh.pointee.state
        let last = s.pointee.classCount > 0 ? s.pointee.classSize[s.pointee.classCount - 1] : 0
        guard size >= last, size <= sizeMask, HeapCheck.hasRoom(s) else { return }
        call.pointee.setArgument(0, size &+ s.pointee.redzone)
        call.pointee.userData = fromPagesTag | size
    }

    static let allocationPost: WrapHook = { raw, data in
        let (call, kh) = context(raw, data)
        let tag = call.pointee.userData
        let p = call.pointee.returnValue
        guard tag != 0, p != 0 else { return }
        let s = kh.pointee.state
        let size = tag & sizeMask
        if tag & fromClassTag != 0 {
            HeapCheck.track(s, call, start: p, size: size, origin: HeapObject.fromClass,
                            sizeClass: Int((tag >> 48) & 0xFF), cache: 0, slot: 0)
        } else {
            HeapCheck.track(s, call, start: p, size: size, origin: HeapObject.fromPages, sizeClass: 0, cache: 0,
                            slot: kdbt_hc_page_bytes(size &+ s.pointee.redzone))
        }
    }

    static func isOwnCache(_ s: UnsafeMutablePointer<HeapCheckState>, _ cache: UInt64) -> Bool {
        // Nearly every cache asked about lies outside the span of ours.
        guard cache >= s.pointee.classCacheLow && cache <= s.pointee.classCacheHigh else { return false }
        for c in 0..<s.pointee.classCount where s.pointee.classCache[c] == cache { return true }
        return false
    }

    /// kmem_cache_alloc{,_lru,_node}(cache, ...): named caches' objects.
    static let cacheAllocPre: WrapHook = { raw, data in
        let (call, kh) = context(raw, data)
        let s = kh.pointee.state
        let cache = call.pointee.argument(0)
        // Our own classes: a redirected kmalloc, tracked by its own wrap.
        guard cache != 0, !isOwnCache(s, cache), HeapCheck.hasRoom(s) else {
            call.pointee.skipPostHook()
            return
        }
        call.pointee.userData = cache
    }

    static let cacheAllocPost: WrapHook = { raw, data in
        let (call, kh) = context(raw, data)
        let cache = call.pointee.userData
        let p = call.pointee.returnValue
        guard cache != 0, p != 0 else { return }
        let size = kdbt_hc_cache_object_size(cache)
        guard size > 0 else {
            kh.pointee.state.pointee.statistics.untracked &+= 1
            return
        }
        HeapCheck.track(kh.pointee.state, call, start: p, size: size, origin: HeapObject.fromNamedCache,
                        sizeClass: 0, cache: cache, slot: size)
    }

    static let kfreePre: WrapHook = { raw, data in
        let (call, kh) = context(raw, data)
        if HeapCheck.free(kh.pointee.state, call, pointer: call.pointee.argument(0)) {
            call.pointee.skip(returning: 0)
        }
    }

    static let cacheFreePre: WrapHook = { raw, data in
        let (call, kh) = context(raw, data)
        if HeapCheck.free(kh.pointee.state, call, pointer: call.pointee.argument(1)) {
            call.pointee.skip(returning: 0)
        }
    }

    /// kmem_cache_free_bulk(cache, count, objects): tracked objects are taken out
    /// of the array (which the callers do not read again), the rest freed.
    static let freeBulkPre: WrapHook = { raw, data in
        let (call, kh) = context(raw, data)
        let count = Int(truncatingIfNeeded: call.pointee.argument(1))
        guard count > 0, count < 1 << 20,
              let objects = UnsafeMutablePointer<UInt64>(bitPattern: UInt(call.pointee.argument(2)))
        else { return }
        var kept = 0
        for i in 0..<count {
            let p = objects[i]
            if !HeapCheck.free(kh.pointee.state, call, pointer: p) {
                objects[kept] = p
                kept += 1
            }
        }
        if kept == 0 {
            call.pointee.skip(returning: 0)
        } else {
            call.pointee.setArgument(1, UInt64(kept))
        }
    }

    /// ksize(p) of a tracked object: the size it was allocated with (using more
    /// would be using its redzone).
    static let ksizePre: WrapHook = { raw, data in
        let (call, kh) = context(raw, data)
        if let size = HeapCheck.allocatedSize(kh.pointee.state, call.pointee.argument(0)) {
            call.pointee.skip(returning: size)
        }
    }
}

#endif
