// SPDX-License-Identifier: GPL-2.0-only
//
// inscount against an independent oracle: the same function, run natively in a
// forked child and single-stepped with ptrace, must retire exactly as many
// instructions as the translated run counts.

import CKdbtSys
import CWorkloads
import Engine
import Glibc
import Testing
import UserHost

typealias Workload = @convention(c) (Int, Int) -> Int

struct CountedWorkload: CustomTestStringConvertible, Sendable {
    let name: String
    /// The workload's name for kdbt-inscount-oracle.
    let oracleName: String
    let function: Workload
    let a: Int
    let b: Int
    var testDescription: String { name }
}

let countedWorkloads: [CountedWorkload] = [
    CountedWorkload(name: "loop", oracleName: "loop", function: { a, _ in kw_sum(a) }, a: 20_000, b: 0),
    CountedWorkload(name: "recursion", oracleName: "recursion", function: { a, _ in kw_fib(a) }, a: 18, b: 0),
    CountedWorkload(name: "SHA-256", oracleName: "sha256", function: { a, b in kw_sha256(a, b) }, a: 4_096, b: 5),
    CountedWorkload(name: "jump-table interpreter", oracleName: "interpret", function: { a, _ in kw_interpret(a) }, a: 20_000, b: 0),
    CountedWorkload(name: "indirect calls", oracleName: "indirect", function: { a, _ in kw_indirect(a) }, a: 10_000, b: 0),
    CountedWorkload(name: "setjmp/longjmp", oracleName: "longjmp", function: { a, b in kw_longjmp(a, b) }, a: 20, b: 30),
]

/// Workloads that go through glibc's allocator (their paths depend on the heap).
let allocatingWorkloads: [CountedWorkload] = [
    CountedWorkload(name: "qsort", oracleName: "qsort", function: { a, b in kw_qsort(a, b) }, a: 600, b: 9),
    CountedWorkload(name: "string functions", oracleName: "strings", function: { a, _ in kw_strings(a) }, a: 2_000, b: 0),
    CountedWorkload(name: "zlib", oracleName: "zlib", function: { a, b in kw_zlib(a, b) }, a: 3_000, b: 4),
]

