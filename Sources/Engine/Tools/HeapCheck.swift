// SPDX-License-Identifier: GPL-2.0-only
//
// heapcheck: use-after-free, out-of-bounds, double and invalid frees, found by
// checking every memory access of translated code against shadow memory, the way
// KASAN does, without rebuilding the kernel.
//
// - Shadow: KASAN's encoding (Protocol's ShadowByte), one byte per 8-byte granule,
//   only for pages that hold tracked objects: a page table indexed by page frame
//   (direct-map addresses only) points at a 512-byte shadow chunk (biased by the
//   page's address, see `tableWord`), or at a shared clean chunk ("unknown": never
//   reported). The table sits within disp32 reach, so the inline check is 11
//   instructions with no call.
// - Objects: the host's allocator wraps (Kernel/KernelHeapCheck.swift) call
//   `track` and `free`; kmalloc objects come from heapcheck's own caches, one size
//   class up, so each has at least `redzone` poisoned bytes after it and the slot
//   before it ends in such a redzone. Freed objects wait in a bounded quarantine,
//   poisoned, before the allocator really gets them back.
// - Findings: the slow path (a clean call) classifies a bad access, records the
//   stacks and writes a FindingLayout record; identical findings count up.
//
// Slab code reads the free pointer inside free slots and zeroes objects before
// they are handed out: a slot not holding a tracked object is therefore left
// "unknown" (0), never poisoned; only live objects' redzones and quarantined
// objects are.

#if canImport(Protocol)
import Protocol
#endif

/// What heapcheck needs from its host.
public struct HeapCheckHostFunctions {
    /// Native return addresses of the stack at (pc, sp, bp), innermost first, into
    /// the buffer (at most `capacity`); returns the count. When the last two are
    /// not nil: the addresses of the stack words the result depends on, at most
    /// the count the last one holds, which becomes their count (-1: not known, or
    /// more); `StackMemoEntry.bpRegister` stands for `bp`. The same values there
    /// then give the same stack (`StackMemoEntry`).
    public var captureStack: @convention(c) (UInt64, UInt64, UInt64, UnsafeMutablePointer<UInt64>, Int32,
                                             UnsafeMutablePointer<UInt64>?, UnsafeMutablePointer<Int32>?) -> Int32
    /// The current task: pid into the first pointer, comm (16 bytes) into the
    /// second; returns the CPU.
    public var currentTask: @convention(c) (UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt8>) -> UInt32
    /// Gives an object back to the allocator: kmem_cache_free(cache, p), or
    /// kfree(p) when cache is 0. Called without heapcheck's lock held.
    public var release: @convention(c) (UInt64, UInt64) -> Void
    /// Name (32 bytes) and object size of a cache; 0 when its objects must not be
    /// tracked (SLAB_TYPESAFE_BY_RCU: readers may touch freed objects).
    public var describeCache: @convention(c) (UInt64, UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<UInt64>) -> Int32
    public var lock: @convention(c) () -> Void
    public var unlock: @convention(c) () -> Void
    public var now: @convention(c) () -> UInt64

    public init(captureStack: @convention(c) (UInt64, UInt64, UInt64, UnsafeMutablePointer<UInt64>, Int32,
                                              UnsafeMutablePointer<UInt64>?, UnsafeMutablePointer<Int32>?) -> Int32,
                currentTask: @convention(c) (UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt8>) -> UInt32,
                release: @convention(c) (UInt64, UInt64) -> Void,
                describeCache: @convention(c) (UInt64, UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<UInt64>) -> Int32,
                lock: @convention(c) () -> Void, unlock: @convention(c) () -> Void,
                now: @convention(c) () -> UInt64) {
        self.captureStack = captureStack
        self.currentTask = currentTask
        self.release = release
        self.describeCache = describeCache
        self.lock = lock
        self.unlock = unlock
        self.now = now
    }
}

/// One tracked object (live or quarantined). `start` 0: an empty table slot.
struct HeapObject {
    var start: UInt64 = 0
    /// Bytes the allocation asked for.
    var size: UInt64 = 0
    /// Bytes of its slot (class size, cache object size, or page bytes).
    var slot: UInt64 = 0
    /// The cache to free it to (named caches), 0 for kfree.
    var cache: UInt64 = 0
    var state: UInt8 = 0
    var origin: UInt8 = 0
    /// Our size class (kmalloc objects), else 0xFF.
    var sizeClass: UInt8 = 0xFF
    var allocPid: UInt32 = 0
    var freePid: UInt32 = 0
    var allocCPU: UInt32 = 0
    var freeCPU: UInt32 = 0
    var allocStack: UInt32 = 0
    var freeStack: UInt32 = 0

    static let live: UInt8 = 1
    static let quarantined: UInt8 = 2
    static let fromClass: UInt8 = 0
    static let fromNamedCache: UInt8 = 1
    static let fromPages: UInt8 = 2
}

/// What a shadow page holds (pageKind): objects of one of heapcheck's size
/// classes (the class index + 1), or anything else.
enum ShadowPageKind {
    static let none: UInt8 = 0
    static let shared: UInt8 = 0xFF
    @inline(__always) static func ownClass(_ c: Int) -> UInt8 { UInt8(c + 1) }
    @inline(__always) static func sizeClass(_ kind: UInt8) -> Int? { kind != none && kind != shared ? Int(kind) - 1 : nil }
}

/// Sizes of heapcheck's tables.
public struct HeapCheckLimits {
    public var objects = 1 << 17
    public var quarantineEntries = 1 << 16
    public var shadowChunks = 1 << 15
    public var stacks = 1 << 13
    public var stackDepth = 12
    /// Remembered stacks (`StackMemoEntry`) per CPU, for the first `stackMemoCPUs`
    /// (a power of two). Many: the kernel's per-syscall stack offset puts each
    /// syscall's chain at one of 64 depths, each its own entry (1024 left
    /// mmap/munmap's stacks walked half the time, 4096 a sixth).
    public var stackMemoEntries = 4096
    public var stackMemoCPUs = 4
    public init() {}
}

/// A stack the walk gave before: from (pc, sp, caller) it read these
/// stack words (`address`, `value`), and the depot gave `handle`. The walk is
/// a function of its start and of the words it reads, so when they all hold
/// the same values again (a syscall loop allocating from the same place at the
/// same depth), the depot handle stands, and neither the walk nor the depot's
/// hashing runs: allocation stacks were heapcheck's largest cost after the
/// inline checks. One table per CPU: the hooks run with interrupts off, so no
/// other writer shares it.
struct StackMemoEntry {
    static let maxReads = 16
    /// Entries per set: stacks from one place that differ deeper down (one
    /// function called from several paths).
    static let ways = 4
    /// In `address`: the bp the walk started with (STACK_READ_BP in stackguard.c).
    static let bpRegister: UInt64 = 1
    var pc: UInt64 = 0
    var sp: UInt64 = 0
    /// The return address the walk starts from.
    var caller: UInt64 = 0
    /// 0: an empty entry.
    var handle: UInt32 = 0
    var reads: Int32 = 0
    /// In a set's first entry: the way the next new stack goes to (round robin).
    var nextWay: UInt8 = 0
    /// Whether the walk used the bp it started with, and which.
    var usesBP = false
    var bp: UInt64 = 0
    /// The stack words (bp apart), `reads` of them.
    var address: InlineArray<16, UInt64> = InlineArray(repeating: 0)
    var value: InlineArray<16, UInt64> = InlineArray(repeating: 0)
}

/// heapcheck's statistics (status, tests).
public struct HeapCheckStatistics {
    public var tracked: UInt64 = 0
    /// Allocations left untracked: tables full, or a cache it must not track.
    public var untracked: UInt64 = 0
    public var quarantined: UInt64 = 0
    public var released: UInt64 = 0
    public var slowPaths: UInt64 = 0
    public var checksInserted: UInt64 = 0
    public var findings: UInt64 = 0
    public var stacksDropped: UInt64 = 0
    /// Stacks the memo gave (no walk).
    public var stackMemoHits: UInt64 = 0
    public init() {}
}

/// The tool's state: its data pointer. Built by `HeapCheck.create`.
public struct HeapCheckState {
    public var host: HeapCheckHostFunctions
    public var limits: HeapCheckLimits
    public var statistics = HeapCheckStatistics()
    /// Direct map: addresses `directMapBase ..< directMapBase + pages * 4096`.
    public var directMapBase: UInt64
    public var directMapPages: UInt64
    public var redzone: UInt64
    public var quarantineLimit: UInt64
    /// Per page (disp32-addressable): its shadow chunk, biased for the fast path
    /// (`tableWord`); pages without shadow point at `cleanChunk`. Kind per page.
    var pageShadow: UnsafeMutablePointer<UInt64>
    /// The flat shadow, when the host could give one (disp32-addressable, zeroed,
    /// `chunkBytes` per direct-map page, then `FlatShadow`'s pad and words): page p's chunk
    /// is at flat + p * chunkBytes, and the inline check reads it without the
    /// page table. nil: chunks come from `chunks`.
    var flatShadow: UnsafeMutablePointer<UInt8>?
    /// 512 clean shadow bytes (and a pad) shared by every page without shadow.
    var cleanChunk: UnsafeMutablePointer<UInt8>
    var pageKind: UnsafeMutablePointer<UInt8>
    var chunks: UnsafeMutablePointer<UInt8>
    var chunksUsed = 0
    var objects: UnsafeMutablePointer<HeapObject>
    var objectCount = 0
    var quarantine: UnsafeMutablePointer<UInt64>
    var quarantineHead = 0
    var quarantineCount = 0
    var quarantineBytes: UInt64 = 0
    /// Stack depot: `stacks` entries of (hash, depth, frames[stackDepth]).
    var stackWords: UnsafeMutablePointer<UInt64>
    var stacksUsed = 0
    /// `stackMemoCPUs` tables of `stackMemoEntries`.
    var stackMemo: UnsafeMutablePointer<StackMemoEntry>
    /// Size classes: `classCount` entries of (size, cache).
    public var classSize: UnsafeMutablePointer<UInt64>
    public var classCache: UnsafeMutablePointer<UInt64>
    public var classCount = 0
    /// The lowest and highest of the classes' caches.
    public var classCacheLow: UInt64 = 0
    public var classCacheHigh: UInt64 = 0
    /// Where findings go (shared with the other checking tools).
    var findings: UnsafeMutablePointer<FindingsRing>
    /// The %gs: offset of the running task's pointer (`current`), -1 when not
    /// known, and the bytes of a task_struct at least: accesses to the running
    /// task itself go unchecked.
    public var currentTaskSlot: Int64 = -1
    public var taskStructBytes = 0
}

