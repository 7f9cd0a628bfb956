// SPDX-License-Identifier: GPL-2.0-only
//
// Blocks that run on past conditional branches: one fragment spans them, each
// way out gives native results, and inscount counts exactly what ran whichever
// side exit is taken.
import CKdbtSys
import Testing
import UserHost
@testable import Engine

@Suite("side exits")
struct SideExitTests {
    /// f(x): eax = 0; if x < 10 goto done; eax += 100; if x < 20 goto done;
    /// eax += 1000; done: eax += 1; ret.
    static let code: [UInt8] = [
        0x31, 0xC0,                    // 00 xor eax, eax
        0x48, 0x83, 0xFF, 0x0A,        // 02 cmp rdi, 10
        0x72, 0x0E,                    // 06 jb 0x16
        0x83, 0xC0, 0x64,              // 08 add eax, 100
        0x48, 0x83, 0xFF, 0x14,        // 0b cmp rdi, 20
        0x72, 0x05,                    // 0f jb 0x16
        0x05, 0xE8, 0x03, 0x00, 0x00,  // 11 add eax, 1000
        0x83, 0xC0, 0x01,              // 16 add eax, 1
        0xC3,                          // 19 ret
    ]

    @Test("inscount is exact on every way out, and one fragment spans the function")
    func exactOnEveryPath() throws {
        let runner = InProcessRunner()
        let offset = try #require(runner.register(InsCount.registration(statistics: nil), storageBytes: InsCount.storageBytes))
        let near = UInt64(UInt(bitPattern: unsafeBitCast(runner, to: UnsafeRawPointer.self)))
        let memory = try #require(kdbt_sys_map_code_near(4096, near))
        Self.code.withUnsafeBytes { memory.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        // (argument, result, instructions executed)
        for (x, result, executed) in [(5, 1, 5), (15, 101, 8), (25, 1101, 9), (5, 1, 5), (25, 1101, 9)] as [(UInt64, UInt64, UInt64)] {
            runner.setContextWord(at: offset + InsCount.counterOffset, to: 0)
            #expect(try runner.call(UnsafeRawPointer(memory), x) == result, "f(\(x))")
            #expect(runner.contextWord(at: offset + InsCount.counterOffset) == executed, "f(\(x))")
        }
        let start = UInt64(UInt(bitPattern: memory))
        let t = runner.translator.state.pointee
        let spanning = (0..<t.fragmentCount).contains { t.fragments[$0].nativeStart == start && t.fragments[$0].nativeEnd == start + 0x1A }
        #expect(spanning, "one fragment from the entry through the ret")
    }
}
