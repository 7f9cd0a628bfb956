// SPDX-License-Identifier: GPL-2.0-only
//
// stackguard's findings in the three formats, and rings holding both tools'.

import Foundation
import KdbtClient
import Protocol
import Testing

@Suite("findings: stackguard")
struct StackReportTests {
    let resolver = FrameResolver(kallsyms: Fixture.kallsyms)

    @Test("near overflow: the whole text report, exactly")
    func text() {
        let expected = """
            ==================================================================
            BUG: KDBT: stack-near-overflow in deep_recursion+0x1d/0x40 [kdbt_stackbugs]
            Stack pointer ffffc90000430610 leaves 1552 bytes free on the task stack [ffffc90000430000, ffffc90000434000) of 16384 bytes (threshold crossed by a 264-byte adjustment)
            by task sh/123 on cpu 1

            Call Trace (stack bytes per frame):
             <TASK>
             deep_recursion+0x1d/0x40 [kdbt_stackbugs]    272
             deep_recursion+0x2e/0x40 [kdbt_stackbugs]    272
             deep_recursion+0x2e/0x40 [kdbt_stackbugs]    272
             deep_recursion+0x2e/0x40 [kdbt_stackbugs]    272
             stack_hog+0x30/0xc0 [kdbt_stackbugs]        1032
             vfs_write+0x50/0x100                         120
             ksys_write+0x20/0x100                         24
             do_syscall_64+0x40/0x100                       ?
             entry_SYSCALL_64+0x60/0x100                   40
             0x1234                                        16
             </TASK>

            Largest stack users on this path:
             deep_recursion [kdbt_stackbugs]: 1088 bytes in 4 frames
             stack_hog [kdbt_stackbugs]: 1032 bytes in 1 frame
             vfs_write: 120 bytes in 1 frame
             entry_SYSCALL_64: 40 bytes in 1 frame
             ksys_write: 24 bytes in 1 frame
            ==================================================================

            """
        #expect(FindingReport(records: [Fixture.nearOverflow()], resolver: resolver).text() == expected)
    }

    @Test("repeats, other stacks, no adjustment, no frame sizes")
    func variants() {
        var record = Fixture.nearOverflow(count: 3, stackKind: .irq, frameBytes: [])
        record.accessSize = 0
        let l = lines(record)
        #expect(l[2] == "Stack pointer ffffc90000430610 leaves 1552 bytes free on the irq stack "
                + "[ffffc90000430000, ffffc90000434000) of 16384 bytes")
        #expect(l[3] == "by task sh/123 on cpu 1")
        #expect(l[4] == "This finding was seen 3 times; task and stacks are those of the first.")
        #expect(l.contains(" <IRQ>") && l.contains(" </IRQ>") && !l.contains(" <TASK>"))
        #expect(l.contains(" deep_recursion+0x1d/0x40 [kdbt_stackbugs]   ?"))
        let users = l.firstIndex(of: "Largest stack users on this path:")!
        #expect(l[users + 1] == " (no frame sizes were recorded)")