public enum HeapCheck {
    public static let name: StaticString = "heapcheck"
    public static let maxClasses = 16
    static let chunkBytes = 512

    /// Bytes `create` needs for the given limits and direct-map size, besides the
    /// page table (which the host provides within disp32 reach).
    public static func arenaBytes(_ limits: HeapCheckLimits, pages: UInt64) -> Int {
        let stackWords = 2 + limits.stackDepth
        return MemoryLayout<HeapCheckState>.stride + Int(pages) + (limits.shadowChunks + 2) * chunkBytes
            + limits.objects * MemoryLayout<HeapObject>.stride + limits.quarantineEntries * 8
            + limits.stacks * stackWords * 8 + 2 * maxClasses * 8 + 64 * 8
            + memoEntries(limits) * MemoryLayout<StackMemoEntry>.stride + 16
    }

    static func memoEntries(_ limits: HeapCheckLimits) -> Int { limits.stackMemoCPUs * limits.stackMemoEntries }

    /// Lays the state out in `arena`; `pageTable` holds `pages` words within
    /// disp32 reach of any code (the inline check addresses it absolutely).
    public static func create(in arena: inout Arena, host: HeapCheckHostFunctions, limits: HeapCheckLimits,
                              directMapBase: UInt64, pages: UInt64, pageTable: UnsafeMutablePointer<UInt64>,
                              flatShadow: UnsafeMutablePointer<UInt8>? = nil,
                              redzone: UInt64, quarantineLimit: UInt64,
                              findings: UnsafeMutablePointer<FindingsRing>) -> UnsafeMutablePointer<HeapCheckState>? {
        let stackWords = 2 + limits.stackDepth
        guard let state = arena.allocate(HeapCheckState.self),
              let kinds = arena.allocate(bytes: Int(pages), alignment: 8),
              let chunks = arena.allocate(bytes: limits.shadowChunks * chunkBytes, alignment: 64),
              let clean = arena.allocate(bytes: chunkBytes + 64, alignment: 64),
              let objects = arena.allocate(bytes: limits.objects * MemoryLayout<HeapObject>.stride, alignment: 8),
              let quarantine = arena.allocate(bytes: limits.quarantineEntries * 8, alignment: 8),
              let stacks = arena.allocate(bytes: limits.stacks * stackWords * 8, alignment: 8),
              let sizes = arena.allocate(bytes: maxClasses * 8, alignment: 8),
              let caches = arena.allocate(bytes: maxClasses * 8, alignment: 8),
              let memo = arena.allocate(bytes: memoEntries(limits) * MemoryLayout<StackMemoEntry>.stride, alignment: 16)
        else { return nil }
        let stackMemo = memo.bindMemory(to: StackMemoEntry.self, capacity: memoEntries(limits))
        stackMemo.initialize(repeating: StackMemoEntry(), count: memoEntries(limits))
        clean.initializeMemory(as: UInt8.self, repeating: 0, count: chunkBytes + 64)
        let cleanChunk = clean.bindMemory(to: UInt8.self, capacity: chunkBytes + 64)
        for page in 0..<Int(pages) {
            (pageTable + page).initialize(to: tableWord(directMapBase, page: page, chunk: cleanChunk))
        }
        kinds.initializeMemory(as: UInt8.self, repeating: 0, count: Int(pages))
        objects.initializeMemory(as: UInt8.self, repeating: 0, count: limits.objects * MemoryLayout<HeapObject>.stride)
        stacks.initializeMemory(as: UInt8.self, repeating: 0, count: limits.stacks * stackWords * 8)
        sizes.initializeMemory(as: UInt8.self, repeating: 0, count: maxClasses * 8)
        caches.initializeMemory(as: UInt8.self, repeating: 0, count: maxClasses * 8)
        state.initialize(to: HeapCheckState(
            host: host, limits: limits, directMapBase: directMapBase, directMapPages: pages, redzone: redzone,
            quarantineLimit: quarantineLimit, pageShadow: pageTable, cleanChunk: cleanChunk,
            pageKind: kinds.bindMemory(to: UInt8.self, capacity: Int(pages)),
            chunks: chunks.bindMemory(to: UInt8.self, capacity: limits.shadowChunks * chunkBytes),
            objects: objects.bindMemory(to: HeapObject.self, capacity: limits.objects),
            quarantine: quarantine.bindMemory(to: UInt64.self, capacity: limits.quarantineEntries),
            stackWords: stacks.bindMemory(to: UInt64.self, capacity: limits.stacks * stackWords),
            stackMemo: stackMemo,
            classSize: sizes.bindMemory(to: UInt64.self, capacity: maxClasses),
            classCache: caches.bindMemory(to: UInt64.self, capacity: maxClasses),
            findings: findings))
        if let flat = flatShadow {
            state.pointee.flatShadow = flat
            let cells = UnsafeMutableRawPointer(flat + FlatShadow.constants(pages: pages))
            cells.storeBytes(of: directMapBase, as: UInt64.self)
            cells.storeBytes(of: pages << 12, toByteOffset: 8, as: UInt64.self)
        }
        return state
    }

    public static func registration(_ state: UnsafeMutablePointer<HeapCheckState>) -> ToolRegistration {
        ToolRegistration(name: name, priority: ToolPriority.normal, phases: InstrumentationPhase.insertion.bit,
                         data: UnsafeMutableRawPointer(state), onBlock: onBlock)
    }

    // MARK: instrumentation

    static let onBlock: BlockEventHandler = { data, raw, _ in
        let state = data!.assumingMemoryBound(to: HeapCheckState.self)
        let block = InstrumentedBlock.from(raw)
        var operands = Operands()
        var covered = CoveredAccesses()
        var open = JoinableChecks()
        var stretchStart = 0  // where the current straight stretch begins
        // Registers holding `current`, loaded from %gs: in this block.
        var current: UInt16 = 0
        let flat = state.pointee.flatShadow != nil
        for i in 0..<block.pointee.count {
            let insn = block.pointee[i]
            Decoder.decodeOperands(insn, into: &operands)
            defer {
                let written = Decoder.registerAccesses(insn, operands: operands).gprWritten
                covered.forget(written: written)
                open.forget(written: written)
                current &= ~written
                if let r = loadsCurrentTask(insn, operands, slot: state.pointee.currentTaskSlot) { current |= 1 << r.rawValue }
                // A later access may not join a check that runs before a way out
                // of the block (a branch, a fault that goes to a fixup): it might
                // never happen. (Elided jumps end the stretch too: the slow path
                // walks the joined instructions in address order.)
                if insn.controlFlow != .none || block.pointee.faultsToFixup(i) {
                    open.close()
                    stretchStart = i + 1
                }
            }
            if insn.isRepeated, let (kind, element) = RepString.kind(insn.mnemonic) {
                // A whole rep string operation: its ranges, in Swift, first, unless
                // they lie outside the direct map (copies to and from user memory).
                let argument = RepString.argument(insn)
                if case .constant(let packed) = argument {
                    // The ranges repStringCheck checks: rsi's and rdi's for movs,
                    // rsi's for lods, rdi's for the rest.
                    let check = InlineCheck(
                        memory: AsmMemory(base: .register(kind == .load ? .rsi : .rdi)), emitter: emitRepFastPath,
                        emitterData: UnsafeMutableRawPointer(state),
                        argument: (kind == .move ? 1 : 0)
                            | (kind == .move || kind == .store ? UInt64(element) << 8 : 0),
                        slowFunction: address(of: repStringCheck), slowArgument: packed, temporaries: 1)
                    block.pointee.insert(.inlineCheck(check), before: i)
                } else {
                    block.pointee.insert(.cleanCall(function: address(of: repStringCheck), argument: argument), before: i)
                }
                state.pointee.statistics.checksInserted += 1
                continue
            }
            guard let m = checkedOperand(insn, operands) else { continue }
            // The running task's own task_struct: live as long as it runs.
            if case .register(let base) = m.memory.base, m.memory.index == nil, current & (1 << base.rawValue) != 0,
               m.memory.displacement >= 0, Int(m.memory.displacement) + m.size <= state.pointee.taskStructBytes {
                continue
            }
            // Bytes an earlier check in this block already covered, through the
            // same registers unchanged since: shadow changes only in the
            // allocator's hooks, which run at block starts.
            if covered.contains(m.memory, size: m.size) { continue }
            covered.add(m.memory, size: m.size)
            // (A displacement within 64 bytes of +-2 GiB is no heap access.)
            guard m.memory.displacement > Int32.min + 64 && m.memory.displacement < Int32.max - 64 else { continue }
            if let k = open.joinable(m.memory, size: m.size, at: i) {
                // Joins an earlier check of this stretch: one check of both ends
                // of the joined bytes.
                let e = open.join(k, m.memory, size: m.size)
                var first = m.memory
                first.displacement = e.low
                let joined = JoinedAccesses(pc: e.pc, instructions: i - e.instruction + 1,
                                            lowOffset: Int(e.low - e.displacement), bytes: Int(e.high - e.low))
                let check = InlineCheck(
                    memory: first, emitter: emitFastPath, emitterData: UnsafeMutableRawPointer(state),
                    argument: UInt64(e.high - e.low) | bothEnds, slowFunction: address(of: slowPath),
                    slowArgument: joined.argument, temporaries: flat ? 1 : 2)
                block.pointee.replace(e.entry, with: .inlineCheck(check))
                continue
            }
            // Up to 8 bytes: one granule, the last byte's, whose address the
            // translator's lea computes; wider: the first byte's address too.
            var last = m.memory
            let wide = m.size > 8
            if !wide { last.displacement = m.memory.displacement + Int32(m.size - 1) }
            let check = InlineCheck(
                memory: last, emitter: emitFastPath, emitterData: UnsafeMutableRawPointer(state),
                argument: UInt64(m.size), slowFunction: address(of: slowPath), slowArgument: insn.address,
                temporaries: (wide ? 1 : 0) + (flat ? 0 : 1))
            let at = flagsDeadPlace(block, for: m.memory, before: i, stretchStart: stretchStart)
            if let entry = block.pointee.insert(.inlineCheck(check), before: at), JoinedAccesses.fits(insn.address) {
                open.add(m.memory, size: m.size, at: i, pc: insn.address, entry: entry)
            }
            state.pointee.statistics.checksInserted += 1
        }
    }

