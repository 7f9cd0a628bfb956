// SPDX-License-Identifier: GPL-2.0-only
//
// fragment(containing:) over fragments appended out of cache order (code units
// used one after another, a later one below an earlier, and back): the search
// by runs finds what a scan of every fragment finds, for every address.
import Testing
import UserHost
@testable import Engine

@Suite("fragment lookup")
struct FragmentLookupTests {
    static func fragment(_ start: UInt64, _ bytes: UInt64) -> Fragment {
        Fragment(nativeStart: start, nativeEnd: start, nativeLow: start, cacheStart: start, cacheEnd: start + bytes,
                 instructions: 0, boundaryStart: 0, boundaryCount: 0)
    }

    /// The scan the search must agree with.
    static func scan(_ t: Translator, _ pc: UInt64) -> Int {
        var i = t.state.pointee.fragmentCount - 1
        while i >= 0 {
            let f = t.state.pointee.fragments[i]
            if pc >= f.cacheStart && pc < f.cacheEnd { return i }
            i -= 1
        }
        return -1
    }

    @Test("runs of sorted fragments in several units, with gaps, agree with a scan")
    func runs() {
        let runner = InProcessRunner()
        let t = runner.translator
        #expect(t.state.pointee.fragmentCount == 0)
        // Unit A at 0x20000 (gaps between fragments), unit B below it, A again
        // (still ascending: the second run goes on), then B again (a third run).
        var layout: [(UInt64, UInt64)] = []
        var a: UInt64 = 0x20000, b: UInt64 = 0x10000
        for k in 0..<40 { layout.append((a, 24 + UInt64(k % 5) * 8)); a += 64 }
        for k in 0..<30 { layout.append((b, 16 + UInt64(k % 3) * 16)); b += 48 }
        for _ in 0..<10 { layout.append((a, 32)); a += 40 }
        for _ in 0..<10 { layout.append((b, 8)); b += 8 }
        for (start, bytes) in layout { t.appendFragment(Self.fragment(start, bytes)) }
        #expect(t.state.pointee.fragmentRunCount == 3)
        var found = 0
        for pc in stride(from: UInt64(0xFF00), to: a + 256, by: 4) {
            let expected = Self.scan(t, pc)
            #expect(t.fragment(containing: pc) == expected, "pc \(pc)")
            if expected >= 0 { found += 1 }
        }
        #expect(found > 0)
    }
}
