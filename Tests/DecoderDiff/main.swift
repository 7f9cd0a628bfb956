// SPDX-License-Identifier: GPL-2.0-only
//
// decoder-diff: the Engine's x86-64 decoder against Zydis and Capstone on real code,
// the relocating encoder's round trip, and a guard-page fuzzer.
//
//   decoder-diff [--show N] [--quiet] [--check] [--files-from LIST] FILE...
//       linear sweep of every executable section of each ELF file (resync on Zydis:
//       one byte past what it rejects, its length past what it decodes); prints the
//       agreement table and the round-trip result. --check: exit 1 unless length
//       agrees 100% with Zydis, operands/control flow/memory accesses >= 99.9% and
//       every round trip holds.
//   decoder-diff --fuzz N [--seed S] [--case I]
//       N random buffers (half instruction-shaped, half uniform), each decoded at its
//       exact size next to a PROT_NONE page; a crash, hang or over-read names the case.
//   decoder-diff --hex HEX...     one instruction, kdbt next to both oracles

import COracles
import Engine
import Glibc
import KdbtClient

// MARK: - options

var showN = 6
var quiet = false
var check = false
var files: [String] = []
var fuzzCount = 0
var fuzzCase: Int? = nil
var seed: UInt64 = 1
var hexMode = false
var classesPath: String? = nil
do {
    var i = 1
    let argv = CommandLine.arguments
    func value() -> String {
        i += 1
        guard i < argv.count else { fputs("decoder-diff: \(argv[i - 1]) needs a value\n", stderr); exit(64) }
        return argv[i]
    }
    while i < argv.count {
        switch argv[i] {
        case "--show": showN = Int(value()) ?? 6
        case "--quiet": quiet = true
        case "--check": check = true
        case "--fuzz": fuzzCount = Int(value()) ?? 0
        case "--case": fuzzCase = Int(value())
        case "--seed": seed = UInt64(value()) ?? 1
        case "--hex": hexMode = true
        case "--classes-to": classesPath = value()
        case "--files-from":
            let path = value()
            guard let f = fopen(path, "r") else { fputs("decoder-diff: cannot open \(path)\n", stderr); exit(2) }
            var line: UnsafeMutablePointer<CChar>? = nil
            var cap = 0
            while getline(&line, &cap, f) > 0 {
                let s = String(cString: line!).split(separator: "\n").first.map(String.init) ?? ""
                if !s.isEmpty { files.append(s) }
            }
            fclose(f)
        case let a where a.hasPrefix("--"):
            fputs("decoder-diff: unknown option \(a)\n", stderr); exit(64)
        default: files.append(argv[i])
        }
        i += 1
    }
}

// MARK: - names

/// Register names as C strings, indexed by class * 32 + index (compared with strcmp).
let registerNames: [UnsafeMutablePointer<CChar>] = {
    var names: [UnsafeMutablePointer<CChar>] = []
    let g64 = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"]
    for cls in 0...RegisterClass.tmm.rawValue {
        for i in 0..<32 {
            let n: String
            switch RegisterClass(rawValue: cls)! {
            case .none: n = ""
            case .gpr64: n = i < 8 ? g64[i] : "r\(i)"
            case .gpr32: n = i < 8 ? "e" + g64[i].dropFirst() : "r\(i)d"
            case .gpr16: n = i < 8 ? String(g64[i].dropFirst()) : "r\(i)w"
            case .gpr8: n = i < 8 ? ["al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil"][i] : "r\(i)b"
            case .gpr8High: n = i >= 4 && i < 8 ? ["ah", "ch", "dh", "bh"][i - 4] : "?"
            case .rip: n = "rip"
            case .eip: n = "eip"
            case .segment: n = ["es", "cs", "ss", "ds", "fs", "gs", "seg6", "seg7"][i & 7]
            case .control: n = "cr\(i)"
            case .debug: n = "dr\(i)"
            case .mmx: n = "mm\(i)"
            case .xmm: n = "xmm\(i)"
            case .ymm: n = "ymm\(i)"
            case .zmm: n = "zmm\(i)"
            case .mask: n = "k\(i)"
            case .x87: n = "st\(i)"
            case .bound: n = "bnd\(i)"
            case .tmm: n = "tmm\(i)"
            }
            names.append(strdup(n)!)
        }
    }
    return names
}()

