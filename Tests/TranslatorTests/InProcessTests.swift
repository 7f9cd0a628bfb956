// SPDX-License-Identifier: GPL-2.0-only
//
// Real code run translated in-process and compared with its native result: loops,
// recursion, callbacks through libc (qsort), SHA-256, a jump-table interpreter,
// setjmp/longjmp, glibc's vectorized string functions, zlib.

import CWorkloads
import CxxWorkloads
import Engine
import Testing
import UserHost

func address<T>(of function: T) -> UnsafeRawPointer {
    unsafeBitCast(function, to: UnsafeRawPointer.self)
}

@Suite("in-process translation", .serialized)
struct InProcessTests {
    static let runner = InProcessRunner()

    /// Runs a C function natively and translated; both results must agree.
    func same(_ function: @convention(c) (Int, Int) -> Int, _ a: Int, _ b: Int = 0,
              sourceLocation: SourceLocation = #_sourceLocation) throws {
        let native = function(a, b)
        let translated = try Self.runner.call(address(of: function), UInt64(bitPattern: Int64(a)), UInt64(bitPattern: Int64(b)))
        #expect(Int(bitPattern: UInt(translated)) == native, sourceLocation: sourceLocation)
    }

    @Test("a loop") func sum() throws { try same({ a, _ in kw_sum(a) }, 100_000) }
    @Test("recursion") func fib() throws { try same({ a, _ in kw_fib(a) }, 22) }
    @Test("qsort with a comparator callback") func qsort() throws { try same({ a, b in kw_qsort(a, b) }, 20_000, 42) }
    @Test("SHA-256") func sha256() throws { try same({ a, b in kw_sha256(a, b) }, 200_000, 7) }
    @Test("switch jump tables") func interpret() throws { try same({ a, _ in kw_interpret(a) }, 300_000) }
    @Test("setjmp/longjmp") func longjmp() throws { try same({ a, b in kw_longjmp(a, b) }, 50, 100) }
    @Test("glibc vectorized string functions") func strings() throws { try same({ a, _ in kw_strings(a) }, 100_000) }
    @Test("zlib compress and uncompress") func zlib() throws { try same({ a, b in kw_zlib(a, b) }, 300_000, 3) }
    @Test("indirect calls through a table") func indirect() throws { try same({ a, _ in kw_indirect(a) }, 100_000) }
    @Test("a 10 kHz SIGALRM storm during a long computation") func alarmStorm() throws {
        try same({ a, b in kw_alarm_storm(a, b) }, 20_000_000, 11)
    }
    @Test("C++ exceptions unwinding through translated frames") func cxxExceptions() throws {
        try same({ a, b in kw_cxx_exceptions(a, b) }, 30, 200)
    }

    @Test("blocks are linked and indirect branches mostly hit the inline lookup")
    func statistics() throws {
        try same({ a, _ in kw_indirect(a) }, 50_000)
        let s = Self.runner.stats
        #expect(s.blocks > 0)
        #expect(s.links > 0)
        // Each run leaves through the sentinel (a miss) plus first-time misses only.
        #expect(s.indirectMisses < s.blocks + 100)
    }
}