    /// Where a check of `memory` for instruction `index` goes: before it, unless
    /// the arithmetic flags are live there (saving them costs 6 instructions) and
    /// an earlier place in the same straight stretch has them dead, with the
    /// operand's registers unchanged from there on (the check computes the same
    /// address) and no instruction between that may leave the block.
    static func flagsDeadPlace(_ block: UnsafeMutablePointer<InstrumentedBlock>, for memory: AsmMemory,
                               before index: Int, stretchStart: Int) -> Int {
        guard !block.pointee.arithmeticFlagsDead(before: index) else { return index }
        let uses = memory.registersUsed
        var operands = Operands()
        var j = index - 1
        while j >= stretchStart {
            let insn = block.pointee[j]
            Decoder.decodeOperands(insn, into: &operands)
            // The check would run before instruction j: j must not change the
            // address, nor be a way out of the block.
            guard Decoder.registerAccesses(insn, operands: operands).gprWritten & uses == 0,
                  insn.controlFlow == .none, !block.pointee.faultsToFixup(j) else { break }
            if block.pointee.arithmeticFlagsDead(before: j) { return j }
            j -= 1
        }
        return index
    }

    /// The register `mov r64, %gs:slot` loads (the running task's pointer, when
    /// `slot` is current_task's), or nil.
    static func loadsCurrentTask(_ insn: Instruction, _ operands: Operands, slot: Int64) -> GPR? {
        guard slot >= 0, insn.mnemonic == .mov, operands.count == 2 else { return nil }
        let destination = operands[0], source = operands[1]
        guard destination.type == .register, destination.reg.cls == .gpr64, source.type == .memory,
              source.mem.segment == 5, source.mem.base.cls == .none, source.mem.index.cls == .none,
              source.mem.disp == slot else { return nil }
        return GPR(rawValue: destination.reg.index)
    }

    /// In an inline check's argument (besides the size): check the first byte's
    /// granule and the last byte's (a joined check).
    static let bothEnds: UInt64 = 0x100

    static func address(of function: @convention(c) (UnsafeMutableRawPointer?, UInt64) -> Void) -> UInt64 {
        UInt64(UInt(bitPattern: unsafeBitCast(function, to: UnsafeRawPointer.self)))
    }

    /// The operand an instruction's check covers, with its size, or nil for
    /// accesses that cannot be heap: the stack (rsp-based), globals (RIP-relative,
    /// absolute), per-CPU data (%gs), and non-accesses (lea, nop, prefetch).
    static func checkedOperand(_ insn: Instruction, _ operands: Operands) -> (memory: AsmMemory, size: Int, write: Bool)? {
        switch insn.mnemonic {
        case .lea, .nop, .prefetch, .prefetchw, .prefetchnta, .prefetcht0, .prefetcht1, .prefetcht2, .invlpg,
             .clflush, .clflushopt, .clwb, .cldemote, .prefetchwt1:
            return nil
        default:
            break
        }
        for k in 0..<operands.count {
            let o = operands[k]
            guard o.type == .memory, o.isRead || o.isWritten else { continue }
            let mem = o.mem
            if mem.segment == 4 || mem.segment == 5 { return nil }
            guard mem.base.cls == .gpr64, let base = GPR(rawValue: mem.base.index), base != .rsp else { return nil }
            var index: GPR? = nil
            if mem.index.cls == .gpr64 {
                index = GPR(rawValue: mem.index.index)
            } else if mem.index.cls != .none {
                return nil  // vector index (gather/scatter)
            }
            guard mem.disp >= Int64(Int32.min) && mem.disp <= Int64(Int32.max) else { return nil }
            let size = Int(mem.size)
            guard size > 0 else { return nil }
            return (AsmMemory(base: .register(base), index: index, scale: mem.scale == 0 ? 1 : mem.scale,
                              displacement: Int32(mem.disp)), min(size, 64), o.isWritten)
        }
        return nil
    }

    /// The fast path: page in the direct map, the last byte's granule clean in
    /// its page's shadow (a shared clean chunk for pages without), and for
    /// accesses over 8 bytes the first byte's too: 10 instructions with the
    /// address's `lea` (one granule). Like KASAN's checks of 1- to 8-byte accesses,
    /// one granule: the last byte's catches overflows to the right, and a use
    /// after free or an access left of an object has its last byte poisoned as
    /// well (only an unaligned access straddling an object's left edge is
    /// missed). Up to 8 bytes the translator's lea computes the last byte's
    /// address, and the check takes one temporary: the address register becomes
    /// the granule index (the slow path computes the address again, from the
    /// instruction). Wider accesses keep the first byte's address and take two.
    static let emitFastPath: InlineCheckEmitter = { data, raw in
        let state = data!.assumingMemoryBound(to: HeapCheckState.self)
        let site = InlineCheckSite.from(raw)
        let size = Int32(site.pointee.argument & 0xFF)
        let oneGranule = size <= 8 && site.pointee.argument & bothEnds == 0
        if let flat = state.pointee.flatShadow {
            emitFlatFastPath(site, flat: flat, pages: state.pointee.directMapPages, size: size, oneGranule: oneGranule)
            return
        }
        let address = site.pointee.address, page = site.pointee.temporary0
        let table = Int32(truncatingIfNeeded: Int64(bitPattern: UInt64(UInt(bitPattern: state.pointee.pageShadow))))
        emitPageIndex(state, site, of: address, into: page)
        site.pointee.done(if: .ae)
        // The page's biased chunk: its shadow byte for an address is at
        // word + (address >> 3) (pages without shadow read a clean chunk).
        site.pointee.assembler.mov(page, AsmMemory(base: .absolute, index: page, scale: 8, displacement: table))
        if oneGranule {
            site.pointee.assembler.shr(address, 3)
            site.pointee.assembler.testByte(AsmMemory(base: .register(page), index: address, scale: 1), imm8: 0xFF)
            site.pointee.slowPath(if: .ne)
            return
        }
        // Wider, or joined: the first byte's granule, then the last byte's (read
        // past the page's chunk when the access straddles a page: a dirty byte
        // there only costs a slow path).
        let granule = site.pointee.temporary1
        for k in 0..<2 {
            if k == 0 {
                site.pointee.assembler.mov(granule, address)
            } else {
                site.pointee.assembler.lea(granule, .at(address, size - 1))
            }
            site.pointee.assembler.shr(granule, 3)
            site.pointee.assembler.testByte(AsmMemory(base: .register(page), index: granule, scale: 1), imm8: 0xFF)
            site.pointee.slowPath(if: .ne)
        }
    }

    /// The fast path over the flat shadow: the address's offset in the direct
    /// map, over 8, indexes the shadow directly. One granule: 6 instructions after
    /// the translator's lea, and no temporary (the address register becomes the
    /// offset); both ends: one temporary for the last byte.
    static func emitFlatFastPath(_ site: UnsafeMutablePointer<InlineCheckSite>, flat: UnsafeMutablePointer<UInt8>,
                                 pages: UInt64, size: Int32, oneGranule: Bool) {
        let cells = UnsafeRawPointer(flat + FlatShadow.constants(pages: pages))
        let shadow = absolute(flat)
        let offset = site.pointee.address
        site.pointee.assembler.sub(offset, AsmMemory(base: .absolute, displacement: absolute(cells)))
        site.pointee.assembler.cmp(offset, AsmMemory(base: .absolute, displacement: absolute(cells + 8)))
        site.pointee.done(if: .ae)
        if !oneGranule {
            // The last byte's granule (past the end of the shadow only into its pad).
            let last = site.pointee.temporary0
            site.pointee.assembler.lea(last, .at(offset, size - 1))
            site.pointee.assembler.shr(last, 3)
            site.pointee.assembler.testByte(AsmMemory(base: .absolute, index: last, scale: 1, displacement: shadow), imm8: 0xFF)
            site.pointee.slowPath(if: .ne)
        }
        site.pointee.assembler.shr(offset, 3)
        site.pointee.assembler.testByte(AsmMemory(base: .absolute, index: offset, scale: 1, displacement: shadow), imm8: 0xFF)
        site.pointee.slowPath(if: .ne)
    }

    /// The 32-bit absolute displacement of a module-space address.
    static func absolute(_ p: UnsafeRawPointer) -> Int32 {
        Int32(truncatingIfNeeded: Int64(bitPattern: UInt64(UInt(bitPattern: p))))
    }

    /// A rep string instruction's fast path: nothing to check when its ranges
    /// start outside the direct map (user memory, vmalloc, the kernel image: no
    /// range runs from there into the direct map); otherwise the clean call
    /// checks them whole, but for stos and movs over the flat shadow, whose
    /// shadow is scanned inline (`emitFlatRepScan`). `argument` bit 0: rsi's
    /// range too (movs); bits 8-15: the element size (stos, movs).
    static let emitRepFastPath: InlineCheckEmitter = { data, raw in
        let state = data!.assumingMemoryBound(to: HeapCheckState.self)
        let site = InlineCheckSite.from(raw)
        let move = site.pointee.argument & 1 != 0
        let element = Int((site.pointee.argument >> 8) & 0xFF)
        if let flat = state.pointee.flatShadow, element != 0 {
            emitFlatRepScan(site, flat: flat, pages: state.pointee.directMapPages, element: element, move: move)
            return
        }
        for k in 0...(move ? 1 : 0) {
            emitPageIndex(state, site, of: k == 0 ? site.pointee.address : .rsi, into: site.pointee.temporary0)
            site.pointee.slowPath(if: .b)
        }
    }

    /// Bytes a rep string may cover and still be checked inline.
    static let repScanBytes = 4096