@inline(__always) func regName(_ r: Register) -> UnsafePointer<CChar> {
    UnsafePointer(registerNames[Int(r.cls.rawValue) * 32 + Int(r.index & 31)])
}

func mnemonicName(_ m: Mnemonic) -> UnsafePointer<CChar> {
    UnsafeRawPointer(m.name.utf8Start).assumingMemoryBound(to: CChar.self)
}

/// kdbt name -> Zydis name where Zydis deviates from the Intel/AMD manuals.
let zydisAliases: [String: String] = ["retf": "ret", "wbnoinvd": "wbinvd", "pfrcpit1": "pfcpit1", "pfrsqrt": "pfsqrt"]

/// Capstone name -> kdbt (Zydis-style) name: condition-code spellings and a few aliases.
let capstoneAliases: [String: String] = {
    var a: [String: String] = [:]
    let cc: [(String, String)] = [("ae", "nb"), ("a", "nbe"), ("e", "z"), ("ne", "nz"), ("g", "nle"), ("ge", "nl"),
                                  ("na", "be"), ("nae", "b"), ("c", "b"), ("nc", "nb")]
    for (c, z) in cc {
        a["j" + c] = "j" + z
        a["set" + c] = "set" + z
        a["cmov" + c] = "cmov" + z
    }
    a["movabs"] = "mov"
    a["sal"] = "shl"
    a["ljmp"] = "jmp"
    a["lcall"] = "call"
    a["retf"] = "ret"
    a["retfq"] = "ret"
    a["int1"] = "int1"
    a["xlatb"] = "xlat"
    a["fwait"] = "wait"
    a["movsx"] = "movsx"
    a["pause"] = "pause"
    return a
}()

func str(_ p: UnsafePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }

func hexString(_ p: UnsafeRawBufferPointer, _ n: Int) -> String {
    var s = ""
    let digits = Array("0123456789abcdef")
    for i in 0..<min(n, p.count) { s.append(digits[Int(p[i] >> 4)]); s.append(digits[Int(p[i] & 15)]) }
    return s
}

func oracleCF(_ c: ControlFlow) -> Int32 {
    switch c {
    case .jmp: return Int32(ORACLE_CF_JMP)
    case .jmpIndirect, .farJmp: return Int32(ORACLE_CF_JMP_INDIRECT)
    case .call: return Int32(ORACLE_CF_CALL)
    case .callIndirect, .farCall: return Int32(ORACLE_CF_CALL_INDIRECT)
    // xbegin: on abort, execution continues at its target; both oracles call it a conditional branch.
    case .jcc, .loop, .xbegin: return Int32(ORACLE_CF_JCC)
    case .ret, .farRet: return Int32(ORACLE_CF_RET)
    case .iret: return Int32(ORACLE_CF_IRET)
    case .syscall, .sysenter: return Int32(ORACLE_CF_SYSCALL)
    case .sysret, .sysexit: return Int32(ORACLE_CF_SYSRET)
    case .interrupt, .int3, .int1: return Int32(ORACLE_CF_INTERRUPT)
    // Not branches for kdbt: xabort (it aborts a transaction; outside one it is a nop), ud, hlt, vmexit.
    default: return Int32(ORACLE_CF_NONE)
    }
}

func cfName(_ c: Int32) -> String {
    ["none", "jmp", "jmp-indirect", "call", "call-indirect", "jcc", "ret", "iret", "syscall", "sysret", "interrupt"][Int(c)]
}

func describe(_ op: Operand) -> String {
    switch op.type {
    case .none: return "-"
    case .register: return str(regName(op.reg))
    case .memory:
        var s = op.mem.segment == 4 ? "fs:[" : op.mem.segment == 5 ? "gs:[" : "["
        s += str(regName(op.mem.base))
        if op.mem.index.cls != .none { s += "+" + str(regName(op.mem.index)) + "*\(op.mem.scale)" }
        return s + "+\(op.mem.disp)]:\(op.mem.size * 8)"
    case .immediate: return "imm \(op.immediate)"
    case .relative: return "rel 0x" + String(UInt64(bitPattern: op.immediate), radix: 16)
    }
}

