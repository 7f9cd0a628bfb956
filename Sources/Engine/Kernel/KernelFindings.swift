// SPDX-License-Identifier: GPL-2.0-only
//
// The report ring in the kernel: one per attach, shared by the checking tools,
// copied aside at detach so that `kdbt report` still shows the findings (until the
// next attach with a checking tool, or the module's unload).

#if hasFeature(Embedded)

#if canImport(Protocol)
import Protocol
#endif

@_extern(c, "kdbt_findings_lock")
func kdbt_findings_lock()
@_extern(c, "kdbt_findings_unlock")
func kdbt_findings_unlock()
@_extern(c, "kdbt_findings_keep")
func kdbt_findings_keep(_ records: UnsafeRawPointer, _ keys: UnsafeRawPointer, _ count: Int, _ recordBytes: Int,
                        _ dropped: UInt64)
@_extern(c, "kdbt_findings_kept")
func kdbt_findings_kept(_ records: UnsafeMutablePointer<UnsafeRawPointer?>, _ dropped: UnsafeMutablePointer<UInt64>) -> Int

@_extern(c, "kdbt_sg_classify")
func kdbt_sg_classify(_ sp: UInt64, _ base: UnsafeMutablePointer<UInt64>, _ size: UnsafeMutablePointer<UInt64>) -> UInt32
@_extern(c, "kdbt_sg_capture_frames")
func kdbt_sg_capture_frames(_ pc: UInt64, _ sp: UInt64, _ bp: UInt64, _ frames: UnsafeMutablePointer<UInt64>,
                            _ sps: UnsafeMutablePointer<UInt64>, _ capacity: Int32) -> Int32
@_extern(c, "kdbt_sg_frame_bytes")
func kdbt_sg_frame_bytes(_ pc: UInt64) -> Int32

/// stackguard in the kernel: its host services.
enum KernelStackGuard {
    static let defaultThreshold: UInt64 = 4096

    static func create(_ t: Translator, in arena: inout Arena, threshold: UInt64,
                       findings: UnsafeMutablePointer<FindingsRing>) -> UnsafeMutablePointer<StackGuardState>? {
        let host = StackGuardHostFunctions(
            classify: { sp, base, size in kdbt_sg_classify(sp, base, size) },
            captureFrames: { pc, sp, bp, frames, sps, capacity in kdbt_sg_capture_frames(pc, sp, bp, frames, sps, capacity) },
            currentTask: { pid, comm in kdbt_hc_current_task(pid, comm) }, now: { kdbt_host_ktime_ns() },
            frameBytes: { kdbt_sg_frame_bytes($0) })
        guard let s = StackGuard.create(in: &arena, host: host, threshold: threshold, cpus: Int(kdbt_host_cpu_ids()),
                                        findings: findings),
              t.register(StackGuard.registration(s), storageBytes: StackGuard.storageBytes)
        else { return nil }
        let start: StaticString = "__entry_text_start", end: StaticString = "__entry_text_end"
        s.pointee.excludedStart = kdbt_host_symbol(start.utf8Start)
        s.pointee.excludedEnd = kdbt_host_symbol(end.utf8Start)
        s.pointee.triggerOffset = t.state.pointee.contextGSOffset + t.storageOffset(ofTool: t.state.pointee.toolCount - 1)
        return s
    }

    /// Each context's trigger, before anything runs translated.
    static func initialize(_ s: UnsafeMutablePointer<StackGuardState>, context: UnsafeMutableRawPointer, gsOffset: Int32) {
        context.storeBytes(of: StackGuard.initialTrigger(s), toByteOffset: Int(s.pointee.triggerOffset - gsOffset),
                           as: UInt64.self)
    }
}

enum KernelFindings {
    static let capacity = 256

    static var arenaBytes: Int { MemoryLayout<FindingsRing>.stride + FindingsRing.bytes(capacity: capacity) + 16 }

    static func create(in arena: inout Arena) -> UnsafeMutablePointer<FindingsRing>? {
        guard let ring = arena.allocate(FindingsRing.self),
              let memory = arena.allocate(bytes: FindingsRing.bytes(capacity: capacity), alignment: 8)
        else { return nil }
        ring.initialize(to: FindingsRing(memory: memory, capacity: capacity, lock: kdbt_findings_lock,
                                         unlock: kdbt_findings_unlock))
        return ring
    }

    /// At detach, every CPU native: the ring no longer changes.
    static func keep(_ ring: UnsafeMutablePointer<FindingsRing>) {
        kdbt_findings_keep(ring.pointee.recordBytes, ring.pointee.keyBytes, ring.pointee.count, FindingLayout.recordBytes,
                           ring.pointee.dropped)
    }

    /// What the last attach kept, into a new attach's ring (before any CPU runs
    /// translated: no lock needed): a tool enabled or disabled loses no finding.
    static func adoptKept(_ ring: UnsafeMutablePointer<FindingsRing>) {
        var records: UnsafeRawPointer? = nil
        var dropped: UInt64 = 0
        let count = kdbt_findings_kept(&records, &dropped)
        guard count > 0, let kept = records else { return }
        ring.pointee.adopt(records: kept, keys: (kept + count * FindingLayout.recordBytes).assumingMemoryBound(to: UInt64.self),
                           count: count, dropped: dropped)
    }

    /// Serves KDBT_IOC_FINDINGS: from the attached tools' ring, else what the last
    /// attach left; ENOENT when no checking tool ran since the module loaded.
    static func serve(_ request: inout FindingsRequest, _ ring: UnsafeMutablePointer<FindingsRing>?,
                      copyToUser: (UInt64, UnsafeRawPointer, Int) -> Bool) -> Int32 {
        let record = FindingLayout.recordBytes
        request.recordBytes = UInt32(record)
        let first = Int(request.first)
        if let ring = ring {
            kdbt_findings_lock()
            let count = ring.pointee.count
            request.total = UInt32(count)
            request.dropped = ring.pointee.dropped
            kdbt_findings_unlock()
            let wanted = first < count ? min(Int(request.capacity), count - first) : 0
            var copied = 0
            let ok = withUnsafeTemporaryAllocation(byteCount: record, alignment: 8) { buffer -> Bool in
                while copied < wanted {
                    // Under the ring's lock (counts change), then to the user unlocked.
                    guard ring.pointee.copy(first + copied, to: buffer.baseAddress!),
                          copyToUser(request.buffer &+ UInt64(copied * record), buffer.baseAddress!, record)
                    else { return false }
                    copied += 1
                }
                return true
            }
            guard ok else { return -Errno.EFAULT }
            request.count = UInt32(wanted)
            return 0
        }
        var records: UnsafeRawPointer? = nil
        var dropped: UInt64 = 0
        let count = kdbt_findings_kept(&records, &dropped)
        guard count >= 0 else { return -Errno.ENOENT }
        request.total = UInt32(count)
        request.dropped = dropped
        let wanted = first < count ? min(Int(request.capacity), count - first) : 0
        for k in 0..<wanted {
            guard copyToUser(request.buffer &+ UInt64(k * record), records! + (first + k) * record, record) else {
                return -Errno.EFAULT
            }
        }
        request.count = UInt32(wanted)
        return 0
    }
}

#endif