    /// stos and movs of up to `repScanBytes` bytes over the flat shadow: each
    /// range in the direct map has its shadow scanned inline, 32 granules a step,
    /// then eight, the last step overlapping the one before so that it ends at the
    /// range's last granule (ranges of under eight granules read a little past
    /// their end). Any non-zero shadow byte, a longer range, or the direction
    /// flag set (memmove copying down) takes the clean call, whose precise check
    /// decides: what passes here the precise check passes too. Most rep strings
    /// are the kernel's own memsets and copies of whole objects (init_on_alloc,
    /// struct copies, pipe and page-cache copies), a clean call each before.
    static func emitFlatRepScan(_ site: UnsafeMutablePointer<InlineCheckSite>, flat: UnsafeMutablePointer<UInt8>,
                                pages: UInt64, element: Int, move: Bool) {
        let cells = UnsafeRawPointer(flat + FlatShadow.constants(pages: pages))
        let shadow = absolute(flat)
        let a = site.pointee.address, t = site.pointee.temporary0
        // Branches to `bad` (a dirty shadow word), patched once it is placed: the
        // site takes eight branches, the scan needs more.
        var toBad: InlineArray<16, Int> = InlineArray(repeating: 0)
        var badCount = 0
        func jumpIfDirty(_ at: AsmMemory) {
            site.pointee.assembler.cmp(at, imm8: 0)
            toBad[badCount] = site.pointee.assembler.count
            badCount += 1
            site.pointee.assembler.jcc(.ne, to: site.pointee.assembler.address)
        }
        func word(_ index: GPR, _ offset: Int32 = 0) -> AsmMemory {
            AsmMemory(base: .absolute, index: index, scale: 1, displacement: shadow &+ offset)
        }
        // jcc rel32 is 0F 8x disp32: the displacement ends it.
        func patch(_ jcc: Int, to target: UInt64) {
            let end = site.pointee.assembler.origin + UInt64(jcc + 6)
            site.pointee.assembler.patch32(at: jcc + 2, UInt32(truncatingIfNeeded: target &- end))
        }
        site.pointee.assembler.pushf()
        site.pointee.assembler.pop(t)
        site.pointee.assembler.and(t, imm32: 0x400)  // DF
        site.pointee.slowPath(if: .ne)
        site.pointee.assembler.cmp(.rcx, imm32: Int32(repScanBytes / element))
        site.pointee.slowPath(if: .a)
        let ranges = move ? 2 : 1
        for k in 0..<ranges {
            if k == 1 { site.pointee.assembler.mov(a, .rsi) }  // movs: rdi's range first, then rsi's
            site.pointee.assembler.sub(a, AsmMemory(base: .absolute, displacement: absolute(cells)))
            site.pointee.assembler.cmp(a, AsmMemory(base: .absolute, displacement: absolute(cells + 8)))
            // Outside the direct map: nothing to check in this range.
            var skip = -1
            if k == ranges - 1 {
                site.pointee.done(if: .ae)
            } else {
                skip = site.pointee.assembler.count
                site.pointee.assembler.jcc(.ae, to: site.pointee.assembler.address)  // patched below
            }
            // a = the first granule's shadow index f; t = max(last - 7, f): where
            // the last eight-granule step starts.
            site.pointee.assembler.lea(t, AsmMemory(base: .register(a), index: .rcx, scale: UInt8(element), displacement: -1))
            site.pointee.assembler.shr(a, 3)
            site.pointee.assembler.shr(t, 3)
            site.pointee.assembler.lea(t, .at(t, -7))
            site.pointee.assembler.cmp(t, a)
            // jge rel32 (6 bytes) over `mov t, a` (3 bytes: REX.W 89 /r).
            site.pointee.assembler.jcc(.ge, to: site.pointee.assembler.address + 6 + 3)
            site.pointee.assembler.mov(t, a)
            // 32 granules a step while a + 31 < last (t - 25, signed: below 0 for
            // short ranges), then eight a step up to t, then t's eight.
            site.pointee.assembler.lea(t, .at(t, -25))
            let bulk = site.pointee.assembler.address
            site.pointee.assembler.cmp(a, t)
            let toTail = site.pointee.assembler.count
            site.pointee.assembler.jcc(.g, to: site.pointee.assembler.address)
            for step in 0..<4 { jumpIfDirty(word(a, Int32(8 * step))) }
            site.pointee.assembler.add(a, imm32: 32)
            site.pointee.assembler.jmp(to: bulk)
            patch(toTail, to: site.pointee.assembler.address)
            site.pointee.assembler.lea(t, .at(t, 25))
            let tail = site.pointee.assembler.address
            site.pointee.assembler.cmp(a, t)
            let toLast = site.pointee.assembler.count
            site.pointee.assembler.jcc(.ge, to: site.pointee.assembler.address)
            jumpIfDirty(word(a))
            site.pointee.assembler.add(a, imm32: 8)
            site.pointee.assembler.jmp(to: tail)
            patch(toLast, to: site.pointee.assembler.address)
            jumpIfDirty(word(t))
            if skip >= 0 { patch(skip, to: site.pointee.assembler.address) }
        }
        // Clean: the last compare left ZF set. A dirty word arrives with it clear.
        site.pointee.done(if: .e)
        let bad = site.pointee.assembler.address
        for i in 0..<badCount { patch(toBad[i], to: bad) }
        site.pointee.slowPath(if: .ne)
    }

    /// `page` = the direct-map page index of the address in `register`, compared
    /// with the page count: below (`b`) inside the direct map, else outside.
    static func emitPageIndex(_ state: UnsafeMutablePointer<HeapCheckState>, _ site: UnsafeMutablePointer<InlineCheckSite>,
                              of register: GPR, into page: GPR) {
        site.pointee.assembler.mov(page, imm64: 0 &- state.pointee.directMapBase)
        site.pointee.assembler.add(page, register)
        site.pointee.assembler.shr(page, 12)
        site.pointee.assembler.cmp(page, imm32: Int32(truncatingIfNeeded: state.pointee.directMapPages))
    }

    // MARK: shadow

    @inline(__always) static func pageIndex(_ s: UnsafeMutablePointer<HeapCheckState>, _ address: UInt64) -> Int? {
        let page = (address &- s.pointee.directMapBase) >> 12
        return page < s.pointee.directMapPages ? Int(page) : nil
    }

    /// The page-table word for `page` with shadow `chunk`: the chunk's address
    /// less the page's address over 8, so that the fast path reaches an
    /// address's shadow byte at word + (address >> 3) with no masking.
    static func tableWord(_ directMapBase: UInt64, page: Int, chunk: UnsafeMutablePointer<UInt8>) -> UInt64 {
        UInt64(UInt(bitPattern: chunk)) &- ((directMapBase &+ UInt64(page) << 12) >> 3)
    }

    /// The shadow chunk of `page`; nil when the page has none.
    @inline(__always) static func chunk(_ s: UnsafeMutablePointer<HeapCheckState>, page: Int) -> UnsafeMutablePointer<UInt8>? {
        let bias = (s.pointee.directMapBase &+ UInt64(page) << 12) >> 3
        let chunk = UnsafeMutablePointer<UInt8>(bitPattern: UInt(s.pointee.pageShadow[page] &+ bias))!
        return chunk == s.pointee.cleanChunk ? nil : chunk
    }

    /// The shadow byte of `address`: nil when nothing is known there.
    static func shadowByte(_ s: UnsafeMutablePointer<HeapCheckState>, _ address: UInt64) -> UInt8? {
        guard let page = pageIndex(s, address), let chunk = chunk(s, page: page) else { return nil }
        return chunk[Int((address & 0xFFF) >> 3)]
    }

    /// Makes sure the page of `address` has shadow (new chunks read "unknown":
    /// accessible). False when out of chunks or outside the direct map.
    static func ensureShadow(_ s: UnsafeMutablePointer<HeapCheckState>, _ address: UInt64, kind: UInt8) -> Bool {
        guard let page = pageIndex(s, address) else { return false }
        if chunk(s, page: page) != nil {
            if kind != ShadowPageKind.shared { s.pointee.pageKind[page] = kind }
            return true
        }
        let chunk: UnsafeMutablePointer<UInt8>
        if let flat = s.pointee.flatShadow {
            chunk = flat + page * chunkBytes  // zeroed, and never written before
        } else {
            guard s.pointee.chunksUsed < s.pointee.limits.shadowChunks else { return false }
            chunk = s.pointee.chunks + s.pointee.chunksUsed * chunkBytes
            s.pointee.chunksUsed += 1
            chunk.initialize(repeating: 0, count: chunkBytes)
        }
        s.pointee.pageKind[page] = kind
        s.pointee.pageShadow[page] = tableWord(s.pointee.directMapBase, page: page, chunk: chunk)
        return true
    }

    /// Shadow for every page of [start, start+bytes).
    static func ensureShadow(_ s: UnsafeMutablePointer<HeapCheckState>, _ start: UInt64, _ bytes: UInt64, kind: UInt8) -> Bool {
        var page = start & ~0xFFF
        while page < start &+ bytes {
            if !ensureShadow(s, page, kind: kind) { return false }
            page &+= 4096
        }
        return true
    }

    /// Sets the shadow of [start, start+bytes) (granule-aligned start) to `value`
    /// where shadow exists.
    static func fill(_ s: UnsafeMutablePointer<HeapCheckState>, _ start: UInt64, _ bytes: UInt64, _ value: UInt8) {
        if let run = shadowRun(s, start, bytes) {
            fillRun(run, value, Int((bytes &+ 7) >> 3))
        } else {
            fillByPage(s, start, bytes, value)
        }
    }

    /// The shadow of [start, start+bytes) when it is one run of bytes: always in
    /// the flat shadow, within a page with chunks. nil: elsewhere, or no shadow.
    @inline(__always) static func shadowRun(_ s: UnsafeMutablePointer<HeapCheckState>, _ start: UInt64,
                                            _ bytes: UInt64) -> UnsafeMutablePointer<UInt8>? {
        guard bytes > 0, let first = pageIndex(s, start) else { return nil }
        let offset = Int((start & 0xFFF) >> 3)
        if let flat = s.pointee.flatShadow {
            guard pageIndex(s, start &+ bytes &- 1) != nil else { return nil }
            return flat + first * chunkBytes + offset
        }
        guard (start &+ bytes &- 1) >> 12 == start >> 12, let chunk = chunk(s, page: first) else { return nil }
        return chunk + offset
    }