func describe(_ o: oracle_op) -> String {
    switch Int(o.type) {
    case ORACLE_OP_REG: return str(o.reg)
    case ORACLE_OP_MEM:
        var s = str(o.seg).isEmpty ? "[" : str(o.seg) + ":["
        s += str(o.base)
        if !str(o.index).isEmpty { s += "+" + str(o.index) + "*\(o.scale)" }
        return s + "+\(o.disp)]:\(o.size)"
    case ORACLE_OP_IMM: return "imm \(o.imm)"
    case ORACLE_OP_REL: return "rel 0x" + String(UInt64(bitPattern: o.imm), radix: 16)
    case ORACLE_OP_PTR: return "ptr"
    default: return "-"
    }
}

// MARK: - comparison

/// Compares one operand (kind, registers, address parts, value); nil when equal.
func compareOperand(_ a: Operand, _ z: oracle_op) -> String? {
    switch a.type {
    case .register:
        if z.type != Int32(ORACLE_OP_REG) { return "type" }
        if strcmp(regName(a.reg), z.reg) != 0 { return "reg" }
    case .memory:
        if z.type != Int32(ORACLE_OP_MEM) { return "type" }
        let seg = a.mem.segment == 4 ? "fs" : a.mem.segment == 5 ? "gs" : ""
        if seg != str(z.seg) { return "segment" }
        if strcmp(regName(a.mem.base), z.base) != 0 { return "base" }
        if strcmp(regName(a.mem.index), z.index) != 0 { return "index" }
        if a.mem.index.cls != .none && Int32(a.mem.scale) != z.scale { return "scale" }
        if a.mem.disp != z.disp { return "disp" }
    case .immediate:
        if z.type != Int32(ORACLE_OP_IMM) { return "type" }
        let bits = UInt64(z.size <= 0 ? 64 : min(Int(z.size), 64))
        let mask: UInt64 = bits >= 64 ? ~0 : (1 << bits) - 1
        if UInt64(bitPattern: a.immediate) & mask != UInt64(bitPattern: z.imm) & mask { return "imm" }
    case .relative:
        if z.type != Int32(ORACLE_OP_REL) { return "type" }
        if a.immediate != z.imm { return "target" }
    case .none:
        return "type"
    }
    return nil
}

/// Addressing-only memory operands: no access (lea, nop, prefetch, cache-line maintenance).
func noMemoryAccess(_ m: Mnemonic) -> Bool {
    switch m {
    case .lea, .nop, .prefetch, .prefetchw, .prefetchnta, .prefetcht0, .prefetcht1, .prefetcht2, .prefetchwt1,
         .invlpg, .clflush, .clflushopt, .clwb, .cldemote, .bndcl, .bndcu, .bndcn, .bndmk:
        return true
    default: return false
    }
}

struct Field {
    var compared = 0
    var agreed = 0
    mutating func count(_ ok: Bool) { compared += 1; if ok { agreed += 1 } }
}

struct OracleStats {
    var decoded = 0          // instructions the oracle decodes
    var length = Field(), mnemonic = Field(), operands = Field(), controlFlow = Field(), memory = Field()
    var weReject = 0         // oracle decodes, kdbt rejects
    var memoryHints = 0      // hint instructions with a memory operand, not compared
}

struct RoundTripStats {
    var instructions = 0
    var relocated = 0        // relocations compared (two displacements per instruction)
    var sameIR = 0
    var widened = 0          // short branches that grew
    var legitimatelyRefused = 0  // the target itself is beyond ±2 GiB of the new address: .outOfReach
    var unsupported = 0      // rel16 branches (66 prefix)
    var farChecked = 0       // relative/RIP-relative instructions relocated 4 GiB away
    var farRefused = 0       // ... reported .outOfReach
    var farWrong = 0         // copies that should have been refused, or refusals of copies
}

var zydis = OracleStats(), capstone = OracleStats()
var roundTrip = RoundTripStats()
var filesRead = 0, codeBytes = 0, zydisRejects = 0, capstoneOnlyRejects = 0
var lengthOnlyChecked = 0, lengthOnlyWrong = 0
var categories: [String: (count: Int, examples: [String])] = [:]