/// kdbt-inscount-oracle, found next to this test bundle (`swift build` builds it).
let oracleProgram: String? = {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    var dir = String(decoding: buffer[0..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    while let slash = dir.lastIndex(of: "/") {
        dir = String(dir[..<slash])
        if access(dir + "/kdbt-inscount-oracle", X_OK) == 0 { return dir + "/kdbt-inscount-oracle" }
    }
    return nil
}()

/// The first line a command prints, or nil when it fails.
func runOutput(_ command: String) -> String? {
    guard let pipe = popen(command, "r") else { return nil }
    var line = [CChar](repeating: 0, count: 1024)
    let got = fgets(&line, Int32(line.count), pipe) != nil
    guard pclose(pipe) == 0, got else { return nil }
    return String(decoding: line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Each case runs in a process of its own, so the cases run in parallel.
@Suite("inscount against the ptrace oracle")
struct InsCountOracleTests {
    /// kdbt-inscount-oracle runs both counts in a single-threaded process of its
    /// own: children forked from this multi-threaded runner took glibc allocator
    /// paths differing by a few instructions between the native and translated run.
    @Test("equals the ptrace single-step count", arguments: countedWorkloads + allocatingWorkloads)
    func matchesOracle(_ w: CountedWorkload) throws {
        let oracle = try #require(oracleProgram, "kdbt-inscount-oracle is not built next to this test bundle")
        let line = try #require(runOutput("\(oracle) \(w.oracleName) \(w.a) \(w.b)"))
        // oracle N counted N native R child R translated R
        let fields = line.split(separator: " ").map(String.init)
        try #require(fields.count == 10, "unexpected output: \(line)")
        let native = w.function(w.a, w.b)
        #expect(Int(fields[1])! > 0)
        #expect(fields[5] == "\(native)" && fields[7] == "\(native)" && fields[9] == "\(native)", "\(line)")
        #expect(fields[3] == fields[1], "inscount \(fields[3]), ptrace \(fields[1])")
    }
}

@Suite("inscount", .serialized)
struct InsCountTests {
    final class Counting: @unchecked Sendable {
        let runner = InProcessRunner()
        let counter: Int32
        let statistics = UnsafeMutablePointer<InsCountStatistics>.allocate(capacity: 1)
        init() {
            statistics.initialize(to: InsCountStatistics())
            counter = runner.register(InsCount.registration(statistics: statistics), storageBytes: InsCount.storageBytes)!
                + InsCount.counterOffset
        }
    }
    static let counting = Counting()

    @Test("counters go where the flags are dead in most blocks")
    func placement() throws {
        let c = Counting()
        for w in countedWorkloads + allocatingWorkloads { _ = try c.runner.call(unsafeBitCast(w.function, to: UnsafeRawPointer.self),
                                                          UInt64(bitPattern: Int64(w.a)), UInt64(bitPattern: Int64(w.b))) }
        let s = c.statistics.pointee
        print("inscount placement: \(s.blocksFlagsDead) blocks with flags dead, \(s.blocksFlagsLive) preserving")
        #expect(s.blocksFlagsDead > 3 * s.blocksFlagsLive)
    }

    @Test("the null tool runs every workload with native results")
    func nullTool() throws {
        let runner = InProcessRunner()
        #expect(runner.register(NullTool.registration, storageBytes: 0) != nil)
        for w in countedWorkloads + allocatingWorkloads {
            let translated = try runner.call(unsafeBitCast(w.function, to: UnsafeRawPointer.self),
                                             UInt64(bitPattern: Int64(w.a)), UInt64(bitPattern: Int64(w.b)))
            #expect(Int(bitPattern: UInt(translated)) == w.function(w.a, w.b), "\(w.name)")
        }
    }
}

@Suite("inscount per-block profile")
struct InsCountProfileTests {
    @Test("per-block counts add up to the total, and the hottest block is the loop")
    func profileAddsUp() throws {
        let runner = InProcessRunner()
        let sum: Workload = { a, _ in kw_sum(a) }
        let near = UInt64(UInt(bitPattern: unsafeBitCast(sum, to: UnsafeRawPointer.self)))
        let capacity = 4096
        // Counters are updated RIP-relative: within reach of the code, like the cache.
        let counters = try #require(kdbt_sys_map_code_near(capacity * 8, near)).bindMemory(to: UInt64.self, capacity: capacity)
        let starts = UnsafeMutablePointer<UInt64>.allocate(capacity: capacity)
        let profile = UnsafeMutablePointer<InsCountProfile>.allocate(capacity: 1)
        profile.initialize(to: InsCountProfile(counters: counters, blockStart: starts, capacity: capacity))
        let data = UnsafeMutablePointer<InsCountData>.allocate(capacity: 1)
        data.initialize(to: InsCountData(profile: profile))
        let offset = try #require(runner.register(InsCount.registration(data: data), storageBytes: InsCount.storageBytes))
        runner.setContextWord(at: offset + InsCount.counterOffset, to: 0)
        let result = try runner.call(unsafeBitCast(sum, to: UnsafeRawPointer.self), 50_000)
        #expect(Int(bitPattern: UInt(result)) == kw_sum(50_000))
        let total = runner.contextWord(at: offset + InsCount.counterOffset)
        var profiled: UInt64 = 0
        var hottest: UInt64 = 0
        for i in 0..<profile.pointee.used {
            profiled += counters[i]
            hottest = max(hottest, counters[i])
        }
        #expect(profile.pointee.used > 0)
        #expect(profiled == total)
        #expect(hottest * 2 > total)  // a tight loop dominates kw_sum
    }
}
