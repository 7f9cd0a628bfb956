// SPDX-License-Identifier: GPL-2.0-only
//
// Guard-page fuzzer: every case is a random byte string placed in memory so that it
// ends right before (or starts right after) a PROT_NONE page; decoding it at its exact
// size must not crash, hang or read outside it. Cases are numbered and derived from
// (seed, number) alone, so `--case I --seed S` replays one.

import Engine
import Glibc

/// The case being run, for the fault and watchdog handlers.
nonisolated(unsafe) var fuzzCurrentCase: Int = 0
nonisolated(unsafe) var fuzzSeed: UInt64 = 0

/// splitmix64: case `i` of seed `s` has its own independent stream.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Writes "fuzz: <what> in case <i> (seed <s>); replay: decoder-diff --case <i> --seed <s>" with write(2) only.
func fuzzReport(_ what: StaticString) {
    var buf = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0),
               UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
    withUnsafeMutableBytes(of: &buf) { out in
        var n = 0
        func put(_ b: UInt8) { if n < out.count { out[n] = b; n += 1 } }
        func put(_ s: StaticString) { for i in 0..<s.utf8CodeUnitCount { put(s.utf8Start[i]) } }
        func put(number v: UInt64) {
            var digits = (UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0),
                          UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0))
            withUnsafeMutableBytes(of: &digits) { d in
                var k = 0, x = v
                repeat { d[k] = UInt8(48 + x % 10); x /= 10; k += 1 } while x > 0
                while k > 0 { k -= 1; put(d[k]) }
            }
        }
        put("fuzz: "); put(what); put(" in case "); if fuzzCurrentCase < 0 { put("-1 (self-test)") } else { put(number: UInt64(fuzzCurrentCase)) }
        put(" (seed "); put(number: fuzzSeed); put("); replay: decoder-diff --case ")
        put(number: UInt64(max(fuzzCurrentCase, 0))); put(" --seed "); put(number: fuzzSeed); put("\n")
        _ = write(2, out.baseAddress, n)
    }
}

/// Fills `out` (16 bytes) with case `i`'s bytes; returns the exact size to decode and where to place it.
func fuzzCaseBytes(_ i: Int, seed: UInt64, into out: UnsafeMutableRawBufferPointer) -> (size: Int, atEnd: Bool) {
    var r = SplitMix(state: seed &* 0x2545_F491_4F6C_DD1D ^ UInt64(i) &* 0x9E37_79B9_7F4A_7C15)
    for k in 0..<16 { out[k] = UInt8(truncatingIfNeeded: r.next()) }
    let shape = r.next()
    if i & 1 == 0 {
        // Instruction-shaped: legacy prefixes, REX, then an escape (0F, 0F 38, 0F 3A, VEX, EVEX, XOP) or none.
        let legacy: [UInt8] = [0x66, 0x67, 0xF2, 0xF3, 0xF0, 0x2E, 0x3E, 0x26, 0x64, 0x65, 0x36]
        var p = 0
        let np = shape % 4 == 0 ? Int((shape >> 8) % 4) : 0
        for _ in 0..<np { out[p] = legacy[Int(r.next() % UInt64(legacy.count))]; p += 1 }
        if (shape >> 16) % 3 == 0 { out[p] = 0x40 | UInt8(r.next() & 15); p += 1 }
        switch (shape >> 20) % 9 {
        case 0, 1: out[p] = 0x0F
        case 2: out[p] = 0x0F; out[p + 1] = 0x38
        case 3: out[p] = 0x0F; out[p + 1] = 0x3A
        case 4: out[p] = 0xC4; out[p + 1] = (out[p + 1] & 0xE0) | UInt8(1 + r.next() % 3)
        case 5:
            out[p] = 0x62
            let mm: [UInt8] = [1, 2, 3, 5, 6]
            out[p + 1] = (out[p + 1] & 0xF0) | mm[Int(r.next() % 5)]
            out[p + 2] |= 4
        case 6: out[p] = 0xC5
        case 7: out[p] = 0x8F; out[p + 1] = (out[p + 1] & 0xE0) | UInt8(8 + r.next() % 3)
        default: break
        }
    }
    // Mostly the whole 15 bytes (the decoder sees a complete instruction), else a random cut.
    let size = (shape >> 32) % 2 == 0 ? 15 : Int((shape >> 40) % 16)
    return (size, (shape >> 48) & 1 == 0)
}