func note(_ category: String, _ example: @autoclosure () -> String) {
    var e = categories[category] ?? (0, [])
    e.count += 1
    if e.examples.count < showN { e.examples.append(example()) }
    categories[category] = e
}

/// The oracle's operands, normalized for the comparison with kdbt's: kdbt lists implicit
/// XMM0 (blendv*, sha256rnds2) and string-instruction memory operands, the oracles hide them.
func compareOperands(_ insn: Instruction, _ ours: Operands, _ o: inout oracle_insn, oracle: String,
                     mnemonic m: String, bytes: UnsafeRawBufferPointer, stats: inout OracleStats, file: String, offset: Int) {
    var ops = ours
    let n = Int(o.count)
    if ops.count == n + 1 && ops[ops.count - 1].type == .register && ops[ops.count - 1].reg == Register(.xmm, 0)
        && insn.encoding == .legacy {
        ops.count -= 1
    }
    let stringOp = insn.map == .primary && (insn.opcode >= 0xA4 && insn.opcode <= 0xA7 || insn.opcode >= 0xAA && insn.opcode <= 0xAF
        || insn.opcode >= 0x6C && insn.opcode <= 0x6F)
    // Capstone lists the string operands; Zydis hides them (and lists nothing for them).
    if stringOp && (n == 0 || oracle == "zydis") { return }
    var bad: String? = nil
    withUnsafeBytes(of: &o.ops) { raw in
        let zops = raw.bindMemory(to: oracle_op.self)
        if ops.count != n {
            bad = "count \(ops.count) vs \(n)"
        } else {
            for k in 0..<n where bad == nil {
                if let c = compareOperand(ops[k], zops[k]) { bad = "op\(k) \(c)" }
            }
        }
        stats.operands.count(bad == nil)
        if let b = bad {
            let ours = (0..<ops.count).map { describe(ops[$0]) }.joined(separator: ", ")
            let theirs = (0..<n).map { describe(zops[$0]) }.joined(separator: ", ")
            note("\(oracle) operands: \(m) \(b)", "\(hexString(bytes, Int(insn.length))) kdbt: \(ours) | \(oracle): \(theirs)")
            return
        }
        // Memory accesses: every memory operand's size and read/write, when either side says it is accessed.
        // Hints (nop, prefetch*, clflush*, ...) access no memory for kdbt (they cannot fault); both oracles
        // call their operand a read. They are counted apart, not compared (see disagreements.md).
        if noMemoryAccess(insn.mnemonic) && insn.mnemonic != .lea {
            if (0..<n).contains(where: { ops[$0].type == .memory }) { stats.memoryHints += 1 }
            return
        }
        var memCompared = false, memOK = true, why = ""
        for k in 0..<n where ops[k].type == .memory {
            let a = ops[k], z = zops[k]
            let ourAccess = noMemoryAccess(insn.mnemonic) ? 0 : Int(a.access)
            let theirAccess = z.agen != 0 ? 0 : Int(z.access)
            if ourAccess == 0 && theirAccess == 0 { continue }
            memCompared = true
            let ourBits = Int(a.mem.size) * 8
            if ourAccess != theirAccess { memOK = false; why = "access kdbt=\(ourAccess) \(oracle)=\(theirAccess)" }
            else if ourBits != Int(z.size) && ourBits != 0 { memOK = false; why = "size kdbt=\(ourBits) \(oracle)=\(z.size)" }
        }
        if memCompared {
            stats.memory.count(memOK)
            if !memOK { note("\(oracle) memory: \(m) \(why)", hexString(bytes, Int(insn.length))) }
        }
    }
}