    /// `fill` across pages with chunks: a page's run of shadow bytes at a time.
    @inline(never) static func fillByPage(_ s: UnsafeMutablePointer<HeapCheckState>, _ start: UInt64, _ bytes: UInt64,
                                          _ value: UInt8) {
        var a = start
        let end = start &+ bytes
        while a < end {
            let stop = min(end, (a | 0xFFF) &+ 1)
            if let page = pageIndex(s, a), let chunk = chunk(s, page: page) {
                fillRun(chunk + Int((a & 0xFFF) >> 3), value, Int((stop &- a &+ 7) >> 3))
            }
            a = stop
        }
    }

    /// `count` shadow bytes from `p`: a memset, which the kernel build points at
    /// kmod/memory.c (eight bytes a step).
    @inline(__always) static func fillRun(_ p: UnsafeMutablePointer<UInt8>, _ value: UInt8, _ count: Int) {
        p.update(repeating: value, count: count)
    }

    /// Object [start, start+size) accessible, the rest of its slot `redzone`.
    static func shadowLive(_ s: UnsafeMutablePointer<HeapCheckState>, _ o: HeapObject, redzone: UInt8) {
        let used = (o.size &+ 7) & ~7
        let slot = max(o.slot, used)
        guard let run = shadowRun(s, o.start, slot) else {
            fillByPage(s, o.start, o.size & ~7, 0)
            if o.size & 7 != 0 { fillByPage(s, o.start &+ (o.size & ~7), 8, UInt8(o.size & 7)) }
            if slot > used && redzone != 0 { fillByPage(s, o.start &+ used, slot &- used, redzone) }
            return
        }
        let full = Int(o.size >> 3)
        fillRun(run, 0, full)
        if o.size & 7 != 0 { run[full] = UInt8(o.size & 7) }
        if slot > used && redzone != 0 { fillRun(run + Int(used >> 3), redzone, Int((slot &- used) >> 3)) }
    }

    // MARK: object table (linear probing, backward-shift deletion)

    @inline(__always) static func home(_ s: UnsafeMutablePointer<HeapCheckState>, _ start: UInt64) -> Int {
        Int(truncatingIfNeeded: ((start >> 3) &* 0x9E37_79B9_7F4A_7C15) >> 20) & (s.pointee.limits.objects - 1)
    }

    static func find(_ s: UnsafeMutablePointer<HeapCheckState>, _ start: UInt64) -> Int? {
        let mask = s.pointee.limits.objects - 1
        var i = home(s, start)
        while s.pointee.objects[i].start != 0 {
            if s.pointee.objects[i].start == start { return i }
            i = (i + 1) & mask
        }
        return nil
    }

    static func insert(_ s: UnsafeMutablePointer<HeapCheckState>, _ o: HeapObject) -> Bool {
        let mask = s.pointee.limits.objects - 1
        // One probe: the entry for `start` if there is one, else the first empty
        // slot (no tombstones, so the run ends there).
        var i = home(s, o.start)
        while s.pointee.objects[i].start != 0 {
            if s.pointee.objects[i].start == o.start {
                s.pointee.objects[i] = o  // a stale entry (its free went unseen)
                return true
            }
            i = (i + 1) & mask
        }
        guard s.pointee.objectCount * 4 < s.pointee.limits.objects * 3 else { return false }
        s.pointee.objects[i] = o
        s.pointee.objectCount += 1
        return true
    }

    static func remove(_ s: UnsafeMutablePointer<HeapCheckState>, at slot: Int) {
        let mask = s.pointee.limits.objects - 1
        var hole = slot
        var i = (slot + 1) & mask
        while s.pointee.objects[i].start != 0 {
            let h = home(s, s.pointee.objects[i].start)
            // Move entry i into the hole unless its home lies cyclically in (hole, i].
            let stays = hole <= i ? (h > hole && h <= i) : (h > hole || h <= i)
            if !stays {
                s.pointee.objects[hole] = s.pointee.objects[i]
                hole = i
            }
            i = (i + 1) & mask
        }
        s.pointee.objects[hole] = HeapObject()
        s.pointee.objectCount -= 1
    }

    /// Room for one more object (checked before an allocation is redirected).
    public static func hasRoom(_ s: UnsafeMutablePointer<HeapCheckState>) -> Bool {
        s.pointee.objectCount * 4 < s.pointee.limits.objects * 3 - 64
            && (s.pointee.flatShadow != nil || s.pointee.chunksUsed + 8 < s.pointee.limits.shadowChunks)
    }

    /// The tracked object whose slot contains `address`, searching back at most
    /// `reach` bytes (report paths only).
    static func containing(_ s: UnsafeMutablePointer<HeapCheckState>, _ address: UInt64, reach: UInt64) -> Int? {
        var candidate = address & ~7
        let lowest = address &- reach
        while candidate >= lowest && candidate != 0 {
            if let i = find(s, candidate), address < candidate &+ s.pointee.objects[i].slot { return i }
            candidate &-= 8
        }
        return nil
    }

    // MARK: stacks

    /// Records a stack, deduplicated; its handle (index + 1), 0 when the depot is full.
    static func saveStack(_ s: UnsafeMutablePointer<HeapCheckState>, _ frames: UnsafePointer<UInt64>, _ depth: Int) -> UInt32 {
        guard depth > 0 else { return 0 }
        let words = 2 + s.pointee.limits.stackDepth
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for k in 0..<depth { hash = (hash ^ frames[k]) &* 0x100_0000_01B3 }
        hash |= 1
        let mask = s.pointee.limits.stacks - 1
        var i = Int(truncatingIfNeeded: hash >> 7) & mask
        for _ in 0..<s.pointee.limits.stacks {
            let entry = s.pointee.stackWords + i * words
            if entry[0] == 0 {
                guard s.pointee.stacksUsed * 4 < s.pointee.limits.stacks * 3 else { break }
                entry[0] = hash
                entry[1] = UInt64(depth)
                for k in 0..<depth { entry[2 + k] = frames[k] }
                s.pointee.stacksUsed += 1
                return UInt32(i + 1)
            }
            if entry[0] == hash && entry[1] == UInt64(depth) {
                var same = true
                for k in 0..<depth where entry[2 + k] != frames[k] { same = false }
                if same { return UInt32(i + 1) }
            }
            i = (i + 1) & mask
        }
        s.pointee.statistics.stacksDropped += 1
        return 0
    }