        // A kind this CLI does not know goes by the name the module wrote.
        var newer = Fixture.nearOverflow()
        newer.stackKind = 42
        newer.cacheName = "shadow"
        #expect(lines(newer)[2].contains(" free on the shadow stack ["))
    }

    @Test("largest users: grouped by function, summed, largest first, at most five")
    func users() {
        let users = FindingReport(records: [], resolver: resolver).stackUsers(FindingFacts(Fixture.nearOverflow()))
        #expect(users.map(\.name) == ["deep_recursion [kdbt_stackbugs]", "stack_hog [kdbt_stackbugs]", "vfs_write",
                                      "entry_SYSCALL_64", "ksys_write"])
        #expect(users.map(\.bytes) == [1088, 1032, 120, 40, 24])
        #expect(users.map(\.frames) == [4, 1, 1, 1, 1])
    }

    @Test("--symbolize: [inline] lines and file:line as heapcheck's, the size on each frame's own line")
    func symbolized() {
        let symbolizer = FakeSymbolizer([
            "deep_recursion+0x1d": [
                SourceFrame(function: "fill", file: "stackbugs.c", line: 12, inlined: true),
                SourceFrame(function: "deep_recursion", file: "stackbugs.c", line: 30, inlined: false),
            ],
            "deep_recursion+0x2e": [SourceFrame(function: "deep_recursion", file: "stackbugs.c", line: 31, inlined: false)],
        ])
        let l = lines(Fixture.nearOverflow(), symbolizer: symbolizer)
        let start = l.firstIndex(of: " <TASK>")!
        #expect(Array(l[(start + 1)...(start + 4)]) == [
            " fill stackbugs.c:12 [inline]",
            " deep_recursion+0x1d/0x40 [kdbt_stackbugs] stackbugs.c:30    272",
            " deep_recursion+0x2e/0x40 [kdbt_stackbugs] stackbugs.c:31    272",
            " deep_recursion+0x2e/0x40 [kdbt_stackbugs] stackbugs.c:31    272",
        ])
        #expect(l[start + 11] == " 0x1234                                                       16")
        // The first frame is the instruction that moved the pointer, the rest return addresses.
        let asked = symbolizer.asked.filter { $0.key.hasPrefix("deep_recursion") }
        #expect(asked.contains { $0.key == "deep_recursion+0x1d" && !$0.isReturnAddress })
        #expect(asked.filter { $0.key == "deep_recursion+0x2e" }.allSatisfy { $0.isReturnAddress })
    }

    @Test("JSON: one object with the stack's fields, frames with their sizes, the largest users")
    func json() throws {
        let report = FindingReport(records: [Fixture.nearOverflow(count: 2)], resolver: resolver)
        let lines = report.jsonLines().split(separator: "\n").map(String.init)
        #expect(lines.count == 1)
        let o = try parse(lines[0])
        #expect(Set(o.keys) == ["tool", "kind", "rule", "title", "stack_pointer", "free_bytes", "stack", "adjustment",
                                "pc", "location", "cpu", "pid", "comm", "count", "timestamp_ns", "frames",
                                "largest_users"])
        #expect(o["tool"] as? String == "stackguard")
        #expect(o["kind"] as? String == "stack-near-overflow")
        #expect(o["rule"] as? String == "KDBT-STACK-NEAR-OVERFLOW")
        #expect(o["title"] as? String == "BUG: KDBT: stack-near-overflow in deep_recursion+0x1d/0x40 [kdbt_stackbugs]")
        #expect(o["stack_pointer"] as? String == "0xffffc90000430610")
        #expect(o["free_bytes"] as? Int == 1552)
        #expect(o["adjustment"] as? Int == 264)
        #expect(o["pc"] as? String == "0xffffffffc000201d")
        #expect((o["location"] as? [String: Any])?["function"] as? String == "deep_recursion")
        #expect(o["count"] as? Int == 2 && o["pid"] as? Int == 123 && o["cpu"] as? Int == 1)
        #expect(o["comm"] as? String == "sh" && o["timestamp_ns"] as? Int == 9_000_000_456)
        let stack = try #require(o["stack"] as? [String: Any])
        #expect(stack["kind"] as? String == "task")
        #expect(stack["start"] as? String == "0xffffc90000430000")
        #expect(stack["size"] as? Int == 16384)
        let frames = try #require(o["frames"] as? [[String: Any]])
        #expect(frames.count == 10)
        for key in ["address", "function", "offset", "size", "module", "file", "line", "inlined", "stack_bytes"] {
            #expect(frames.allSatisfy { $0[key] != nil }, "frame key \(key)")
        }
        #expect(frames[0]["function"] as? String == "deep_recursion" && frames[0]["offset"] as? Int == 0x1D)
        #expect(frames[0]["module"] as? String == "kdbt_stackbugs" && frames[0]["stack_bytes"] as? Int == 272)
        #expect(frames[4]["stack_bytes"] as? Int == 1032)
        #expect(frames[7]["function"] as? String == "do_syscall_64" && frames[7]["stack_bytes"] is NSNull)
        #expect(frames[9]["function"] is NSNull && frames[9]["address"] as? String == "0x1234")
        let users = try #require(o["largest_users"] as? [[String: Any]])
        #expect(users.count == 5)
        #expect(users[0]["function"] as? String == "deep_recursion" && users[0]["module"] as? String == "kdbt_stackbugs")
        #expect(users[0]["bytes"] as? Int == 1088 && users[0]["frames"] as? Int == 4)
        #expect(users[2]["function"] as? String == "vfs_write" && users[2]["module"] is NSNull)
    }

    @Test("SARIF: its rule in the same run as heapcheck's, the result at the function, stable fingerprint")
    func sarif() throws {
        func run(_ records: [FindingRecord]) throws -> (rules: [[String: Any]], results: [[String: Any]]) {
            let log = try parse(FindingReport(records: records, resolver: resolver).sarif())
            let runs = try #require(log["runs"] as? [[String: Any]])
            try #require(runs.count == 1)
            let driver = try #require((runs[0]["tool"] as? [String: Any])?["driver"] as? [String: Any])
            #expect(driver["name"] as? String == "kdbt")
            return (try #require(driver["rules"] as? [[String: Any]]), try #require(runs[0]["results"] as? [[String: Any]]))
        }
        let (rules, results) = try run([Fixture.useAfterFree, Fixture.nearOverflow(count: 4)])
        #expect(rules.map { $0["id"] as? String } == ["KDBT-HEAP-UAF", "KDBT-HEAP-OOB", "KDBT-HEAP-DOUBLE-FREE",
                                                      "KDBT-HEAP-INVALID-FREE", "KDBT-STACK-NEAR-OVERFLOW"])
        #expect(rules[4]["name"] as? String == "StackNearOverflow")
        #expect(results.map { $0["ruleId"] as? String } == ["KDBT-HEAP-UAF", "KDBT-STACK-NEAR-OVERFLOW"])
        let result = results[1]
        #expect(result["ruleIndex"] as? Int == 4)
        #expect(result["level"] as? String == "error")
        #expect(result["occurrenceCount"] as? Int == 4)
        #expect((result["message"] as? [String: Any])?["text"] as? String
                == "BUG: KDBT: stack-near-overflow in deep_recursion+0x1d/0x40 [kdbt_stackbugs]")
        let location = try #require((result["locations"] as? [[String: Any]])?.first)
        let logical = try #require((location["logicalLocations"] as? [[String: Any]])?.first)
        #expect(logical["name"] as? String == "deep_recursion")
        #expect(logical["fullyQualifiedName"] as? String == "kdbt_stackbugs!deep_recursion")
        let stacks = try #require(result["stacks"] as? [[String: Any]])
        #expect(stacks.count == 1)
        #expect((stacks[0]["message"] as? [String: Any])?["text"] as? String
                == "Call trace on the task stack (task sh/123 on cpu 1)")
        let frames = try #require(stacks[0]["frames"] as? [[String: Any]])
        #expect(frames.count == 10)
        #expect((frames[4]["properties"] as? [String: Any])?["stackBytes"] as? Int == 1032)
        #expect(frames[7]["properties"] == nil)
        let properties = try #require(result["properties"] as? [String: Any])
        #expect(properties["stackPointer"] as? String == "0xffffc90000430610")
        #expect(properties["freeBytes"] as? Int == 1552 && properties["stackSize"] as? Int == 16384)
        #expect(properties["stackKind"] as? String == "task" && properties["adjustment"] as? Int == 264)
        #expect((properties["largestUsers"] as? [Any])?.count == 5)

        func fingerprint(_ record: FindingRecord) throws -> String? {
            (try run([record]).results[0]["partialFingerprints"] as? [String: String])?["kdbtFunctionHash/v1"]
        }
        let print = try #require(try fingerprint(Fixture.nearOverflow()))
        #expect(print.count == 16)
        var moved = Fixture.nearOverflow(count: 9)
        moved.pc += 3
        moved.address -= 64
        #expect(try fingerprint(moved) == print)
        var elsewhere = Fixture.nearOverflow()
        elsewhere.pc = Fixture.stackHog + 0x10
        #expect(try fingerprint(elsewhere) != print)
        #expect(try fingerprint(Fixture.useAfterFree) != print)
    }

    @Test("a ring with both tools' findings: each rendered by its own renderer, in ring order")
    func mixed() throws {
        let report = FindingReport(records: [Fixture.nearOverflow(), Fixture.useAfterFree, Fixture.nearOverflow(count: 2)],
                                   resolver: resolver)
        let text = report.text()
        let titles = text.split(separator: "\n").filter { $0.hasPrefix("BUG: KDBT: ") }
        #expect(titles == ["BUG: KDBT: stack-near-overflow in deep_recursion+0x1d/0x40 [kdbt_stackbugs]",
                           "BUG: KDBT: use-after-free in kdbt_heapbugs_uaf_read+0x2a/0x60 [kdbt_heapbugs]",
                           "BUG: KDBT: stack-near-overflow in deep_recursion+0x1d/0x40 [kdbt_stackbugs]"])
        #expect(text.components(separatedBy: "Call Trace (stack bytes per frame):").count == 3)
        #expect(text.components(separatedBy: "\nCall Trace:\n").count == 2)
        #expect(text.components(separatedBy: "Memory state around the buggy address:").count == 2)
        #expect(text.hasPrefix(FindingReport(records: [Fixture.nearOverflow()], resolver: resolver).text()))

        let objects = try report.jsonLines().split(separator: "\n").map { try parse(String($0)) }
        #expect(objects.map { $0["tool"] as? String } == ["stackguard", "heapcheck", "stackguard"])
        #expect(objects[0]["largest_users"] != nil && objects[0]["shadow"] == nil)
        #expect(objects[1]["shadow"] != nil && objects[1]["largest_users"] == nil)
    }
}
