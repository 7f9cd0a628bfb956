// SPDX-License-Identifier: GPL-2.0-only
//
// The Engine's lifetime: created once by its host (module load), torn down once
// (module unload). All state lives in the first arena; the Engine value itself is
// a (host, pointer) pair that hosts rebuild on every entry.

#if canImport(Protocol)
import Protocol
#endif

/// Everything the Engine keeps between entries. Lives at the start of its arena.
public struct EngineState {
    var arena: Arena
    var attached: Bool
    var ioctlCalls: UInt64
    /// One page for staging data between kernel and user memory; requests are
    /// serialized by the host, so one is enough.
    var scratch: UnsafeMutableRawPointer
    /// The host's takeover state while attached.
    var takeover: UnsafeMutableRawPointer?
}

/// Size of `EngineState.scratch`.
let scratchBytes = 4096

public struct Engine<Host: EngineHost> {
    /// Size of the first arena, which holds the Engine state and small tables.
    public static var initialArenaBytes: Int { 64 * 1024 }

    public let host: Host
    public let state: UnsafeMutablePointer<EngineState>

    /// Rebuilds the Engine from the pointer `create` returned.
    public init(host: Host, state: UnsafeMutableRawPointer) {
        self.host = host
        self.state = state.assumingMemoryBound(to: EngineState.self)
    }

    /// Allocates the first arena and places the state in it; nil without memory.
    public static func create(host: Host) -> Engine? {
        guard let block = host.allocateArena(bytes: initialArenaBytes) else { return nil }
        var arena = Arena(base: block, capacity: initialArenaBytes)
        guard let state = arena.allocate(EngineState.self),
              let scratch = arena.allocate(bytes: scratchBytes, alignment: 64)
        else {
            host.freeArena(block)
            return nil
        }
        state.initialize(to: EngineState(arena: arena, attached: false, ioctlCalls: 0, scratch: scratch, takeover: nil))
        // The arena copy inside the state must account for the state itself.
        state.pointee.arena = arena
        return Engine(host: host, state: UnsafeMutableRawPointer(state))
    }

    /// Releases every arena. The Engine must not be used afterwards.
    public func destroy() {
        if state.pointee.takeover != nil {  // unloading while attached: give the kernel back first
            var request = DetachRequest()
            _ = host.detach(&request, slot: &state.pointee.takeover)
        }
        let block = state.pointee.arena.base
        state.deinitialize(count: 1)
        host.freeArena(block)
    }

    /// A snapshot of the engine statistics that `status` reports.
    public var status: StatusReply {
        let s = state.pointee
        var reply = StatusReply(
            state: s.attached ? .attached : .detached, cpus: host.onlineCPUs,
            ioctlCalls: s.ioctlCalls, arenaBytes: UInt64(s.arena.capacity),
            arenaUsed: UInt64(s.arena.used), liveAllocations: host.liveAllocations,
            liveBytes: host.liveBytes, loadedNanoseconds: host.nanosecondsSinceLoad)
        host.takeoverSummary(s.takeover, into: &reply)
        return reply
    }

    public var version: VersionReply {
        VersionReply(
            protocolVersion: kdbtProtocolVersion, engineVersion: kdbtEngineVersion,
            buildID: host.buildID, features: FeatureBits.status.union(.readText).union(host.extraFeatures),
            cpus: host.onlineCPUs)
    }
}