    /// The stack of the current call or access (`sp`/`bp` are the application's).
    /// After a call has returned (`returnAddress` not 0; `sp` its entry stack
    /// pointer), the walk starts in the caller: the slot that held the return
    /// address is below the stack pointer by then, and an interrupt may have
    /// overwritten it. `cpu`: the current one (its memo table).
    static func captureStack(_ s: UnsafeMutablePointer<HeapCheckState>, pc: UInt64, sp: UInt64, bp: UInt64,
                             returnAddress: UInt64 = 0, cpu: UInt32) -> UInt32 {
        // The caller is part of the key: functions free from many places at one depth.
        let caller = returnAddress != 0 ? returnAddress : stackWord(sp)
        let set = memoSet(s, cpu: cpu, pc: pc, sp: sp, caller: caller)
        if let set {
            for way in 0..<StackMemoEntry.ways {
                let e = set + way
                if e.pointee.handle != 0, e.pointee.pc == pc, e.pointee.sp == sp, e.pointee.caller == caller,
                   memoHolds(e, bp: bp) {
                    s.pointee.statistics.stackMemoHits &+= 1
                    return e.pointee.handle
                }
            }
        }
        return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: FindingLayout.maxFrames + StackMemoEntry.maxReads) { buffer in
            let frames = buffer.baseAddress!
            let reads = frames + FindingLayout.maxFrames
            var count = Int32(StackMemoEntry.maxReads)
            let capacity = s.pointee.limits.stackDepth
            var depth: Int
            if returnAddress != 0 && capacity > 1 {
                frames[0] = pc
                depth = 1 + Int(s.pointee.host.captureStack(returnAddress, sp &+ 8, bp, frames + 1, Int32(capacity - 1),
                                                            reads, &count))
            } else {
                depth = Int(s.pointee.host.captureStack(pc, sp, bp, frames, Int32(capacity), reads, &count))
            }
            let handle = saveStack(s, frames, min(max(depth, 0), capacity))
            if let set, handle != 0, count >= 0, Int(count) <= StackMemoEntry.maxReads {
                // Over the way used less recently.
                let way = Int(set.pointee.nextWay) % StackMemoEntry.ways
                let e = set + way
                e.pointee.pc = pc
                e.pointee.sp = sp
                e.pointee.caller = caller
                e.pointee.usesBP = false
                e.pointee.bp = bp
                var n = 0
                for k in 0..<Int(count) {
                    if reads[k] == StackMemoEntry.bpRegister {
                        e.pointee.usesBP = true
                    } else {
                        e.pointee.address[n] = reads[k]
                        e.pointee.value[n] = stackWord(reads[k])
                        n += 1
                    }
                }
                e.pointee.reads = Int32(n)
                e.pointee.handle = handle
                set.pointee.nextWay = UInt8((way + 1) % StackMemoEntry.ways)
            }
            return handle
        }
    }

    /// The memo set (`StackMemoEntry.ways` entries) for a stack from (pc, sp, caller) on `cpu`;
    /// nil for CPUs without a table.
    static func memoSet(_ s: UnsafeMutablePointer<HeapCheckState>, cpu: UInt32, pc: UInt64, sp: UInt64,
                        caller: UInt64) -> UnsafeMutablePointer<StackMemoEntry>? {
        let ways = StackMemoEntry.ways
        let sets = s.pointee.limits.stackMemoEntries / ways
        guard Int(cpu) < s.pointee.limits.stackMemoCPUs, sets > 0 else { return nil }
        let hash = (pc ^ caller &* 0x9E37_79B9_7F4A_7C15 ^ (sp >> 3)) &* 0xFF51_AFD7_ED55_8CCD
        return s.pointee.stackMemo + Int(cpu) * ways * sets + ways * (Int(truncatingIfNeeded: hash >> 40) & (sets - 1))
    }

    /// Whether every word the remembered walk read holds its value still. Two
    /// words a step, differences or-ed together: nearly every entry checked is
    /// the one that holds (a tenth of a stack's cost went to this loop's
    /// bounds and branches).
    static func memoHolds(_ e: UnsafeMutablePointer<StackMemoEntry>, bp: UInt64) -> Bool {
        if e.pointee.usesBP && e.pointee.bp != bp { return false }
        let n = min(Int(e.pointee.reads), StackMemoEntry.maxReads)
        let raw = UnsafeRawPointer(e)
        let addresses = (raw + MemoryLayout<StackMemoEntry>.offset(of: \.address)!).assumingMemoryBound(to: UInt64.self)
        let values = (raw + MemoryLayout<StackMemoEntry>.offset(of: \.value)!).assumingMemoryBound(to: UInt64.self)
        var differ: UInt64 = 0
        var k = 0
        while k &+ 1 < n {
            differ |= (stackWord(addresses[k]) ^ values[k]) | (stackWord(addresses[k &+ 1]) ^ values[k &+ 1])
            k &+= 2
        }
        if k < n { differ |= stackWord(addresses[k]) ^ values[k] }
        return differ == 0
    }

    /// A stack word the walk read (on the stack the same sp is on: mapped; never 0).
    @inline(__always) static func stackWord(_ address: UInt64) -> UInt64 {
        UnsafeRawPointer(bitPattern: UInt(address)).unsafelyUnwrapped.loadUnaligned(as: UInt64.self)
    }

    // MARK: allocation and free (called by the host's wraps)

    /// The size class for a request of `size` bytes plus the redzone, or nil.
    /// `naturallyAligned` (power-of-two requests, which kmalloc aligns to their
    /// size): only power-of-two classes, which are aligned to theirs.
    public static func sizeClass(_ s: UnsafeMutablePointer<HeapCheckState>, for size: UInt64,
                                 naturallyAligned: Bool) -> Int? {
        let needed = size &+ s.pointee.redzone
        guard size > 0 && needed > size else { return nil }
        for c in 0..<s.pointee.classCount where s.pointee.classSize[c] >= needed {
            let classSize = s.pointee.classSize[c]
            if naturallyAligned && classSize & (classSize - 1) != 0 { continue }
            return c
        }
        return nil
    }

    /// Tracks an object just allocated. `origin` is HeapObject.fromClass (with
    /// `sizeClass`), fromNamedCache (with `cache`) or fromPages (with `slot`).
    public static func track(_ s: UnsafeMutablePointer<HeapCheckState>, _ call: UnsafeMutablePointer<WrapCall>,
                             start: UInt64, size: UInt64, origin: UInt8, sizeClass: Int, cache: UInt64, slot: UInt64) {
        guard start > 4096 else { return }
        var o = HeapObject()
        o.start = start
        o.size = size
        o.origin = origin
        o.state = HeapObject.live
        o.cache = cache
        o.slot = slot
        if origin == HeapObject.fromClass {
            o.sizeClass = UInt8(sizeClass)
            o.slot = s.pointee.classSize[sizeClass]
        }
        var comm: InlineArray<16, UInt8> = InlineArray(repeating: 0)
        var pid: UInt32 = 0
        o.allocCPU = s.pointee.host.currentTask(&pid, &comm[0])
        o.allocPid = pid
        s.pointee.host.lock()
        defer { s.pointee.host.unlock() }
        // Under the lock: the stack depot is shared (the memo, per CPU, nearly
        // always answers, for less than another lock round trip would cost).
        o.allocStack = captureStack(s, pc: call.pointee.function, sp: call.pointee.entryStackPointer,
                                    bp: call.pointee.register(.rbp), returnAddress: call.pointee.returnAddress,
                                    cpu: o.allocCPU)
        let kind = origin == HeapObject.fromClass ? ShadowPageKind.ownClass(sizeClass) : ShadowPageKind.shared
        guard ensureShadow(s, o.start, o.slot, kind: kind), insert(s, o) else {
            s.pointee.statistics.untracked += 1
            return
        }
        shadowLive(s, o, redzone: origin == HeapObject.fromNamedCache ? 0
                   : (origin == HeapObject.fromPages ? ShadowByte.pageRedzone : ShadowByte.slabRedzone))
        s.pointee.statistics.tracked += 1
    }

    /// A free (kfree, kmem_cache_free) of `pointer`, called from the wrap's pre
    /// hook. True when heapcheck keeps the object (quarantined, or the free was
    /// bad and reported): the allocator must not see it. False: not ours, let the
    /// allocator have it. One lock round trip: the free stack is taken under the
    /// lock, and the objects the quarantine gives back are taken out with it.
    public static func free(_ s: UnsafeMutablePointer<HeapCheckState>, _ call: UnsafeMutablePointer<WrapCall>,
                            pointer: UInt64) -> Bool {
        guard pointer > 4096 else { return false }  // NULL and ZERO_SIZE_PTR
        let sp = call.pointee.entryStackPointer
        let bp = call.pointee.register(.rbp)
        s.pointee.host.lock()
        guard let i = find(s, pointer) else {
            // Untracked: an object from before this attach, or a pointer into a
            // tracked one (an invalid free). Only heapcheck's own classes are
            // searched, and only one slot back: elsewhere an untracked pointer
            // is simply not ours.
            var inside: HeapObject? = nil
            if let page = pageIndex(s, pointer), let c = ShadowPageKind.sizeClass(s.pointee.pageKind[page]),
               let j = containing(s, pointer, reach: s.pointee.classSize[c]) {
                inside = s.pointee.objects[j]
            }
            s.pointee.host.unlock()
            guard let object = inside else { return false }
            report(s, kind: .invalidFree, address: pointer, size: 0, write: false, pc: call.pointee.function,
                   sp: sp, bp: bp, object: object)
            return true
        }
        if s.pointee.objects[i].state == HeapObject.quarantined {
            let o = s.pointee.objects[i]
            s.pointee.host.unlock()
            report(s, kind: .doubleFree, address: pointer, size: 0, write: false, pc: call.pointee.function,
                   sp: sp, bp: bp, object: o)
            return true
        }
        var comm: InlineArray<16, UInt8> = InlineArray(repeating: 0)
        var pid: UInt32 = 0
        let cpu = s.pointee.host.currentTask(&pid, &comm[0])
        let stack = captureStack(s, pc: call.pointee.function, sp: sp, bp: bp, cpu: cpu)
        s.pointee.objects[i].state = HeapObject.quarantined
        s.pointee.objects[i].freePid = pid
        s.pointee.objects[i].freeCPU = cpu
        s.pointee.objects[i].freeStack = stack
        let size = s.pointee.objects[i].size
        fill(s, pointer, (size + 7) & ~7, ShadowByte.slabFree)
        enqueue(s, pointer, size)
        s.pointee.statistics.quarantined += 1
        drainQuarantine(s, lockHeld: true)
        return true
    }

    static func enqueue(_ s: UnsafeMutablePointer<HeapCheckState>, _ pointer: UInt64, _ size: UInt64) {
        let capacity = s.pointee.limits.quarantineEntries
        let tail = (s.pointee.quarantineHead + s.pointee.quarantineCount) & (capacity - 1)
        s.pointee.quarantine[tail] = pointer
        s.pointee.quarantineCount += 1
        s.pointee.quarantineBytes &+= size
    }

    /// Objects out of the quarantine, for the allocator (which is called
    /// without the lock held): (cache, pointer) pairs in a caller's buffer.
    struct ExpiredObjects {
        static let capacity = 8
        static let words = 2 * capacity
        let words: UnsafeMutablePointer<UInt64>
        var count = 0
    }

    /// With the lock held: takes the oldest quarantined objects out, while the
    /// quarantine is over its limits, up to `ExpiredObjects.capacity` of them.
    static func takeExpired(_ s: UnsafeMutablePointer<HeapCheckState>, into expired: inout ExpiredObjects) {
        while expired.count < ExpiredObjects.capacity && s.pointee.quarantineCount > 0
            && (s.pointee.quarantineBytes > s.pointee.quarantineLimit
                || s.pointee.quarantineCount >= s.pointee.limits.quarantineEntries - 1) {
            let pointer = s.pointee.quarantine[s.pointee.quarantineHead]
            s.pointee.quarantineHead = (s.pointee.quarantineHead + 1) & (s.pointee.limits.quarantineEntries - 1)
            s.pointee.quarantineCount -= 1
            guard let i = find(s, pointer) else { continue }
            let o = s.pointee.objects[i]
            s.pointee.quarantineBytes &-= min(o.size, s.pointee.quarantineBytes)
            // The slot goes back to "unknown": the allocator touches free slots.
            fill(s, o.start, (o.slot + 7) & ~7, 0)
            remove(s, at: i)
            s.pointee.statistics.released += 1
            expired.words[2 * expired.count] = o.cache
            expired.words[2 * expired.count + 1] = pointer
            expired.count += 1
        }
    }

    static func release(_ s: UnsafeMutablePointer<HeapCheckState>, _ expired: ExpiredObjects) {
        for k in 0..<expired.count { s.pointee.host.release(expired.words[2 * k], expired.words[2 * k + 1]) }
    }

    /// Gives the oldest quarantined objects back until the quarantine is within
    /// its limits. `lockHeld`: the caller holds the lock, released here (a free
    /// takes its expired objects out in its own lock round trip; inlined there).
    @inline(__always) static func drainQuarantine(_ s: UnsafeMutablePointer<HeapCheckState>, lockHeld: Bool = false) {
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: ExpiredObjects.words) { buffer in
            var locked = lockHeld
            while true {
                var expired = ExpiredObjects(words: buffer.baseAddress!)
                if !locked { s.pointee.host.lock() }
                locked = false
                takeExpired(s, into: &expired)
                s.pointee.host.unlock()
                release(s, expired)
                if expired.count < ExpiredObjects.capacity { return }
            }
        }
    }

    /// Everything in quarantine back to the allocator (detach).
    public static func releaseAll(_ s: UnsafeMutablePointer<HeapCheckState>) {
        s.pointee.quarantineLimit = 0
        drainQuarantine(s)
    }

    /// The size a tracked live object was allocated with (ksize), or nil.
    public static func allocatedSize(_ s: UnsafeMutablePointer<HeapCheckState>, _ pointer: UInt64) -> UInt64? {
        s.pointee.host.lock()
        defer { s.pointee.host.unlock() }
        guard let i = find(s, pointer) else { return nil }
        return s.pointee.objects[i].size
    }

    // MARK: slow paths

    /// An inline check saw a non-zero shadow byte; `argument` is the instruction.
    static let slowPath: @convention(c) (UnsafeMutableRawPointer?, UInt64) -> Void = { context, pc in
        let context = context!
        guard let raw = Translator(context: context).toolData(named: name) else { return }
        let s = raw.assumingMemoryBound(to: HeapCheckState.self)
        s.pointee.statistics.slowPaths &+= 1
        let t = Translator(context: context)
        guard let joined = JoinedAccesses(argument: pc) else {
            guard let access = decodeAccess(t, context, pc) else { return }
            check(s, context, pc: pc, address: access.address, size: UInt64(access.size), write: access.write)
            return
        }
        // A joined check: each access it stands for, checked as its own (the
        // registers they use are the same, unchanged, up to the last of them).
        var at = joined.pc
        var first: AsmMemory? = nil
        var insn = Instruction()
        var operands = Operands()
        for _ in 0..<joined.instructions {
            guard t.decodeOne(at: at, into: &insn) else { return }
            Decoder.decodeOperands(insn, into: &operands)
            if let m = checkedOperand(insn, operands) {
                if first == nil { first = m.memory }
                if let f = first, joined.covers(m.memory, size: m.size, first: f) {
                    check(s, context, pc: at, address: effectiveAddress(m.memory, context), size: UInt64(m.size), write: m.write)
                }
            }
            at = insn.nextAddress
        }
    }

    /// Before a rep string instruction: its source and destination ranges.
    static let repStringCheck: @convention(c) (UnsafeMutableRawPointer?, UInt64) -> Void = { context, argument in
        let context = context!
        let t = Translator(context: context)
        guard let raw = t.toolData(named: name) else { return }
        let s = raw.assumingMemoryBound(to: HeapCheckState.self)
        guard let op = RepString(argument: argument, t) else { return }
        func reg(_ r: GPR) -> UInt64 { context.load(fromByteOffset: Int(ContextField.appRegister(r)), as: UInt64.self) }
        let element = UInt64(op.elementSize)
        let count = reg(.rcx)
        guard count > 0 else { return }
        let bytes = count &* element
        let down = context.load(fromByteOffset: Int(ContextField.appFlags), as: UInt64.self) & (1 << 10) != 0
        func range(_ r: GPR) -> UInt64 { down ? reg(r) &- bytes &+ element : reg(r) }
        switch op.kind {
        case .move:
            check(s, context, pc: op.pc, address: range(.rsi), size: bytes, write: false)
            check(s, context, pc: op.pc, address: range(.rdi), size: bytes, write: true)
        case .store:
            check(s, context, pc: op.pc, address: range(.rdi), size: bytes, write: true)
        case .load:
            check(s, context, pc: op.pc, address: range(.rsi), size: bytes, write: false)
        case .compare:
            // cmps/scas stop early; the first element is all that is certain.
            check(s, context, pc: op.pc, address: reg(.rdi), size: element, write: false)
        }
    }

    /// The checked access of the instruction at `pc`, its address computed from
    /// the application's registers in `context` (as the fast path saw them: the
    /// slow path runs before the instruction).
    static func decodeAccess(_ t: Translator, _ context: UnsafeMutableRawPointer, _ pc: UInt64)
        -> (address: UInt64, size: Int, write: Bool)? {
        var insn = Instruction()
        guard t.decodeOne(at: pc, into: &insn) else { return nil }
        var operands = Operands()
        Decoder.decodeOperands(insn, into: &operands)
        guard let m = checkedOperand(insn, operands) else { return nil }
        return (effectiveAddress(m.memory, context), m.size, m.write)
    }

    /// The address a checked operand (register base, maybe an index) names, from
    /// the application's registers in `context`.
    static func effectiveAddress(_ m: AsmMemory, _ context: UnsafeMutableRawPointer) -> UInt64 {
        func reg(_ r: GPR) -> UInt64 { context.load(fromByteOffset: Int(ContextField.appRegister(r)), as: UInt64.self) }
        var address = UInt64(bitPattern: Int64(m.displacement))
        if case .register(let base) = m.base { address &+= reg(base) }
        if let index = m.index { address &+= reg(index) &* UInt64(m.scale) }
        return address
    }

    /// The precise check of [address, address+size): reports the first bad byte.
    static func check(_ s: UnsafeMutablePointer<HeapCheckState>, _ context: UnsafeMutableRawPointer, pc: UInt64,
                      address: UInt64, size: UInt64, write: Bool) {
        let end = address &+ size
        var bad: UInt64? = nil
        var value: UInt8 = 0
        var granule = address & ~7
        while granule < end && bad == nil {
            guard let page = pageIndex(s, granule), let chunk = chunk(s, page: page) else {
                granule = (granule | 0xFFF) &+ 1  // no shadow on this page
                continue
            }
            // This page's part of the range: its first non-zero shadow byte, 32
            // and then eight at a time (rep strings cover kilobytes).
            let pageEnd = min(end, (granule | 0xFFF) &+ 1)
            let count = Int((pageEnd &- granule &+ 7) >> 3)
            let shadow = chunk + Int((granule & 0xFFF) >> 3)
            var k = 0
            let words = UnsafeRawPointer(shadow)
            while k + 32 <= count {
                let a = words.loadUnaligned(fromByteOffset: k, as: UInt64.self)
                let b = words.loadUnaligned(fromByteOffset: k + 8, as: UInt64.self)
                let c = words.loadUnaligned(fromByteOffset: k + 16, as: UInt64.self)
                let d = words.loadUnaligned(fromByteOffset: k + 24, as: UInt64.self)
                guard a | b | c | d == 0 else { break }
                k += 32
            }
            while k + 8 <= count && words.loadUnaligned(fromByteOffset: k, as: UInt64.self) == 0 { k += 8 }
            while k < count && shadow[k] == 0 { k += 1 }
            guard k < count else {
                granule = pageEnd  // the page's part is clean
                continue
            }
            granule &+= UInt64(k) << 3
            let v = shadow[k]
            if v >= 0x80 {
                bad = max(granule, address)
                value = v
            } else if min(granule &+ 8, end) > granule &+ UInt64(v) {
                // 1...7: that many leading bytes of the granule are accessible.
                bad = max(granule &+ UInt64(v), address)
                value = v
                // An aligned word read starting inside the object is how the
                // word-at-a-time string helpers (load_unaligned_zeropad,
                // read_word_at_a_time) work; KASAN checks only their first byte.
                if !write && size == 8 && address & 7 == 0 && bad != address { return }
            }
            granule &+= 8
        }
        guard let first = bad else { return }
        func reg(_ r: GPR) -> UInt64 { context.load(fromByteOffset: Int(ContextField.appRegister(r)), as: UInt64.self) }
        s.pointee.host.lock()
        var object = HeapObject()
        var kind = HeapBugKind.outOfBounds
        if value == ShadowByte.slabFree {
            kind = .useAfterFree
            if let i = containing(s, first, reach: 1 << 16) { object = s.pointee.objects[i] }
        } else {
            // A redzone: to the right of the object whose slot holds it, or to
            // the left of the object in the next slot, whichever is nearer.
            var next: HeapObject? = nil
            if let i = containing(s, first, reach: 1 << 16) {
                object = s.pointee.objects[i]
                if let j = find(s, object.start &+ object.slot) { next = s.pointee.objects[j] }
            } else {
                var k: UInt64 = 8
                while k <= s.pointee.redzone &+ 64 && next == nil {
                    if let j = find(s, (first & ~7) &+ k) { next = s.pointee.objects[j] }
                    k &+= 8
                }
            }
            if let n = next {
                let left = n.start &- first
                if object.start == 0 || left < first &- (object.start &+ object.size) { object = n }
            }
        }
        s.pointee.host.unlock()
        report(s, kind: kind, address: first == address ? address : first, size: size, write: write, pc: pc,
               sp: reg(.rsp), bp: reg(.rbp), object: object)
    }

    // MARK: findings

    /// Writes (or counts again) a finding: identical ones share the class, the
    /// place and the direction.
    static func report(_ s: UnsafeMutablePointer<HeapCheckState>, kind: HeapBugKind, address: UInt64, size: UInt64,
                       write: Bool, pc: UInt64, sp: UInt64, bp: UInt64, object: HeapObject) {
        typealias O = FindingLayout.Offset
        let key = FindingsRing.key(UInt64(FindingTool.heapcheck.rawValue) << 32 | UInt64(kind.rawValue), pc, write ? 1 : 0)
        s.pointee.statistics.findings &+= 1
        if s.pointee.findings.pointee.countRepeat(key) { return }
        withUnsafeTemporaryAllocation(byteCount: FindingLayout.recordBytes, alignment: 8) { bytes in
            FindingsRing.writeHead(bytes, tool: .heapcheck, kind: kind.rawValue, address: address, pc: pc, size: size,
                                   currentTask: s.pointee.host.currentTask)
            let w = LayoutWriter(bytes)
            var flags: UInt32 = write ? FindingLayout.Flags.write : 0
            if object.origin == HeapObject.fromNamedCache && object.start != 0 { flags |= FindingLayout.Flags.namedCache }
            if object.origin == HeapObject.fromPages { flags |= FindingLayout.Flags.pageBacked }
            w.u32(O.flags, flags)
            w.u64(O.objectStart, object.start)
            w.u64(O.objectSize, object.size)
            w.u64(O.cacheObjectSize, object.slot)
            if object.start != 0 {
                var objectSize: UInt64 = 0
                let name = (bytes.baseAddress! + O.cacheName).assumingMemoryBound(to: UInt8.self)
                if object.origin == HeapObject.fromClass {
                    _ = s.pointee.host.describeCache(s.pointee.classCache[Int(object.sizeClass)], name, &objectSize)
                } else if object.origin == HeapObject.fromNamedCache {
                    _ = s.pointee.host.describeCache(object.cache, name, &objectSize)
                }
            }
            // The access's stack, then the object's history.
            let frames = (bytes.baseAddress! + O.accessStack + O.stackFrames).assumingMemoryBound(to: UInt64.self)
            let depth = s.pointee.host.captureStack(pc, sp, bp, frames, Int32(FindingLayout.maxFrames), nil, nil)
            w.u32(O.accessStack, UInt32(max(depth, 0)))
            s.pointee.host.lock()
            writeTrack(s, w, O.allocated, pid: object.allocPid, cpu: object.allocCPU, stack: object.allocStack)
            writeTrack(s, w, O.freed, pid: object.freePid, cpu: object.freeCPU, stack: object.freeStack)
            // Five rows of 16 granules, the bad address's row in the middle.
            let row = (address & ~127) &- 256
            w.u64(O.shadowAddress, row)
            for k in 0..<(FindingLayout.shadowRows * FindingLayout.shadowRowBytes) {
                w.u8(O.shadow + k, shadowByte(s, row &+ UInt64(8 * k)) ?? 0)
            }
            s.pointee.host.unlock()
            w.u64(O.timestamp, s.pointee.host.now())
            s.pointee.findings.pointee.add(key, UnsafeRawPointer(bytes.baseAddress!))
        }
    }

    static func writeTrack(_ s: UnsafeMutablePointer<HeapCheckState>, _ w: LayoutWriter, _ at: Int,
                           pid: UInt32, cpu: UInt32, stack: UInt32) {
        guard stack != 0 else { return }
        let entry = s.pointee.stackWords + Int(stack - 1) * (2 + s.pointee.limits.stackDepth)
        w.u32(at, pid)
        w.u32(at + 4, cpu)
        let depth = Int(entry[1])
        w.u32(at + FindingLayout.Offset.trackStack, UInt32(depth))
        for k in 0..<depth { w.u64(at + FindingLayout.Offset.trackStack + FindingLayout.Offset.stackFrames + 8 * k, entry[2 + k]) }
    }

}