/// One instruction against one oracle (length, mnemonic, operands, control flow, memory).
func compare(_ insn: Instruction, _ status: DecodeStatus, _ ours: inout Operands, _ operandsDecoded: inout Bool,
             _ o: inout oracle_insn, oracle: String, aliases: [String: String],
             bytes: UnsafeRawBufferPointer, stats: inout OracleStats, file: String, offset: Int) {
    stats.decoded += 1
    let olen = Int(o.length)
    let where_ = "\(file)+0x\(String(offset, radix: 16))"
    if status != .ok {
        stats.weReject += 1
        stats.length.count(false)
        note("\(oracle) length: kdbt rejects (\(status)) \(str(o.mnemonic))", "\(where_): \(hexString(bytes, olen))")
        return
    }
    let lengthOK = Int(insn.length) == olen
    stats.length.count(lengthOK)
    if !lengthOK {
        note("\(oracle) length: \(str(mnemonicName(insn.mnemonic))) kdbt=\(insn.length) \(oracle) \(str(o.mnemonic))=\(olen)",
             "\(where_): \(hexString(bytes, max(olen, Int(insn.length))))")
        return
    }
    let ourCF = oracleCF(insn.controlFlow)
    stats.controlFlow.count(ourCF == o.cf)
    if ourCF != o.cf {
        note("\(oracle) control flow: \(str(mnemonicName(insn.mnemonic))) kdbt=\(cfName(ourCF)) \(oracle)=\(cfName(o.cf))",
             hexString(bytes, olen))
    }
    var same = strcmp(mnemonicName(insn.mnemonic), o.mnemonic) == 0
    var m = ""
    if !same {
        m = str(mnemonicName(insn.mnemonic))
        let theirs = str(o.mnemonic)
        same = zydisAliases[m] == theirs || aliases[theirs] == m || aliases[theirs] == zydisAliases[m]
        if !same { note("\(oracle) mnemonic: kdbt=\(m) \(oracle)=\(theirs)", "\(hexString(bytes, olen)) [\(str(&o.text.0))]") }
    }
    stats.mnemonic.count(same)
    if !same { return }
    if !operandsDecoded { Decoder.decodeOperands(insn, into: &ours); operandsDecoded = true }
    if m.isEmpty { m = str(mnemonicName(insn.mnemonic)) }
    compareOperands(insn, ours, &o, oracle: oracle, mnemonic: m, bytes: bytes, stats: &stats, file: file, offset: offset)
}

// MARK: - round trip

/// Scratch space for relocated code.
let scratch = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16)

/// Relocates `insn` to `newAddress`, decodes the result and compares it with the original
/// (relative and RIP-relative operands as absolute addresses). nil when equal.
func roundTripOnce(_ insn: Instruction, _ ops: Operands, bytes: UnsafeRawBufferPointer, to newAddress: UInt64) -> String? {
    var asm = Assembler(base: scratch, capacity: 64, origin: newAddress)
    let r = Relocator.relocate(insn, bytes: bytes, to: newAddress, into: &asm)
    guard case .relocated(let n) = r else { return "relocate: \(r)" }
    let out = UnsafeRawBufferPointer(start: scratch, count: n)
    var again = Instruction()
    guard Decoder.decode(bytes: out, address: newAddress, into: &again) == .ok else { return "does not decode" }
    if again.mnemonic != insn.mnemonic { return "mnemonic \(str(mnemonicName(again.mnemonic)))" }
    if again.controlFlow != insn.controlFlow { return "control flow \(again.controlFlow)" }
    var trampoline = false
    if let t = insn.directBranchTarget {
        if insn.map == .primary && insn.opcode >= 0xE0 && insn.opcode <= 0xE3 {
            // op +2; jmp +5; jmp rel32 target
            trampoline = true
            guard again.directBranchTarget == again.nextAddress &+ 2 else { return "trampoline: short branch" }
            var skip = Instruction(), far = Instruction()
            let rest = UnsafeRawBufferPointer(rebasing: out[Int(again.length)...])
            guard Decoder.decode(bytes: rest, address: again.nextAddress, into: &skip) == .ok,
                  skip.directBranchTarget == newAddress &+ UInt64(n) else { return "trampoline: fall-through" }
            let last = UnsafeRawBufferPointer(rebasing: rest[Int(skip.length)...])
            guard Decoder.decode(bytes: last, address: skip.nextAddress, into: &far) == .ok,
                  far.directBranchTarget == t else { return "trampoline: target" }
        } else if again.directBranchTarget != t {
            return "branch target"
        }
        if again.length != insn.length { roundTrip.widened += 1 }
    } else if again.length != insn.length {
        return "length \(again.length)"
    }
    if insn.ripRelativeTarget != again.ripRelativeTarget { return "rip-relative target" }
    var ops2 = Operands()
    Decoder.decodeOperands(again, into: &ops2)
    if ops2.count != ops.count { return "operand count" }
    for k in 0..<ops.count {
        let a = ops[k], b = ops2[k]
        if a.type != b.type || a.access != b.access || a.reg != b.reg { return "op\(k)" }
        if a.type == .relative {
            if !trampoline && a.immediate != b.immediate { return "op\(k) target" }
            continue
        }
        if a.size != b.size || a.immediate != b.immediate { return "op\(k) size/value" }
        if a.type == .memory {
            let m = a.mem, m2 = b.mem
            if m.segment != m2.segment || m.base != m2.base || m.index != m2.index || m.scale != m2.scale
                || m.size != m2.size || m.broadcast != m2.broadcast { return "op\(k) memory" }
            if m.base.cls != .rip && m.base.cls != .eip && m.disp != m2.disp { return "op\(k) disp" }
        }
    }
    return nil
}

