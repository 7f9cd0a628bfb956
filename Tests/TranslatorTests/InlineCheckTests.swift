// SPDX-License-Identifier: GPL-2.0-only
//
// Inline checks through the instrumentation API: the fast path runs inline, the
// slow path (out of line, after the block) gets the operand's address, and the
// application's registers and flags come out of both paths as they went in.
import CKdbtSys
import Testing
import UserHost
@testable import Engine

/// Addresses the slow path saw, in order.
nonisolated(unsafe) var slowAddresses: [UInt64] = []

@Suite("inline checks", .serialized)
struct InlineCheckTests {
    /// Checks every memory operand (all [rdi + disp] in `code`); the fast path sends addresses with bit 3 set
    /// to the slow path.
    static let onBlock: BlockEventHandler = { _, raw, _ in
        let block = InstrumentedBlock.from(raw)
        var operands = Operands()
        for i in 0..<block.pointee.count {
            Decoder.decodeOperands(block.pointee[i], into: &operands)
            for k in 0..<operands.count where operands[k].type == .memory {
                let check = InlineCheck(
                    memory: .at(.rdi, Int32(operands[k].mem.disp)), emitter: emitter, emitterData: nil, argument: 0,
                    slowFunction: UInt64(UInt(bitPattern: unsafeBitCast(slow, to: UnsafeRawPointer.self))),
                    slowArgument: 0, temporaries: 1)
                block.pointee.insert(.inlineCheck(check), before: i)
            }
        }
    }
    static let emitter: InlineCheckEmitter = { _, raw in
        let site = InlineCheckSite.from(raw)
        site.pointee.assembler.mov(site.pointee.temporary0, site.pointee.address)
        site.pointee.assembler.and(site.pointee.temporary0, imm32: 8)
        site.pointee.slowPath(if: .ne)
    }
    static let slow: @convention(c) (UnsafeMutableRawPointer?, UInt64) -> Void = { context, _ in
        slowAddresses.append(context!.load(fromByteOffset: Int(ContextField.inlineCheckAddress), as: UInt64.self))
    }

    /// f(p, n) = ((p[1] & ~0xff) | (n < 5 ? 1 : 0)) + p[0]:
    static let code: [UInt8] = [
        0x48, 0x83, 0xFE, 0x05,  // cmp rsi, 5
        0x48, 0x8B, 0x47, 0x08,  // mov rax, [rdi+8]   (checked with CF live: setb reads it)
        0x0F, 0x92, 0xC0,        // setb al
        0x48, 0x03, 0x07,        // add rax, [rdi]
        0xC3,                    // ret
    ]

    /// Runs `code`, translated with a check on every memory operand, as
    /// f(p, n) with p 16-aligned, p[0] = 0x1000 (fast path) and p[1] = 0x12345600
    /// (bit 3 of its address set: slow path), once per n; the results.
    func run(_ code: [UInt8], n values: [UInt64]) throws -> [UInt64] {
        let runner = InProcessRunner()
        #expect(runner.register(ToolRegistration(name: "checker", priority: 0, phases: InstrumentationPhase.insertion.bit,
                                                 data: nil, onBlock: Self.onBlock), storageBytes: 0) != nil)
        let near = UInt64(UInt(bitPattern: unsafeBitCast(runner, to: UnsafeRawPointer.self)))
        let memory = try #require(kdbt_sys_map_code_near(4096, near))
        code.withUnsafeBytes { memory.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let data = UnsafeMutablePointer<UInt64>.allocate(capacity: 4)
        defer { data.deallocate() }
        let p = UInt64(UInt(bitPattern: data) + 15) & ~15  // 16-aligned: [p] fast, [p+8] slow
        let words = UnsafeMutablePointer<UInt64>(bitPattern: UInt(p))!
        words[0] = 0x1000
        words[1] = 0x1234_5600
        var results: [UInt64] = []
        for n in values {
            slowAddresses = []
            results.append(try runner.call(UnsafeRawPointer(memory), p, n))
            #expect(slowAddresses == [p + 8], "n = \(n)")
        }
        return results
    }

    @Test("fast and slow paths keep the application's state; the slow path sees the address")
    func bothPaths() throws {
        // n = 3: (p[1] | 1) + p[0]; n = 7: p[1] + p[0].
        let expected: [UInt64] = [0x1234_6601, 0x1234_6600]
        #expect(try run(Self.code, n: [3, 7]) == expected)
    }

    /// g(p) = p[1] + p[0], where the checks borrow dead registers: before the
    /// first load r8 (its destination) and rax are dead, so neither the address
    /// nor the temporary is spilled; before the add only rax is (r8 is read).
    static let borrowingCode: [UInt8] = [
        0x4C, 0x8B, 0x47, 0x08,  // mov r8, [rdi+8]   (slow path: the address is in r8)
        0x4C, 0x03, 0x07,        // add r8, [rdi]
        0x4C, 0x89, 0xC0,        // mov rax, r8
        0xC3,                    // ret
    ]

    @Test("dead registers lent to the fast path come out right on both paths")
    func borrowedRegisters() throws {
        let expected: [UInt64] = [0x1234_6600]
        #expect(try run(Self.borrowingCode, n: [0]) == expected)
    }
}