/// What repStringCheck needs of a rep string instruction. It travels in the clean
/// call's argument when the PC fits (kernel text and modules lie in the top 2 GiB),
/// so the check does not read and decode the instruction again on every run:
/// bit 62 set (never in a canonical address), the kind and element size in bits
/// 32-39, the PC sign-extended from its low 32 bits. Other PCs travel as they are.
struct RepString {
    enum Kind: UInt8 { case move, store, load, compare }
    var kind: Kind
    var elementSize: Int
    var pc: UInt64

    static let packed: UInt64 = 1 << 62

    static func kind(_ m: Mnemonic) -> (Kind, Int)? {
        switch m {
        case .movsb: return (.move, 1)
        case .movsw: return (.move, 2)
        case .movsd: return (.move, 4)
        case .movsq: return (.move, 8)
        case .stosb: return (.store, 1)
        case .stosw: return (.store, 2)
        case .stosd: return (.store, 4)
        case .stosq: return (.store, 8)
        case .lodsb: return (.load, 1)
        case .lodsw: return (.load, 2)
        case .lodsd: return (.load, 4)
        case .lodsq: return (.load, 8)
        case .cmpsb, .scasb: return (.compare, 1)
        case .cmpsw, .scasw: return (.compare, 2)
        case .cmpsd, .scasd: return (.compare, 4)
        case .cmpsq, .scasq: return (.compare, 8)
        default: return nil
        }
    }