func roundTripCheck(_ insn: Instruction, _ ops: Operands, bytes: UnsafeRawBufferPointer) {
    roundTrip.instructions += 1
    let isRelative = insn.directBranchTarget != nil || (insn.isRIPRelative && insn.addressSize == 64)
    if insn.directBranchTarget != nil && insn.prefixes.has(Prefixes.operandSize) {
        roundTrip.unsupported += 1
        return
    }
    for delta: Int64 in [0x1234_5678, -0x700_0000] {
        roundTrip.relocated += 1
        let to = insn.address &+ UInt64(bitPattern: delta)
        // A target that is itself beyond ±2 GiB of the new address (per-CPU gs:[rip+disp] operands of
        // vmlinux point near address 0) must be refused: count that as the right answer.
        if let target = insn.directBranchTarget ?? (insn.addressSize == 64 ? insn.ripRelativeTarget : nil) {
            let distance = Int64(bitPattern: target &- to)
            if distance > Int64(Int32.max) - 32 || distance < Int64(Int32.min) + 32 {
                var asm = Assembler(base: scratch, capacity: 64, origin: to)
                if Relocator.relocate(insn, bytes: bytes, to: to, into: &asm) == .outOfReach && asm.count == 0 {
                    roundTrip.sameIR += 1
                    roundTrip.legitimatelyRefused += 1
                } else {
                    note("round trip: target out of reach not refused: \(str(mnemonicName(insn.mnemonic)))",
                         hexString(bytes, Int(insn.length)))
                }
                continue
            }
        }
        if let why = roundTripOnce(insn, ops, bytes: bytes, to: to) {
            note("round trip: \(str(mnemonicName(insn.mnemonic))) \(why)", hexString(bytes, Int(insn.length)))
        } else {
            roundTrip.sameIR += 1
        }
    }
    // 4 GiB away: every branch and RIP-relative operand is out of reach; anything else is a copy.
    var asm = Assembler(base: scratch, capacity: 64, origin: insn.address &+ 0x1_0000_0000)
    let r = Relocator.relocate(insn, bytes: bytes, to: asm.origin, into: &asm)
    if isRelative {
        roundTrip.farChecked += 1
        if r == .outOfReach && asm.count == 0 { roundTrip.farRefused += 1 } else {
            roundTrip.farWrong += 1
            note("round trip: out of reach not refused: \(str(mnemonicName(insn.mnemonic)))", hexString(bytes, Int(insn.length)))
        }
    } else if r != .relocated(length: Int(insn.length)) {
        roundTrip.farWrong += 1
        note("round trip: copy refused: \(str(mnemonicName(insn.mnemonic))) \(r)", hexString(bytes, Int(insn.length)))
    }
}

// MARK: - sweep

