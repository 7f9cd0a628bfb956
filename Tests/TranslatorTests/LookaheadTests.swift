// SPDX-License-Identifier: GPL-2.0-only
//
// Flags and register liveness across a block's end: the translator reads the
// successor of a direct jump ahead, and calls a flag or register dead only when
// that code overwrites it before reading it.
import Testing
import UserHost
@testable import Engine

@Suite struct LookaheadTests {
    static let runner = InProcessRunner()

    /// The flags live after `jmp T`, where T holds `target`.
    func liveAfterJump(to target: [UInt8]) -> UInt16 {
        afterJump(to: target) { Self.runner.translator.flagsLive(after: $0) }
    }

    /// The registers live after `jmp T`.
    func registersAfterJump(to target: [UInt8]) -> UInt16 {
        afterJump(to: target) { Self.runner.translator.registersLive(after: $0) }
    }

    func afterJump(to target: [UInt8], _ live: (Instruction) -> UInt16) -> UInt16 {
        // jmp +11 (to offset 16), then padding, then the target's code.
        var code: [UInt8] = [0xE9, 11, 0, 0, 0] + [UInt8](repeating: 0xCC, count: 11) + target
        code += [UInt8](repeating: 0xCC, count: 16)
        return code.withUnsafeMutableBytes { buffer in
            let address = UInt64(UInt(bitPattern: buffer.baseAddress!))
            var jump = Instruction()
            #expect(Decoder.decode(bytes: UnsafeRawBufferPointer(buffer), address: address, into: &jump) == .ok)
            return live(jump)
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

    @Test func aCallLeavesNoFlagLive() {
        // call T, where T reads CF first (adc): by the psABI no caller passes the
        // flags to a function, so they are dead at the call whatever T does.
        var code: [UInt8] = [0xE8, 11, 0, 0, 0] + [UInt8](repeating: 0xCC, count: 11) + [0x83, 0xD0, 0x00, 0xC3]
        code += [UInt8](repeating: 0xCC, count: 16)
        code.withUnsafeMutableBytes { buffer in
            var call = Instruction()
            let address = UInt64(UInt(bitPattern: buffer.baseAddress!))
            #expect(Decoder.decode(bytes: UnsafeRawBufferPointer(buffer), address: address, into: &call) == .ok)
            #expect(Self.runner.translator.flagsLive(after: call) == 0)
        }
    }

    @Test func aReturnFromACFunctionLeavesOnlyTheABIsRegistersLive() {
        // jmp T; T: ret. The host says whether T's function keeps the psABI.
        let runner = InProcessRunner()
        let code: [UInt8] = [0xE9, 11, 0, 0, 0] + [UInt8](repeating: 0xCC, count: 11) + [0xC3] + [UInt8](repeating: 0xCC, count: 16)
        func live() -> (UInt16, UInt16) {
            code.withUnsafeBytes { buffer in
                var jump = Instruction()
                let address = UInt64(UInt(bitPattern: buffer.baseAddress!))
                #expect(Decoder.decode(bytes: buffer, address: address, into: &jump) == .ok)
                return (runner.translator.registersLive(after: jump), runner.translator.flagsLive(after: jump))
            }
        }
        #expect(live() == (0xFFFF, Flag.status))  // nothing known: everything live
        runner.translator.state.pointee.host.isCFunction = { _ in 1 }
        #expect(live() == (Self.bits(.rax, .rdx, .rbx, .rsp, .rbp, .r12, .r13, .r14, .r15), 0))
        runner.translator.state.pointee.host.isCFunction = { _ in 0 }
        #expect(live() == (0xFFFF, Flag.status))  // assembly: unknown callers
    }

    static func bits(_ registers: GPR...) -> UInt16 { registers.reduce(0) { $0 | 1 << UInt16($1.rawValue) } }

    @Test func registersOverwrittenBeforeReadAreDead() {
        // mov eax, 1; mov rcx, [rdx]; add rcx, rsi; ret: rax and rcx are dead,
        // rdx and rsi read, the rest unknown at the ret (live).
        let live = registersAfterJump(to: [0xB8, 1, 0, 0, 0, 0x48, 0x8B, 0x0A, 0x48, 0x01, 0xF1, 0xC3])
        #expect(live & Self.bits(.rax, .rcx) == 0)
        #expect(live & Self.bits(.rdx, .rsi, .rbx, .r11) == Self.bits(.rdx, .rsi, .rbx, .r11))
    }

    @Test func narrowAndConditionalWritesDoNotKill() {
        // mov al, 1; cmove rcx, rdx; ret: rax and rcx stay live.
        let live = registersAfterJump(to: [0xB0, 0x01, 0x48, 0x0F, 0x44, 0xCA, 0xC3])
        #expect(live & Self.bits(.rax, .rcx) == Self.bits(.rax, .rcx))
    }

    @Test func readThenWrittenIsLive() {
        // add eax, eax (reads, then writes); a nop's operand is not read: mov
        // ecx, 0 after `nop [rcx+rcx]` kills rcx.
        #expect(registersAfterJump(to: [0x01, 0xC0, 0xC3]) & Self.bits(.rax) != 0)
        let live = registersAfterJump(to: [0x0F, 0x1F, 0x44, 0x09, 0x00, 0xB9, 0, 0, 0, 0, 0xC3])
        #expect(live & Self.bits(.rcx) == 0)
    }

    @Test func zeroingIdiomsKill() {
        // xor ecx, ecx; sub rdx, rdx; xor eax, ebx; ret: rcx and rdx dead, rax and rbx read.
        let live = registersAfterJump(to: [0x31, 0xC9, 0x48, 0x29, 0xD2, 0x31, 0xD8, 0xC3])
        #expect(live & Self.bits(.rcx, .rdx) == 0)
        #expect(live & Self.bits(.rax, .rbx) == Self.bits(.rax, .rbx))
    }

    @Test func unknownSuccessorsKeepEveryRegisterLive() {
        var ret = Instruction()
        let code: [UInt8] = [0xC3]
        code.withUnsafeBytes { #expect(Decoder.decode(bytes: $0, address: 0x1000, into: &ret) == .ok) }
        #expect(Self.runner.translator.registersLive(after: ret) == 0xFFFF)
        #expect(registersAfterJump(to: [0x74, 0x00, 0x31, 0xC0, 0xC3]) == 0xFFFF)  // jz first: stop
    }
}