    static func argument(_ insn: Instruction) -> CleanCallArgument {
        let signed = Int64(bitPattern: insn.address)
        guard let (kind, size) = kind(insn.mnemonic), signed >= Int64(Int32.min) && signed <= Int64(Int32.max) else {
            return .applicationPC
        }
        let code = UInt64(kind.rawValue) << 4 | UInt64(size)
        return .constant(packed | code << 32 | UInt64(UInt32(truncatingIfNeeded: insn.address)))
    }

    init?(argument: UInt64, _ t: Translator) {
        if argument >> 62 == 1 {
            let code = (argument >> 32) & 0xFF
            guard let k = Kind(rawValue: UInt8(code >> 4)) else { return nil }
            kind = k
            elementSize = Int(code & 0xF)
            pc = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: argument)))
            return
        }
        var insn = Instruction()
        guard t.decodeOne(at: argument, into: &insn), let (k, size) = RepString.kind(insn.mnemonic) else { return nil }
        kind = k
        elementSize = size
        pc = argument
    }
}

/// The accesses a block's checks covered so far: the same base, index and scale,
/// and a displacement range; forgotten when an instruction writes one of the
/// registers.
struct CoveredAccesses {
    var memory: InlineArray<8, AsmMemory> = InlineArray(repeating: AsmMemory(base: .absolute))
    var size: InlineArray<8, Int> = InlineArray(repeating: 0)
    var count = 0

    func contains(_ m: AsmMemory, size: Int) -> Bool {
        for k in 0..<count {
            let c = memory[k]
            guard c.base == m.base && c.index == m.index && c.scale == m.scale && c.segment == m.segment else { continue }
            let start = Int(c.displacement), end = start + self.size[k]
            if Int(m.displacement) >= start && Int(m.displacement) + size <= end { return true }
        }
        return false
    }

    mutating func add(_ m: AsmMemory, size: Int) {
        let k = min(count, memory.count - 1)  // full: the newest replaces the last
        memory[k] = m
        self.size[k] = size
        count = k + 1
    }

    mutating func forget(written: UInt16) {
        guard written != 0 else { return }
        var kept = 0
        for k in 0..<count {
            let m = memory[k]
            if m.registersUsed & written != 0 { continue }
            memory[kept] = m
            size[kept] = size[k]
            kept += 1
        }
        count = kept
    }
}

/// The checks of a straight stretch of a block that a later access through the
/// same registers may join, when the joined bytes stay within `window`: one check
/// of the first and the last byte's granules then stands for all of them. Sound
/// because between two clean granules less than `window` bytes apart there is
/// at most one granule, and a poisoned stretch between accessible bytes is longer:
/// a redzone (16 bytes or more) or a quarantined object with its redzone. (Named
/// caches have no redzones: a freed object of 8 bytes or less between two live
/// ones could hide there.)
struct JoinableChecks {
    struct Entry {
        var memory: AsmMemory
        /// The first access's displacement, and the joined bytes [low, high).
        var displacement: Int32
        var low: Int32
        var high: Int32
        /// The first access's instruction (block index and PC) and its meta entry.
        var instruction: Int
        var pc: UInt64
        var entry: Int
    }
    static let window: Int32 = 16
    var entries: InlineArray<4, Entry> = InlineArray(repeating: Entry(
        memory: AsmMemory(base: .absolute), displacement: 0, low: 0, high: 0, instruction: 0, pc: 0, entry: 0))
    var count = 0

    /// The entry an access of `size` bytes at `m` by instruction `index` may join.
    func joinable(_ m: AsmMemory, size: Int, at index: Int) -> Int? {
        for k in 0..<count {
            let e = entries[k]
            guard e.memory.base == m.base && e.memory.index == m.index && e.memory.scale == m.scale
                && e.memory.segment == m.segment, index - e.instruction < JoinedAccesses.maxInstructions else { continue }
            // In Int: displacements of one base register may lie 4 GiB apart.
            let low = min(Int(e.low), Int(m.displacement)), high = max(Int(e.high), Int(m.displacement) + size)
            if high - low <= Int(Self.window) { return k }
        }
        return nil
    }

    mutating func join(_ k: Int, _ m: AsmMemory, size: Int) -> Entry {
        entries[k].low = min(entries[k].low, m.displacement)
        entries[k].high = max(entries[k].high, m.displacement + Int32(size))
        return entries[k]
    }

    mutating func add(_ m: AsmMemory, size: Int, at index: Int, pc: UInt64, entry: Int) {
        let k = min(count, entries.count - 1)  // full: the newest replaces the last
        entries[k] = Entry(memory: m, displacement: m.displacement, low: m.displacement,
                           high: m.displacement + Int32(size), instruction: index, pc: pc, entry: entry)
        count = k + 1
    }

    mutating func close() { count = 0 }

    mutating func forget(written: UInt16) {
        guard written != 0 else { return }
        var kept = 0
        for k in 0..<count {
            let m = entries[k].memory
            if m.registersUsed & written != 0 { continue }
            entries[kept] = entries[k]
            kept += 1
        }
        count = kept
    }
}

/// What a joined check's slow path needs, packed into its argument: bits 63-62
/// 01 (never a canonical address: plain checks pass their PC), the instruction
/// count from the first joined access to the last (bits 32-39), the joined
/// bytes' offset from the first access's displacement (bits 40-47, signed) and
/// their length (bits 48-55), and the first access's PC sign-extended from its
/// low 32 bits (kernel text and modules lie in the top 2 GiB).
struct JoinedAccesses {
    var pc: UInt64
    var instructions: Int
    var lowOffset: Int
    var bytes: Int

    static let maxInstructions = 255

    static func fits(_ pc: UInt64) -> Bool {
        let signed = Int64(bitPattern: pc)
        return signed >= Int64(Int32.min) && signed <= Int64(Int32.max)
    }

    init(pc: UInt64, instructions: Int, lowOffset: Int, bytes: Int) {
        self.pc = pc
        self.instructions = instructions
        self.lowOffset = lowOffset
        self.bytes = bytes
    }

    init?(argument: UInt64) {
        guard argument >> 62 == 1 else { return nil }
        pc = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: argument)))
        instructions = Int((argument >> 32) & 0xFF)
        lowOffset = Int(Int8(truncatingIfNeeded: argument >> 40))
        bytes = Int((argument >> 48) & 0xFF)
    }

    var argument: UInt64 {
        1 << 62 | UInt64(instructions & 0xFF) << 32 | UInt64(UInt8(truncatingIfNeeded: lowOffset)) << 40
            | UInt64(bytes & 0xFF) << 48 | UInt64(UInt32(truncatingIfNeeded: pc))
    }

    /// Whether an access of `size` bytes at `m` is one of the joined ones, given
    /// the first joined access's operand.
    func covers(_ m: AsmMemory, size: Int, first: AsmMemory) -> Bool {
        guard m.base == first.base && m.index == first.index && m.scale == first.scale && m.segment == first.segment
        else { return false }
        let low = Int(first.displacement) + lowOffset
        return Int(m.displacement) >= low && Int(m.displacement) + size <= low + bytes
    }
}

/// The flat shadow's layout: `HeapCheck.chunkBytes` per direct-map page, a pad
/// (checks of both ends read up to 8 bytes past the last page's shadow), then two
/// words the inline check reads absolutely: the direct map's base and its size
/// in bytes.
public enum FlatShadow {
    /// Zeros past the last page's shadow: a check of the direct map's last
    /// bytes reads a little beyond (up to `HeapCheck.repScanBytes` / 8 + 32).
    static let pad = 1024
    public static func constants(pages: UInt64) -> Int { Int(pages) * HeapCheck.chunkBytes + pad }
    public static func bytes(pages: UInt64) -> Int { constants(pages: pages) + 16 }
}