func sweep(_ code: UnsafeRawBufferPointer, base: UInt64, file: String) {
    var off = 0
    var z = oracle_insn(), c = oracle_insn()
    var insn = Instruction()
    var ops = Operands()
    let n = code.count
    while off < n {
        let slice = UnsafeRawBufferPointer(rebasing: code[off..<min(n, off + 15)])
        let addr = base &+ UInt64(off)
        let p = slice.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let status = Decoder.decode(bytes: slice, address: addr, into: &insn)
        // The length-only path must give decode's answer everywhere, decodable or not.
        lengthOnlyChecked += 1
        if Decoder.instructionLength(bytes: slice) != (status == .ok ? Int(insn.length) : 0) {
            lengthOnlyWrong += 1
            note("length-only: differs from decode (\(status), \(insn.length))", hexString(slice, 15))
        }
        let zok = oracle_zydis(p, slice.count, addr, &z, 1) != 0
        let cok = oracle_capstone(p, slice.count, addr, &c) != 0
        var operandsDecoded = false
        if zok {
            compare(insn, status, &ops, &operandsDecoded, &z, oracle: "zydis", aliases: [:], bytes: slice,
                    stats: &zydis, file: file, offset: off)
        } else {
            zydisRejects += 1
        }
        if cok {
            compare(insn, status, &ops, &operandsDecoded, &c, oracle: "capstone", aliases: capstoneAliases, bytes: slice,
                    stats: &capstone, file: file, offset: off)
        } else if zok {
            capstoneOnlyRejects += 1
            note("capstone rejects: \(str(z.mnemonic))", hexString(slice, Int(z.length)))
        }
        if status == .ok && zok && Int(insn.length) == Int(z.length) {
            if !operandsDecoded { Decoder.decodeOperands(insn, into: &ops) }
            roundTripCheck(insn, ops, bytes: UnsafeRawBufferPointer(rebasing: slice[0..<Int(insn.length)]))
        }
        off += zok ? Int(z.length) : 1
    }
}

func process(_ path: String) {
    let elf: ELFFile
    do { elf = try ELFFile(path: path) } catch {
        fputs("decoder-diff: \(error)\n", stderr)
        return
    }
    filesRead += 1
    elf.bytes.withUnsafeBytes { all in
        for s in elf.sections where s.isExecutable && s.size > 0 {
            guard s.offset + s.size <= UInt64(all.count) else { continue }
            codeBytes += Int(s.size)
            sweep(UnsafeRawBufferPointer(rebasing: all[Int(s.offset)..<Int(s.offset + s.size)]),
                  base: elf.loadAddress(of: s), file: path)
        }
    }
}

// MARK: - report

func pct(_ f: Field) -> String {
    if f.compared == 0 { return "n/a" }
    let v = Double(f.agreed) * 100 / Double(f.compared)
    var s = String(Int(v * 10000)), digits = s.count
    while digits < 5 { s = "0" + s; digits += 1 }
    s.insert(".", at: s.index(s.endIndex, offsetBy: -4))
    return s + "%"
}

func cell(_ f: Field) -> String {
    let s = "\(f.agreed)/\(f.compared) \(pct(f))"
    return s + String(repeating: " ", count: max(0, 34 - s.count))
}

func printTable() {
    print("decoder-diff: \(filesRead) files, \(codeBytes) bytes of code")
    print("instructions: Zydis decodes \(zydis.decoded) (rejects \(zydisRejects) bytes, resync +1), "
        + "Capstone decodes \(capstone.decoded) (rejects \(capstoneOnlyRejects) that Zydis decodes)")
    print("")
    print("field                 kdbt vs Zydis                       kdbt vs Capstone")
    print("length                \(cell(zydis.length))  \(cell(capstone.length))")
    print("mnemonic              \(cell(zydis.mnemonic))  \(cell(capstone.mnemonic))")
    print("operands              \(cell(zydis.operands))  \(cell(capstone.operands))")
    print("control-flow kind     \(cell(zydis.controlFlow))  \(cell(capstone.controlFlow))")
    print("memory accesses       \(cell(zydis.memory))  \(cell(capstone.memory))")
    print("  (not compared: \(zydis.memoryHints) hints with a memory operand, nop/prefetch/clflush: no access for kdbt)")
    print("")
    let rt = Field(compared: roundTrip.relocated, agreed: roundTrip.sameIR)
    print("round trip (decode, relocate by +0x12345678 and -0x7000000, decode): \(roundTrip.instructions) instructions, "
        + "\(cell(rt).trimmingTrailingSpaces) same IR (of which \(roundTrip.legitimatelyRefused) correctly refused: target beyond "
        + "±2 GiB of the new address); \(roundTrip.widened) short branches widened, "
        + "\(roundTrip.unsupported) rel16 branches refused")
    print("length-only decode (Decoder.instructionLength) equals decode at \(lengthOnlyChecked - lengthOnlyWrong)/\(lengthOnlyChecked) offsets")
    print("out of reach (relocated +4 GiB): \(roundTrip.farRefused)/\(roundTrip.farChecked) branches and RIP-relative "
        + "operands refused, \(roundTrip.farWrong) wrong")
    var text = "disagreement classes (count, examples):\n"
    for (k, v) in categories.sorted(by: { $0.value.count > $1.value.count || $0.value.count == $1.value.count && $0.key < $1.key }) {
        text += "  [\(v.count)] \(k)\n"
        for e in v.examples { text += "      \(e)\n" }
    }
    if let path = classesPath, let f = fopen(path, "w") {
        fputs(text, f)
        fclose(f)
        print("\n\(categories.count) disagreement classes with examples: \(path) (reasons: Tests/DecoderDiff/disagreements.md)")
    } else if !quiet && !categories.isEmpty {
        print("\n" + text, terminator: "")
    }
}

