// SPDX-License-Identifier: GPL-2.0-only
//
// The kernel host: the Engine's view of kmod/shim.c, and the C entry points the shim
// calls. Only in the kernel build (Embedded Swift); the hosted build has user-mode
// hosts instead.

#if hasFeature(Embedded)

@_extern(c, "kdbt_host_copy_from_user")
func kdbt_host_copy_from_user(_ dst: UnsafeMutableRawPointer, _ src: UInt64, _ n: Int) -> Int32
@_extern(c, "kdbt_host_copy_to_user")
func kdbt_host_copy_to_user(_ dst: UInt64, _ src: UnsafeRawPointer, _ n: Int) -> Int32
@_extern(c, "kdbt_host_check_zeroed_user")
func kdbt_host_check_zeroed_user(_ addr: UInt64, _ n: Int) -> Int32
@_extern(c, "kdbt_host_read_kernel_text")
func kdbt_host_read_kernel_text(_ dst: UnsafeMutableRawPointer, _ addr: UInt64, _ n: Int) -> Int32
@_extern(c, "kdbt_host_arena_alloc")
func kdbt_host_arena_alloc(_ bytes: Int) -> UnsafeMutableRawPointer?
@_extern(c, "kdbt_host_arena_free")
func kdbt_host_arena_free(_ block: UnsafeMutableRawPointer)
@_extern(c, "kdbt_host_live_allocations")
func kdbt_host_live_allocations() -> UInt64
@_extern(c, "kdbt_host_live_bytes")
func kdbt_host_live_bytes() -> UInt64
@_extern(c, "kdbt_host_ns_since_load")
func kdbt_host_ns_since_load() -> UInt64
@_extern(c, "kdbt_host_online_cpus")
func kdbt_host_online_cpus() -> UInt32
@_extern(c, "kdbt_host_build_id")
func kdbt_host_build_id() -> UInt64

struct KernelHost: EngineHost {
    func copyFromUser(_ destination: UnsafeMutableRawPointer, _ source: UInt64, _ count: Int) -> Bool {
        kdbt_host_copy_from_user(destination, source, count) == 0
    }
    func copyToUser(_ destination: UInt64, _ source: UnsafeRawPointer, _ count: Int) -> Bool {
        kdbt_host_copy_to_user(destination, source, count) == 0
    }
    func checkZeroedUser(_ address: UInt64, _ count: Int) -> Int32 {
        kdbt_host_check_zeroed_user(address, count)
    }
    func readKernelText(_ destination: UnsafeMutableRawPointer, _ address: UInt64, _ count: Int) -> Bool {
        kdbt_host_read_kernel_text(destination, address, count) == 0
    }
    func allocateArena(bytes: Int) -> UnsafeMutableRawPointer? { kdbt_host_arena_alloc(bytes) }
    func freeArena(_ block: UnsafeMutableRawPointer) { kdbt_host_arena_free(block) }
    var liveAllocations: UInt64 { kdbt_host_live_allocations() }
    var liveBytes: UInt64 { kdbt_host_live_bytes() }
    var nanosecondsSinceLoad: UInt64 { kdbt_host_ns_since_load() }
    var onlineCPUs: UInt32 { kdbt_host_online_cpus() }
    var buildID: UInt64 { kdbt_host_build_id() }
}

/// Module load: the Engine's state pointer, or nil (the shim fails the load).
@_cdecl("kdbt_engine_create")
public func kdbt_engine_create() -> UnsafeMutableRawPointer? {
    guard let engine = Engine.create(host: KernelHost()) else { return nil }
    return UnsafeMutableRawPointer(engine.state)
}

/// Module unload: releases every arena.
@_cdecl("kdbt_engine_destroy")
public func kdbt_engine_destroy(_ state: UnsafeMutableRawPointer) {
    Engine(host: KernelHost(), state: state).destroy()
}

/// One ioctl, already checked for CAP_SYS_ADMIN and serialized by the shim.
@_cdecl("kdbt_engine_ioctl")
public func kdbt_engine_ioctl(_ state: UnsafeMutableRawPointer, _ number: UInt32, _ argument: UInt64) -> Int64 {
    Int64(Engine(host: KernelHost(), state: state).ioctl(number: number, argument: argument))
}

#endif
