// SPDX-License-Identifier: GPL-2.0-only
//
// The text report, line by line against KASAN's layout (mm/kasan/report.c).

import KdbtClient
import Protocol
import Testing

/// The lines of a one-finding text report.
func lines(_ record: FindingRecord, symbolizer: (any FrameSymbolizing)? = nil) -> [String] {
    let report = FindingReport(records: [record], resolver: FrameResolver(kallsyms: Fixture.kallsyms, symbolizer: symbolizer))
    return report.text().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
}

/// The shadow row marked with ">" and the caret line under it.
func markedRow(_ lines: [String]) -> (row: String, caret: String)? {
    guard let i = lines.firstIndex(where: { $0.hasPrefix(">") }), i + 1 < lines.count else { return nil }
    return (lines[i], lines[i + 1])
}

func caret(granule: Int) -> String { String(repeating: " ", count: 19 + 3 * granule) + "^" }

@Suite("findings: text report")
struct TextReportTests {
    @Test("use-after-free: the whole report, exactly")
    func useAfterFree() {
        let expected = """
            ==================================================================
            BUG: KDBT: use-after-free in kdbt_heapbugs_uaf_read+0x2a/0x60 [kdbt_heapbugs]
            Read of size 4 at addr ffff888003d4c80c by task sh/123

            CPU: 1 PID: 123 Comm: sh
            Call Trace:
             <TASK>
             kdbt_heapbugs_uaf_read+0x2a/0x60 [kdbt_heapbugs]
             do_syscall_64+0x40/0x100
             entry_SYSCALL_64+0x60/0x100
             </TASK>

            Allocated by task 123 on cpu 1:
             __kmalloc+0x30/0x100
             kdbt_heapbugs_uaf_read+0x10/0x60 [kdbt_heapbugs]
             do_syscall_64+0x40/0x100

            Freed by task 77 on cpu 0:
             kfree+0x20/0x100
             kdbt_heapbugs_uaf_read+0x20/0x60 [kdbt_heapbugs]

            The buggy address belongs to the object at ffff888003d4c800
             which belongs to the cache kmalloc-128 of size 128
            The buggy address is located 12 bytes inside of
             96-byte region [ffff888003d4c800, ffff888003d4c860)

            Memory state around the buggy address:
             ffff888003d4c700: fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc
             ffff888003d4c780: 00 00 00 00 00 00 00 00 00 00 00 00 fc fc fc fc
            >ffff888003d4c800: fb fb fb fb fb fb fb fb fb fb fb fb fb fb fb fb
                                  ^
             ffff888003d4c880: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
             ffff888003d4c900: fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc
            ==================================================================

            """
        let report = FindingReport(records: [Fixture.useAfterFree], resolver: FrameResolver(kallsyms: Fixture.kallsyms))
        #expect(report.text() == expected)
    }

    @Test("out of bounds just past the requested bytes: 0 bytes to the right, caret on the partial granule")
    func rightOfObject() {
        let l = lines(Fixture.outOfBounds(address: Fixture.object + 100))
        #expect(l[1] == "BUG: KDBT: slab-out-of-bounds in kdbt_heapbugs_write+0x10/0xa0 [kdbt_heapbugs]")
        #expect(l[2] == "Write of size 1 at addr ffff888003d4c864 by task sh/123")
        #expect(l.contains("The buggy address is located 0 bytes to the right of"))
        #expect(l.contains(" 100-byte region [ffff888003d4c800, ffff888003d4c864)"))
        #expect(!l.contains { $0.hasPrefix("Freed by") })
        let marked = markedRow(l)
        #expect(marked?.row == ">ffff888003d4c800: 00 00 00 00 00 00 00 00 00 00 00 00 04 fc fc fc")
        #expect(marked?.caret == caret(granule: 12))
    }

    @Test("out of bounds further right: the distance from the region's end")
    func rightWithDistance() {
        let l = lines(Fixture.outOfBounds(address: Fixture.object + 112))
        #expect(l.contains("The buggy address is located 12 bytes to the right of"))
        #expect(markedRow(l)?.caret == caret(granule: 14))
    }

    @Test("before the object: to the left of, marked in the row above")
    func leftOfObject() {
        let l = lines(Fixture.outOfBounds(address: Fixture.object - 8, size: 8))
        #expect(l.contains("The buggy address is located 8 bytes to the left of"))
        let marked = markedRow(l)
        #expect(marked?.row.hasPrefix(">ffff888003d4c780: 00") == true)
        #expect(marked?.caret == caret(granule: 15))
        #expect(l.filter { $0.hasPrefix(">") }.count == 1)
    }

    @Test("the caret points at the first bad granule of the access, not at its start")
    func firstBadGranule() {
        // 16 bytes at +88: granule 11 is accessible, granule 12 has 4 bytes.
        let l = lines(Fixture.outOfBounds(address: Fixture.object + 88, size: 16))
        #expect(l.contains("The buggy address is located 88 bytes inside of"))
        #expect(markedRow(l)?.caret == caret(granule: 12))
    }

