// SPDX-License-Identifier: GPL-2.0-only
//
// decode -> relocate -> decode on a representative slice of real code (a few modules of
// the Debian kernel and part of libc): the relocated instruction has the same mnemonic,
// operands (branch and RIP-relative targets compared as absolute addresses) and
// control-flow kind; relocated 4 GiB away, every branch and RIP-relative instruction is
// refused with .outOfReach. The whole corpus: `make decoder-diff`.

import Engine
import Foundation
import KdbtClient
import Testing

let moduleDirectory = "/lib/modules/6.1.0-56-amd64/kernel"
let slice: [(path: String, maxBytes: Int)] = [
    (moduleDirectory + "/drivers/net/ethernet/intel/e1000/e1000.ko", .max),
    (moduleDirectory + "/arch/x86/crypto/aesni-intel.ko", .max),
    (moduleDirectory + "/arch/x86/crypto/camellia-aesni-avx2.ko", .max),
    (moduleDirectory + "/arch/x86/crypto/sha256-ssse3.ko", .max),
    (moduleDirectory + "/arch/x86/kvm/kvm-intel.ko", .max),
    ("/lib/x86_64-linux-gnu/libc.so.6", 256 * 1024),
]

struct Failure: CustomStringConvertible {
    var bytes: [UInt8]
    var address: UInt64
    var why: String
    var description: String {
        bytes.map { String(format: "%02x", $0) }.joined() + " @0x" + String(address, radix: 16) + ": " + why
    }
}

/// Relocates and decodes again; nil when the IR is the same.
func roundTrip(_ insn: Instruction, _ ops: Operands, _ bytes: UnsafeRawBufferPointer, to newAddress: UInt64,
               scratch: UnsafeMutableRawPointer) -> String? {
    var asm = Assembler(base: scratch, capacity: 64, origin: newAddress)
    let r = Relocator.relocate(insn, bytes: bytes, to: newAddress, into: &asm)
    guard case .relocated(let n) = r else { return "relocate: \(r)" }
    let out = UnsafeRawBufferPointer(start: scratch, count: n)
    var again = Instruction()
    guard Decoder.decode(bytes: out, address: newAddress, into: &again) == .ok else { return "does not decode" }
    if again.mnemonic != insn.mnemonic { return "mnemonic" }
    if again.controlFlow != insn.controlFlow { return "control flow" }
    let isTrampoline = insn.map == .primary && (0xE0...0xE3).contains(insn.opcode)
    if let target = insn.directBranchTarget {
        if isTrampoline {
            // op +2; jmp +5; jmp rel32 target
            var skip = Instruction(), far = Instruction()
            let rest = UnsafeRawBufferPointer(rebasing: out[Int(again.length)...])
            guard again.directBranchTarget == again.nextAddress + 2,
                  Decoder.decode(bytes: rest, address: again.nextAddress, into: &skip) == .ok,
                  skip.directBranchTarget == newAddress + UInt64(n),
                  Decoder.decode(bytes: UnsafeRawBufferPointer(rebasing: rest[Int(skip.length)...]),
                                 address: skip.nextAddress, into: &far) == .ok,
                  far.directBranchTarget == target else { return "trampoline" }
        } else if again.directBranchTarget != target {
            return "branch target"
        }
    } else if again.length != insn.length {
        return "length"
    }
    if again.ripRelativeTarget != insn.ripRelativeTarget { return "RIP-relative target" }
    var ops2 = Operands()
    Decoder.decodeOperands(again, into: &ops2)
    guard ops2.count == ops.count else { return "operand count" }
    for k in 0..<ops.count {
        let a = ops[k], b = ops2[k]
        guard a.type == b.type, a.access == b.access, a.reg == b.reg else { return "operand \(k)" }
        if a.type == .relative {
            if !isTrampoline && a.immediate != b.immediate { return "operand \(k) target" }
            continue
        }
        guard a.size == b.size, a.immediate == b.immediate else { return "operand \(k) value" }
        if a.type == .memory {
            let m = a.mem, m2 = b.mem
            guard m.segment == m2.segment, m.base == m2.base, m.index == m2.index, m.scale == m2.scale,
                  m.size == m2.size, m.broadcast == m2.broadcast else { return "operand \(k) memory" }
            if m.base.cls != .rip && m.base.cls != .eip && m.disp != m2.disp { return "operand \(k) disp" }
        }
    }
    return nil
}

