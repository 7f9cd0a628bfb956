// SPDX-License-Identifier: GPL-2.0-only
//
// Decoder benchmark: linear sweep of vmlinux .text, kdbt next to Zydis and Capstone in
// one process, best of several repetitions.
//
//   DecoderBench [--reps N] [--section NAME] VMLINUX
//
// kdbt full = Decoder.decode + Decoder.decodeOperands; Zydis full = ZydisDecoderDecodeFull
// (all operands); Capstone = cs_disasm_iter with CS_OPT_DETAIL on; kdbt length-only =
// Decoder.instructionLength; kdbt decode = Decoder.decode alone (length, opcode, mnemonic,
// no operands). Every loop skips one byte where the
// decoder rejects, so each counts the instructions it decodes itself.

import COracles
import Engine
import Glibc
import KdbtClient

var reps = 5
var sectionName = ".text"
var maxBytes = Int.max      // --bytes N: the first N bytes only (profiling runs)
var only: String? = nil     // --only kdbt-full|kdbt-length|zydis|capstone: one decoder (profiling runs)
var path: String? = nil
do {
    var i = 1
    let argv = CommandLine.arguments
    while i < argv.count {
        switch argv[i] {
        case "--reps": i += 1; reps = Int(argv[i]) ?? 5
        case "--section": i += 1; sectionName = argv[i]
        case "--bytes": i += 1; maxBytes = Int(argv[i]) ?? .max
        case "--only": i += 1; only = argv[i]
        default: path = argv[i]
        }
        i += 1
    }
}
guard let path else {
    fputs("usage: DecoderBench [--reps N] [--section NAME] VMLINUX\n", stderr)
    exit(64)
}
let elf: ELFFile
do { elf = try ELFFile(path: path) } catch { fputs("DecoderBench: \(error)\n", stderr); exit(2) }
guard let section = elf.section(named: sectionName) else { fputs("DecoderBench: no \(sectionName) in \(path)\n", stderr); exit(2) }
let code = Array(try! elf.contents(of: section).prefix(maxBytes))
let base = elf.loadAddress(of: section)

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

@inline(never) func kdbtFull(_ p: UnsafeRawBufferPointer, _ base: UInt64) -> Int {
    var insn = Instruction(), ops = Operands()
    var off = 0, count = 0
    let n = p.count
    while off < n {
        let rest = UnsafeRawBufferPointer(rebasing: p[off..<n])
        if Decoder.decode(bytes: rest, address: base &+ UInt64(off), into: &insn) == .ok {
            Decoder.decodeOperands(insn, into: &ops)
            off += Int(insn.length)
        } else {
            off += 1
        }
        count += 1
    }
    return count &+ ops.count
}

@inline(never) func kdbtDecode(_ p: UnsafeRawBufferPointer, _ base: UInt64) -> Int {
    var insn = Instruction()
    var off = 0, count = 0
    let n = p.count
    while off < n {
        let rest = UnsafeRawBufferPointer(rebasing: p[off..<n])
        off += Decoder.decode(bytes: rest, address: base &+ UInt64(off), into: &insn) == .ok ? Int(insn.length) : 1
        count += 1
    }
    return count
}

@inline(never) func kdbtLength(_ p: UnsafeRawBufferPointer, _ base: UInt64) -> Int {
    var off = 0, count = 0
    let n = p.count
    while off < n {
        let length = Decoder.instructionLength(bytes: UnsafeRawBufferPointer(rebasing: p[off..<n]))
        off += length != 0 ? length : 1
        count += 1
    }
    return count
}

struct Result { var name: String; var instructions: Int; var best: Double }

func measure(_ name: String, _ body: () -> Int) -> Result {
    var best = Double.infinity, count = 0
    for _ in 0..<reps {
        let t0 = now()
        count = body()
        best = min(best, now() - t0)
    }
    return Result(name: name, instructions: count, best: best)
}

if let only {
    let n: Int = code.withUnsafeBytes { p in
        let u8 = p.baseAddress!.assumingMemoryBound(to: UInt8.self)
        switch only {
        case "kdbt-full": return kdbtFull(p, base)
        case "kdbt-length": return kdbtLength(p, base)
        case "kdbt-decode": return kdbtDecode(p, base)
        case "zydis": return Int(bench_zydis_full(u8, p.count, base))
        default: return Int(bench_capstone_detail(u8, p.count, base))
        }
    }
    print("\(only): \(n) instructions")
    exit(0)
}

let results: [Result] = code.withUnsafeBytes { p in
    let u8 = p.baseAddress!.assumingMemoryBound(to: UInt8.self)
    return [
        measure("kdbt full (decode + operands)") { kdbtFull(p, base) },
        measure("Zydis full (DecodeFull, operands)") { Int(bench_zydis_full(u8, p.count, base)) },
        measure("Capstone (disasm_iter, detail on)") { Int(bench_capstone_detail(u8, p.count, base)) },
        measure("kdbt length-only (instructionLength)") { kdbtLength(p, base) },
        measure("kdbt decode (length, opcode, mnemonic)") { kdbtDecode(p, base) },
        measure("Zydis length-only (DecodeInstruction)") { Int(bench_zydis_length(u8, p.count, base)) },
    ]
}

func fmt(_ v: Double, _ digits: Int) -> String {
    var m = 1.0
    for _ in 0..<digits { m *= 10 }
    let r = (v * m).rounded() / m
    var s = "\(r)"
    if let dot = s.firstIndex(of: ".") {
        let have = s.distance(from: dot, to: s.endIndex) - 1
        if have < digits { s += String(repeating: "0", count: digits - have) }
    }
    return s
}
func pad(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(0, n - s.count)) }
func lpad(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }

print("decoder benchmark: \(path) \(sectionName), \(code.count) bytes, best of \(reps) (release build)")
print(pad("decoder", 40) + lpad("instructions", 13) + lpad("best ms", 10) + lpad("ns/insn", 9) + lpad("M insn/s", 10))
for r in results {
    print(pad(r.name, 40) + lpad("\(r.instructions)", 13) + lpad(fmt(r.best * 1000, 1), 10)
        + lpad(fmt(r.best * 1e9 / Double(r.instructions), 1), 9) + lpad(fmt(Double(r.instructions) / r.best / 1e6, 1), 10))
}
// Speed ratios (higher is faster for kdbt): time per instruction, theirs / ours.
func perInsn(_ r: Result) -> Double { r.best / Double(r.instructions) }
let full = results[0], zyd = results[1], cap = results[2], len = results[3]
print("")
print("kdbt full / Zydis full:          \(fmt(perInsn(zyd) / perInsn(full), 2))x as fast   (target >= 1.00x)")
print("kdbt full / Capstone detail:     \(fmt(perInsn(cap) / perInsn(full), 2))x as fast")
print("kdbt length-only / Zydis full:   \(fmt(perInsn(zyd) / perInsn(len), 2))x as fast   (target >= 3.00x)")
print("kdbt decode / Zydis full:        \(fmt(perInsn(zyd) / perInsn(results[4]), 2))x as fast   (decode without operands)")
