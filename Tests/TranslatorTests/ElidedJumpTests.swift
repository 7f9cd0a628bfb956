// SPDX-License-Identifier: GPL-2.0-only
//
// Blocks that follow direct jumps into their targets, forwards and backwards:
// one fragment runs the jumped-together code, results are native, inscount
// counts the jumps, and each boundary names the one native PC it stands for.
import CKdbtSys
import Testing
import UserHost
@testable import Engine

@Suite("elided jumps")
struct ElidedJumpTests {
    /// f(x): eax = 3; if x < 10 return eax + 1000; return eax + 100 + 7, the
    /// pieces laid out out of order and joined by jumps.
    static let code: [UInt8] = [
        0x31, 0xC0,                    // 00 xor eax, eax
        0xEB, 0x1C,                    // 02 jmp 0x20
        0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC,
        0x83, 0xC0, 0x07,              // 10 add eax, 7
        0xC3,                          // 13 ret
        0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC,
        0x83, 0xC0, 0x03,              // 20 add eax, 3
        0x48, 0x83, 0xFF, 0x0A,        // 23 cmp rdi, 10
        0x72, 0x07,                    // 27 jb 0x30
        0x83, 0xC0, 0x64,              // 29 add eax, 100
        0xEB, 0xE2,                    // 2c jmp 0x10 (backwards)
        0xCC, 0xCC,
        0x05, 0xE8, 0x03, 0x00, 0x00,  // 30 add eax, 1000
        0xC3,                          // 35 ret
    ]

    /// Runs f over both paths with inscount; returns the runner and f's address.
    static func run(maxElidedJumps: Int) throws -> (InProcessRunner, UInt64) {
        var limits = TranslatorLimits()
        limits.maxElidedJumps = maxElidedJumps
        let runner = InProcessRunner(limits: limits)
        let offset = try #require(runner.register(InsCount.registration(statistics: nil), storageBytes: InsCount.storageBytes))
        let near = UInt64(UInt(bitPattern: unsafeBitCast(runner, to: UnsafeRawPointer.self)))
        let memory = try #require(kdbt_sys_map_code_near(4096, near))
        code.withUnsafeBytes { memory.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        // (argument, result, instructions executed: the jumps count)
        for (x, result, executed) in [(5, 1003, 7), (15, 110, 9), (5, 1003, 7), (15, 110, 9)] as [(UInt64, UInt64, UInt64)] {
            runner.setContextWord(at: offset + InsCount.counterOffset, to: 0)
            #expect(try runner.call(UnsafeRawPointer(memory), x) == result, "f(\(x))")
            #expect(runner.contextWord(at: offset + InsCount.counterOffset) == executed, "f(\(x))")
        }
        return (runner, UInt64(UInt(bitPattern: memory)))
    }

    @Test("one fragment runs through both jumps; its boundaries name their native PCs")
    func followed() throws {
        let (runner, start) = try Self.run(maxElidedJumps: 4)
        let t = runner.translator.state.pointee
        let entry = try #require((0..<t.fragmentCount).first { t.fragments[$0].nativeStart == start })
        let f = t.fragments[entry]
        #expect(f.nativeLow == start && f.nativeEnd == start + 0x2E, "covers the entry through the backward jump")
        var pcs: Set<UInt64> = []
        for i in Int(f.boundaryStart)..<Int(f.boundaryStart + f.boundaryCount) {
            let b = t.boundaries[i]
            pcs.insert(f.nativePC(b))
            // One native PC per cache offset: a fault at the jump's target must
            // not be blamed on the jump, which has no code.
            #expect(runner.translator.nativeBoundary(at: f.cacheStart + UInt64(b.cacheOffset)) == f.nativePC(b))
        }
        for o: UInt64 in [0x00, 0x20, 0x23, 0x27, 0x29, 0x10, 0x13] {
            #expect(pcs.contains(start + o), "a boundary at +\(o)")
        }
        #expect(!pcs.contains(start + 0x02) && !pcs.contains(start + 0x2C), "none at the elided jumps")
        #expect(!(0..<t.fragmentCount).contains { t.fragments[$0].nativeStart == start + 0x20 },
                "the jump's target needs no fragment of its own")
    }

    @Test("with elision off, every jump ends its block")
    func notFollowed() throws {
        let (runner, start) = try Self.run(maxElidedJumps: 0)
        let t = runner.translator.state.pointee
        for o: UInt64 in [0x00, 0x20, 0x10] {
            #expect((0..<t.fragmentCount).contains { t.fragments[$0].nativeStart == start + o }, "a fragment at +\(o)")
        }
    }
}
