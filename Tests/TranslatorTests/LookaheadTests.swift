// SPDX-License-Identifier: GPL-2.0-only
//
// Flags liveness across a block's end: the translator reads the successor of a
// direct jump ahead, and calls the flags dead only when that code overwrites
// them before reading them.
import Testing
import UserHost
@testable import Engine

@Suite struct LookaheadTests {
    static let runner = InProcessRunner()

    /// The flags live after `jmp T`, where T holds `target`.
    func liveAfterJump(to target: [UInt8]) -> UInt16 {
        // jmp +11 (to offset 16), then padding, then the target's code.
        var code: [UInt8] = [0xE9, 11, 0, 0, 0] + [UInt8](repeating: 0xCC, count: 11) + target
        code += [UInt8](repeating: 0xCC, count: 16)
        return code.withUnsafeMutableBytes { buffer in
            let address = UInt64(UInt(bitPattern: buffer.baseAddress!))
            var jump = Instruction()
            #expect(Decoder.decode(bytes: UnsafeRawBufferPointer(buffer), address: address, into: &jump) == .ok)
            return Self.runner.translator.flagsLive(after: jump)
        }
    }

    @Test func overwrittenBeforeReadIsDead() {
        #expect(liveAfterJump(to: [0xB8, 1, 0, 0, 0, 0x31, 0xC9, 0xC3]) == 0)  // mov eax, 1; xor ecx, ecx; ret
    }

    @Test func directJumpsAreFollowed() {
        // jmp +2 (over int3 int3); xor ecx, ecx
        #expect(liveAfterJump(to: [0xEB, 0x02, 0xCC, 0xCC, 0x31, 0xC9, 0xC3]) == 0)
        // ... but not conditional ones: jz +0; xor ecx, ecx
        #expect(liveAfterJump(to: [0x74, 0x00, 0x31, 0xC9, 0xC3]) == Flag.status)
    }

    @Test func readFirstIsLive() {
        #expect(liveAfterJump(to: [0x83, 0xD0, 0x00, 0xC3]) & Flag.cf != 0)  // adc eax, 0
        #expect(liveAfterJump(to: [0x74, 0x00, 0xC3]) == Flag.status)  // jz
    }

    @Test func onlyTheOverwrittenFlagsAreDead() {
        // inc eax leaves CF alone; the search stops at the ret.
        #expect(liveAfterJump(to: [0xFF, 0xC0, 0xC3]) == Flag.cf)
        // A shift by a count that may be zero overwrites nothing.
        #expect(liveAfterJump(to: [0xD3, 0xE0, 0xC3]) == Flag.status)  // shl eax, cl
    }

    @Test func unknownSuccessorsKeepEverythingLive() {
        var ret = Instruction()
        let code: [UInt8] = [0xC3]
        code.withUnsafeBytes { #expect(Decoder.decode(bytes: $0, address: 0x1000, into: &ret) == .ok) }
        #expect(Self.runner.translator.flagsLive(after: ret) == Flag.status)
        // A jump into unmapped memory.
        var jump = Instruction()
        let far: [UInt8] = [0xE9, 0, 0, 0, 0]
        far.withUnsafeBytes { #expect(Decoder.decode(bytes: $0, address: 0x10_0000, into: &jump) == .ok) }
        #expect(Self.runner.translator.flagsLive(after: jump) == Flag.status)
    }
}
