// SPDX-License-Identifier: GPL-2.0-only
//
// kdbt-inscount-oracle WORKLOAD A B: inscount against the ptrace single-step
// oracle, in a process of its own. The test runner is multi-threaded, and glibc's
// allocator takes slightly different paths in children forked from it; this
// program is single-threaded, so both counted runs start from identical state.
// Prints: oracle N counted N native R translated R.

import CWorkloads
import Engine
import Glibc
import UserHost

func fail(_ message: String, status: Int32) -> Never {
    _ = message.withCString { write(2, $0, strlen($0)) }
    exit(status)
}

typealias Workload = @convention(c) (Int, Int) -> Int

func workload(named name: String) -> Workload? {
    switch name {
    case "loop": return { a, _ in kw_sum(a) }
    case "recursion": return { a, _ in kw_fib(a) }
    case "sha256": return { a, b in kw_sha256(a, b) }
    case "interpret": return { a, _ in kw_interpret(a) }
    case "indirect": return { a, _ in kw_indirect(a) }
    case "longjmp": return { a, b in kw_longjmp(a, b) }
    case "qsort": return { a, b in kw_qsort(a, b) }
    case "strings": return { a, _ in kw_strings(a) }
    case "zlib": return { a, b in kw_zlib(a, b) }
    default: return nil
    }
}

let arguments = CommandLine.arguments
guard arguments.count == 4, let function = workload(named: arguments[1]),
      let a = Int(arguments[2]), let b = Int(arguments[3])
else {
    fail("usage: kdbt-inscount-oracle loop|recursion|sha256|interpret|indirect|longjmp|qsort|strings|zlib A B\n",
         status: 64)
}

let runner = InProcessRunner()
guard let storage = runner.register(InsCount.registration(statistics: nil), storageBytes: InsCount.storageBytes) else {
    fail("kdbt-inscount-oracle: cannot register inscount\n", status: 1)
}
let native = function(a, b)  // also binds the lazy PLT entries the workload uses
do {
    // One translated run first, here: the runs counted below then translate
    // nothing. With translation in the counted child, the string and zlib
    // workloads took paths of other lengths than the ptrace run in about one run
    // in four (a few hundred instructions, either way; counting per stretch
    // instead of per block changed nothing, a warm cache fixed it): the host's
    // work in that process moved what the workload's paths depend on (heap
    // addresses are the likely suspect; not pinned down).
    _ = try runner.call(unsafeBitCast(function, to: UnsafeRawPointer.self),
                        UInt64(bitPattern: Int64(a)), UInt64(bitPattern: Int64(b)))
    runner.setContextWord(at: storage + InsCount.counterOffset, to: 0)
    let prepared = try runner.prepare(unsafeBitCast(function, to: UnsafeRawPointer.self),
                                      [UInt64(bitPattern: Int64(a)), UInt64(bitPattern: Int64(b))])
    let counter = UnsafePointer<UInt64>(bitPattern: UInt(prepared.contextAddress) + UInt(storage + InsCount.counterOffset))!
    var childNative = 0
    var translated = 0
    var counted = 0
    let oracle = kw_count_pair(function, a, b, prepared.contextAddress, prepared.enter, counter,
                               &childNative, &translated, &counted)
    print("oracle \(oracle) counted \(counted) native \(native) child \(childNative) translated \(translated)")
} catch {
    fail("kdbt-inscount-oracle: \(error)\n", status: 1)
}