func runFuzz(count: Int, seed: UInt64, only: Int?) -> Int32 {
    fuzzSeed = seed
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    // [PROT_NONE][data][PROT_NONE]: a buffer ends at the end of the data page, or starts at its start.
    guard let region = mmap(nil, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
          region != MAP_FAILED else { fputs("fuzz: mmap failed\n", stderr); return 2 }
    mprotect(region, page, PROT_NONE)
    mprotect(region + 2 * page, page, PROT_NONE)
    let data = region + page
    let candidate = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 16)
    let out = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16)

    signal(SIGSEGV) { _ in fuzzReport("memory fault (read outside the buffer?)"); _exit(1) }
    signal(SIGBUS) { _ in fuzzReport("bus error"); _exit(1) }
    signal(SIGILL) { _ in fuzzReport("trap (Swift runtime check)"); _exit(1) }
    signal(SIGTRAP) { _ in fuzzReport("trap (Swift runtime check)"); _exit(1) }
    signal(SIGALRM) { _ in fuzzReport("hang (no progress for 10 s)"); _exit(1) }

    if only == -1 {
        // --case -1: the harness's own check: a read one byte past a buffer must be caught.
        fuzzCurrentCase = -1
        let start = data + page - 4
        print("fuzz self-test: reading one byte past a 4-byte buffer (must die with a memory fault)")
        let past = UnsafeRawBufferPointer(start: start, count: 5)[4]
        print("fuzz self-test FAILED: read \(past) past the buffer without a fault")
        return 1
    }
    var decoded = 0, truncated = 0, invalid = 0, tooLong = 0, relocated = 0, violations = 0
    var insn = Instruction(), ops = Operands(), shorter = Instruction()
    var t0 = timespec(), t1 = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t0)
    let range = only.map { max($0, 0)..<(max($0, 0) + 1) } ?? 0..<count
    for i in range {
        fuzzCurrentCase = i
        if i & 0xFFFF == 0 { alarm(10) }
        let (size, atEnd) = fuzzCaseBytes(i, seed: seed, into: candidate)
        let start = atEnd ? data + page - size : data
        start.copyMemory(from: candidate.baseAddress!, byteCount: size)
        let buf = UnsafeRawBufferPointer(start: start, count: size)
        let address = UInt64(truncatingIfNeeded: i) &* 0x9E37_79B9_7F4A_7C15
        let status = Decoder.decode(bytes: buf, address: address, into: &insn)
        if Decoder.instructionLength(bytes: buf) != (status == .ok ? Int(insn.length) : 0) {
            violations += 1
            fuzzReport("length-only decode differs from decode")
        }
        switch status {
        case .ok:
            decoded += 1
            if Int(insn.length) > size || insn.length == 0 {
                violations += 1
                fuzzReport("length outside the buffer")
            }
            Decoder.decodeOperands(insn, into: &ops)
            _ = Decoder.memoryAccesses(insn, operands: ops)
            _ = Decoder.registerAccesses(insn, operands: ops)
            _ = insn.controlFlow; _ = insn.flagsRead; _ = insn.flagsWritten; _ = insn.isPrivileged
            _ = insn.directBranchTarget; _ = insn.ripRelativeTarget
            var asm = Assembler(base: out, capacity: 64, origin: address &+ 0x1000)
            if case .relocated = Relocator.relocate(insn, bytes: buf, to: asm.origin, into: &asm) { relocated += 1 }
            // Every strict prefix of a decodable instruction is .truncated: check the one just short of it.
            let cut = Int(insn.length) - 1
            let shortStart = atEnd ? data + page - cut : data
            let shortBuf = UnsafeRawBufferPointer(start: shortStart, count: cut)
            if atEnd { shortStart.copyMemory(from: candidate.baseAddress!, byteCount: cut) }
            if Decoder.decode(bytes: shortBuf, address: address, into: &shorter) != .truncated {
                violations += 1
                fuzzReport("a strict prefix does not report .truncated")
            }
        case .truncated: truncated += 1
        case .invalid: invalid += 1
        case .tooLong: tooLong += 1
        }
    }
    alarm(0)
    clock_gettime(CLOCK_MONOTONIC, &t1)
    let seconds = Double(t1.tv_sec - t0.tv_sec) + Double(t1.tv_nsec - t0.tv_nsec) / 1e9
    let cases = range.count
    print("fuzz: \(cases) cases (seed \(seed), half instruction-shaped, half uniform, exact size next to PROT_NONE): "
        + "\(decoded) decoded (\(relocated) relocated), \(truncated) truncated, \(invalid) invalid, \(tooLong) too long; "
        + "\(violations) violations, no crash, no hang")
    print("fuzz: \(Int(seconds * 1000)) ms, \(Int(Double(cases) / max(seconds, 1e-9))) cases/s")
    return violations == 0 ? 0 : 1
}