extension String {
    var trimmingTrailingSpaces: String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}

// MARK: - --hex

if hexMode {
    for h in files {
        var b: [UInt8] = []
        var it = h.makeIterator()
        while let x = it.next(), let y = it.next() { b.append(UInt8(String([x, y]), radix: 16) ?? 0) }
        var insn = Instruction(), ops = Operands(), z = oracle_insn(), c = oracle_insn()
        let s = b.withUnsafeBytes { Decoder.decode(bytes: $0, address: 0x1000, into: &insn) }
        var ours = "\(s) len=\(insn.length) \(str(mnemonicName(insn.mnemonic)))"
        if s == .ok {
            Decoder.decodeOperands(insn, into: &ops)
            ours += " " + (0..<ops.count).map { describe(ops[$0]) }.joined(separator: ", ")
            ours += " cf=\(cfName(oracleCF(insn.controlFlow)))"
        }
        print("\(h)\n  kdbt:     \(ours)")
        for (name, ok) in [("zydis", b.withUnsafeBytes { oracle_zydis($0.baseAddress!.assumingMemoryBound(to: UInt8.self), $0.count, 0x1000, &z, 1) }),
                           ("capstone", b.withUnsafeBytes { oracle_capstone($0.baseAddress!.assumingMemoryBound(to: UInt8.self), $0.count, 0x1000, &c) })] {
            var o = name == "zydis" ? z : c
            let text = ok == 0 ? "rejects" : "len=\(o.length) \(str(o.mnemonic)) "
                + withUnsafeBytes(of: &o.ops) { raw in
                    (0..<Int(o.count)).map { describe(raw.bindMemory(to: oracle_op.self)[$0]) }.joined(separator: ", ")
                } + " cf=\(cfName(o.cf))"
            print("  \(name):\(String(repeating: " ", count: 9 - name.count))\(text)")
        }
    }
    exit(0)
}

if fuzzCount > 0 || fuzzCase != nil {
    exit(runFuzz(count: fuzzCount, seed: seed, only: fuzzCase))
}

guard !files.isEmpty else {
    fputs("usage: decoder-diff [--check] [--quiet] [--files-from LIST] FILE... | --fuzz N [--seed S] | --hex HEX...\n", stderr)
    exit(64)
}
for f in files { process(f) }
printTable()
if check {
    var failures: [String] = []
    if zydis.length.agreed != zydis.length.compared { failures.append("length differs from Zydis") }
    for (name, f) in [("operands", zydis.operands), ("control-flow kind", zydis.controlFlow), ("memory accesses", zydis.memory)]
        where f.compared > 0 && Double(f.agreed) < Double(f.compared) * 0.999 {
        failures.append("\(name) agree with Zydis on less than 99.9%")
    }
    if roundTrip.sameIR != roundTrip.relocated || roundTrip.farWrong != 0 { failures.append("round trip failures") }
    if lengthOnlyWrong != 0 { failures.append("length-only decode differs from decode") }
    if !failures.isEmpty {
        print("decoder-diff --check FAILED: " + failures.joined(separator: "; "))
        exit(1)
    }
    print("decoder-diff --check: ok")
}