    @Test("double free: KASAN's title and free line, both stacks")
    func doubleFree() {
        let l = lines(Fixture.badFree(.doubleFree, address: Fixture.object))
        #expect(l[1] == "BUG: KDBT: double-free in kfree+0x10/0x100")
        #expect(l[2] == "Free of addr ffff888003d4c800 by task kworker/0:1/77")
        #expect(l.contains("CPU: 0 PID: 77 Comm: kworker/0:1"))
        #expect(l.contains("Allocated by task 123 on cpu 1:"))
        #expect(l.contains("Freed by task 77 on cpu 0:"))
        #expect(l.contains("The buggy address is located 0 bytes inside of"))
        #expect(markedRow(l)?.caret == caret(granule: 0))
    }

    @Test("invalid free of a pointer into the object")
    func invalidFree() {
        let l = lines(Fixture.badFree(.invalidFree, address: Fixture.object + 8))
        #expect(l[1] == "BUG: KDBT: invalid-free in kfree+0x10/0x100")
        #expect(l[2] == "Free of addr ffff888003d4c808 by task kworker/0:1/77")
        #expect(l.contains("The buggy address is located 8 bytes inside of"))
        #expect(!l.contains { $0.hasPrefix("Freed by") })
        #expect(markedRow(l)?.caret == caret(granule: 1))
    }

    @Test("a finding seen several times says so under the access line")
    func repeated() {
        var record = Fixture.useAfterFree
        record.count = 7
        let l = lines(record)
        #expect(l[3] == "This finding was seen 7 times; task and stacks are those of the first.")
        #expect(!lines(Fixture.useAfterFree).contains { $0.contains("times") })
    }

    @Test("page-backed objects name no cache; unknown objects print no object section")
    func objectKinds() {
        let page = Fixture.access(.outOfBounds, address: Fixture.object + 8200, size: 8, pc: Fixture.write + 0x10,
                                  objectSize: 8200, objectRow: Fixture.oobRow,
                                  flags: FindingLayout.Flags.pageBacked, cacheName: "", cacheObjectSize: 12288)
        let l = lines(page)
        #expect(l.contains(" which belongs to a page allocation of size 12288"))
        #expect(l.contains("The buggy address is located 0 bytes to the right of"))

        var unknown = Fixture.outOfBounds(address: Fixture.object + 100)
        unknown.objectStart = 0
        let u = lines(unknown)
        #expect(!u.contains { $0.contains("belongs to the object") || $0.hasPrefix("Allocated by") })
        #expect(u.contains("Memory state around the buggy address:"))
    }

    @Test("addresses kallsyms does not know stay addresses; no symbols at all still renders")
    func unknownSymbols() {
        var record = Fixture.useAfterFree
        record.accessStack = FindingStack(frames: [record.pc, 0x1234])
        #expect(lines(record).contains(" 0x1234"))
        let bare = FindingReport(records: [record], resolver: FrameResolver(kallsyms: nil)).text()
        #expect(bare.contains("BUG: KDBT: use-after-free in 0xffffffffc000102a\n"))
    }

    @Test("no findings, and findings dropped for want of ring space")
    func emptyAndDropped() {
        let resolver = FrameResolver(kallsyms: Fixture.kallsyms)
        #expect(FindingReport(records: [], resolver: resolver).text() == "findings: none\n")
        #expect(FindingReport(records: [], resolver: resolver).hasFindings == false)
        let dropped = FindingReport(records: [], dropped: 3, resolver: resolver)
        #expect(dropped.text().hasSuffix("findings: 3 more dropped: the module's report ring was full\n"))
        #expect(dropped.hasFindings)
    }
}

@Suite("findings: symbolized frames")
struct SymbolizedFrameTests {
    @Test("inlined callees first with [inline], then function+offset [module] FILE:LINE")
    func callTrace() {
        let l = lines(Fixture.useAfterFree, symbolizer: FakeSymbolizer.standard())
        let start = l.firstIndex(of: " <TASK>")!
        let end = l.firstIndex(of: " </TASK>")!
        #expect(Array(l[(start + 1)..<end]) == [
            " read_field drivers/kdbt/heapbugs.c:20 [inline]",
            " kdbt_heapbugs_uaf_read+0x2a/0x60 [kdbt_heapbugs] drivers/kdbt/heapbugs.c:41",
            " do_syscall_x64 arch/x86/entry/common.c:50 [inline]",
            " do_syscall_64+0x40/0x100 arch/x86/entry/common.c:80",
            " entry_SYSCALL_64+0x60/0x100",
        ])
        let allocated = l.firstIndex(of: "Allocated by task 123 on cpu 1:")!
        #expect(l[allocated + 1] == " __kmalloc+0x30/0x100 /src/linux/mm/slab common.c:967")
        #expect(l[allocated + 2] == " kdbt_heapbugs_uaf_read+0x10/0x60 [kdbt_heapbugs]")
    }

    @Test("only the access stack's first frame is looked up as the faulting instruction")
    func returnAddresses() {
        let symbolizer = FakeSymbolizer.standard()
        _ = lines(Fixture.useAfterFree, symbolizer: symbolizer)
        let faulting = symbolizer.asked.filter { $0.key == "kdbt_heapbugs_uaf_read+0x2a" }
        #expect(!faulting.isEmpty && faulting.allSatisfy { !$0.isReturnAddress })
        let others = symbolizer.asked.filter { $0.key != "kdbt_heapbugs_uaf_read+0x2a" }
        #expect(others.count >= 6)
        #expect(others.allSatisfy { $0.isReturnAddress })
        #expect(others.contains { $0.key == "__kmalloc+0x30" })
    }
}