@Suite("round trip on real code")
struct RoundTripTests {
    @Test("decode, relocate, decode: same IR; out of reach refused",
          .enabled(if: FileManager.default.fileExists(atPath: slice[0].path), "Debian kernel modules not installed"))
    func corpusSlice() throws {
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16)
        defer { scratch.deallocate() }
        var failures: [Failure] = []
        var instructions = 0, relative = 0, refused = 0
        for (path, maxBytes) in slice where FileManager.default.fileExists(atPath: path) {
            let elf = try ELFFile(path: path)
            for section in elf.sections where section.isExecutable && section.size > 0 {
                let code = try elf.contents(of: section).prefix(maxBytes)
                let base = elf.loadAddress(of: section) + 0xffff_ffff_c000_0000 * UInt64(elf.fileType == ELFFile.ET_REL ? 1 : 0)
                Array(code).withUnsafeBytes { p in
                    var off = 0
                    var insn = Instruction(), ops = Operands()
                    while off < p.count {
                        let rest = UnsafeRawBufferPointer(rebasing: p[off..<p.count])
                        let address = base + UInt64(off)
                        guard Decoder.decode(bytes: rest, address: address, into: &insn) == .ok else { off += 1; continue }
                        let bytes = UnsafeRawBufferPointer(rebasing: rest[0..<Int(insn.length)])
                        off += Int(insn.length)
                        instructions += 1
                        if insn.directBranchTarget != nil && insn.prefixes.has(Prefixes.operandSize) { continue }
                        Decoder.decodeOperands(insn, into: &ops)
                        for delta: Int64 in [0x1234_5678, -0x700_0000] {
                            let to = address &+ UInt64(bitPattern: delta)
                            if let target = insn.directBranchTarget ?? (insn.addressSize == 64 ? insn.ripRelativeTarget : nil) {
                                // the target itself beyond ±2 GiB of the new address: must be refused
                                let distance = Int64(bitPattern: target &- to)
                                if distance > Int64(Int32.max) - 32 || distance < Int64(Int32.min) + 32 {
                                    var asm = Assembler(base: scratch, capacity: 64, origin: to)
                                    if Relocator.relocate(insn, bytes: bytes, to: to, into: &asm) != .outOfReach {
                                        failures.append(Failure(bytes: Array(bytes), address: address, why: "not refused"))
                                    }
                                    continue
                                }
                            }
                            if let why = roundTrip(insn, ops, bytes, to: address &+ UInt64(bitPattern: delta), scratch: scratch) {
                                failures.append(Failure(bytes: Array(bytes), address: address, why: why))
                            }
                        }
                        // 4 GiB away: relative forms must be refused, anything else is copied.
                        var asm = Assembler(base: scratch, capacity: 64, origin: address &+ 0x1_0000_0000)
                        let r = Relocator.relocate(insn, bytes: bytes, to: asm.origin, into: &asm)
                        if insn.directBranchTarget != nil || (insn.isRIPRelative && insn.addressSize == 64) {
                            relative += 1
                            if r == .outOfReach && asm.count == 0 { refused += 1 } else {
                                failures.append(Failure(bytes: Array(bytes), address: address, why: "not refused: \(r)"))
                            }
                        } else if r != .relocated(length: Int(insn.length)) {
                            failures.append(Failure(bytes: Array(bytes), address: address, why: "copy refused: \(r)"))
                        }
                    }
                }
            }
        }
        #expect(instructions > 100_000, "the slice is representative")
        #expect(relative > 10_000)
        #expect(refused == relative)
        #expect(failures.isEmpty, "\(failures.count) round-trip failures, first: \(failures.prefix(10))")
    }
}
