// SPDX-License-Identifier: GPL-2.0-only
//
// JSON lines and SARIF, parsed back with Foundation (the CLI itself has no parser).

import Foundation
import KdbtClient
import Protocol
import Testing

func parse(_ text: String) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
}

let allFindings = [
    Fixture.useAfterFree, Fixture.outOfBounds(address: Fixture.object + 100),
    Fixture.badFree(.doubleFree, address: Fixture.object), Fixture.badFree(.invalidFree, address: Fixture.object + 8),
]

@Suite("findings: JSON lines")
struct JSONReportTests {
    let report = FindingReport(records: allFindings,
                               resolver: FrameResolver(kallsyms: Fixture.kallsyms, symbolizer: FakeSymbolizer.standard()))

    @Test("one object per line, each with every field")
    func lines() throws {
        let lines = report.jsonLines().split(separator: "\n").map(String.init)
        #expect(lines.count == 4)
        let keys: Set = ["tool", "kind", "rule", "title", "access", "address", "size", "first_bad_address", "pc",
                         "location", "cpu", "pid", "comm", "count", "timestamp_ns", "object", "access_stack",
                         "allocated", "freed", "shadow"]
        for line in lines { #expect(Set(try parse(line).keys) == keys) }
        #expect(try lines.map { try parse($0)["kind"] as? String }
                == ["use-after-free", "slab-out-of-bounds", "double-free", "invalid-free"])
    }

    @Test("use-after-free: values, object, stacks with source frames, shadow")
    func values() throws {
        let o = try parse(report.jsonLines().split(separator: "\n").map(String.init)[0])
        #expect(o["tool"] as? String == "heapcheck")
        #expect(o["rule"] as? String == "KDBT-HEAP-UAF")
        #expect(o["access"] as? String == "read")
        #expect(o["address"] as? String == "0xffff888003d4c80c")
        #expect(o["size"] as? Int == 4)
        #expect(o["comm"] as? String == "sh")
        #expect(o["pid"] as? Int == 123 && o["cpu"] as? Int == 1 && o["count"] as? Int == 1)
        #expect(o["timestamp_ns"] as? Int == 5_000_000_123)
        let object = try #require(o["object"] as? [String: Any])
        #expect(object["relation"] as? String == "inside")
        #expect(object["distance"] as? Int == 12)
        #expect(object["size"] as? Int == 96)
        #expect(object["cache"] as? String == "kmalloc-128")
        #expect(object["cache_object_size"] as? Int == 128)
        let stack = try #require(o["access_stack"] as? [[String: Any]])
        #expect(stack.count == 3)
        #expect(stack[0]["function"] as? String == "kdbt_heapbugs_uaf_read")
        #expect(stack[0]["offset"] as? Int == 0x2A)
        #expect(stack[0]["size"] as? Int == 0x60)
        #expect(stack[0]["module"] as? String == "kdbt_heapbugs")
        #expect(stack[0]["file"] as? String == "drivers/kdbt/heapbugs.c")
        #expect(stack[0]["line"] as? Int == 41)
        let inlined = try #require(stack[0]["inlined"] as? [[String: Any]])
        #expect(inlined.count == 1 && inlined[0]["function"] as? String == "read_field" && inlined[0]["column"] as? Int == 9)
        #expect(stack[2]["module"] is NSNull && stack[2]["file"] is NSNull)
        let freed = try #require(o["freed"] as? [String: Any])
        #expect(freed["pid"] as? Int == 77 && freed["comm"] as? String == "kworker/0:1")
        #expect((freed["stack"] as? [Any])?.count == 2)
        let shadow = try #require(o["shadow"] as? [String: Any])
        #expect(shadow["address"] as? String == "0xffff888003d4c700")
        let bytes = try #require(shadow["bytes"] as? [Int])
        #expect(bytes.count == 80 && bytes[32] == 0xFB)
    }

    @Test("out of bounds has no free track; a write says so")
    func outOfBounds() throws {
        let o = try parse(report.jsonLines().split(separator: "\n").map(String.init)[1])
        #expect(o["freed"] is NSNull)
        #expect(o["access"] as? String == "write")
        #expect((o["object"] as? [String: Any])?["relation"] as? String == "right")
        let free = try parse(report.jsonLines().split(separator: "\n").map(String.init)[2])
        #expect(free["access"] as? String == "free")
    }
}

@Suite("findings: SARIF")
struct SARIFReportTests {
    func log(_ records: [FindingRecord], symbolizer: (any FrameSymbolizing)? = nil, dropped: UInt64 = 0) throws
        -> (log: [String: Any], run: [String: Any], results: [[String: Any]]) {
        let report = FindingReport(records: records, dropped: dropped,
                                   resolver: FrameResolver(kallsyms: Fixture.kallsyms, symbolizer: symbolizer))
        let log = try parse(report.sarif())
        let runs = try #require(log["runs"] as? [[String: Any]])
        try #require(runs.count == 1)
        return (log, runs[0], try #require(runs[0]["results"] as? [[String: Any]]))
    }

    @Test("log, run, driver and rules: the required structure of SARIF 2.1.0")
    func structure() throws {
        let (log, run, results) = try log(allFindings)
        #expect(log["version"] as? String == "2.1.0")
        #expect((log["$schema"] as? String)?.hasSuffix("sarif-2.1.0.json") == true)
        let driver = try #require((run["tool"] as? [String: Any])?["driver"] as? [String: Any])
        #expect(driver["name"] as? String == "kdbt")
        let rules = try #require(driver["rules"] as? [[String: Any]])
        #expect(rules.map { $0["id"] as? String } ==
                ["KDBT-HEAP-UAF", "KDBT-HEAP-OOB", "KDBT-HEAP-DOUBLE-FREE", "KDBT-HEAP-INVALID-FREE",
                 "KDBT-STACK-NEAR-OVERFLOW"])
        for rule in rules {
            #expect((rule["shortDescription"] as? [String: Any])?["text"] is String)
            #expect((rule["defaultConfiguration"] as? [String: Any])?["level"] as? String == "error")
        }
        #expect(results.count == 4)
        for result in results {
            let index = try #require(result["ruleIndex"] as? Int)
            #expect(rules[index]["id"] as? String == result["ruleId"] as? String)
            #expect(result["level"] as? String == "error")
            #expect(((result["message"] as? [String: Any])?["text"] as? String)?.hasPrefix("BUG: KDBT: ") == true)
            #expect((result["locations"] as? [Any])?.count == 1)
            #expect((result["partialFingerprints"] as? [String: String])?["kdbtFunctionHash/v1"]?.count == 16)
            for stack in try #require(result["stacks"] as? [[String: Any]]) {
                #expect(!(try #require(stack["frames"] as? [[String: Any]])).isEmpty)
            }
        }
        let invocation = try #require((run["invocations"] as? [[String: Any]])?.first)
        #expect(invocation["executionSuccessful"] as? Bool == true)
        #expect(invocation["toolExecutionNotifications"] == nil)
    }

    @Test("unsymbolized results point at the function; symbolized ones at file and line too")
    func locations() throws {
        let plain = try log([Fixture.useAfterFree]).results[0]
        #expect((plain["message"] as? [String: Any])?["text"] as? String
                == "BUG: KDBT: use-after-free in kdbt_heapbugs_uaf_read+0x2a/0x60 [kdbt_heapbugs]")
        let plainLocation = try #require((plain["locations"] as? [[String: Any]])?.first)
        #expect(plainLocation["physicalLocation"] == nil)
        let logical = try #require((plainLocation["logicalLocations"] as? [[String: Any]])?.first)
        #expect(logical["name"] as? String == "kdbt_heapbugs_uaf_read")
        #expect(logical["kind"] as? String == "function")

        let symbolized = try log([Fixture.useAfterFree], symbolizer: FakeSymbolizer.standard()).results[0]
        let location = try #require((symbolized["locations"] as? [[String: Any]])?.first)
        let physical = try #require(location["physicalLocation"] as? [String: Any])
        let artifact = try #require(physical["artifactLocation"] as? [String: Any])
        #expect(artifact["uri"] as? String == "drivers/kdbt/heapbugs.c")
        #expect(artifact["uriBaseId"] as? String == "SRCROOT")
        #expect((physical["region"] as? [String: Any])?["startLine"] as? Int == 20)
        #expect(((location["logicalLocations"] as? [[String: Any]])?.first)?["name"] as? String == "read_field")
        // An absolute path becomes a file URI, escaped.
        let stacks = try #require(symbolized["stacks"] as? [[String: Any]])
        let allocation = try #require((stacks[1]["frames"] as? [[String: Any]])?.first?["location"] as? [String: Any])
        #expect(((allocation["physicalLocation"] as? [String: Any])?["artifactLocation"] as? [String: Any])?["uri"]
                as? String == "file:///src/linux/mm/slab%20common.c")
    }

    @Test("fingerprints ignore offsets and symbolization, and separate bug classes")
    func fingerprints() throws {
        func print(_ record: FindingRecord, _ symbolizer: (any FrameSymbolizing)? = nil) throws -> String? {
            (try log([record], symbolizer: symbolizer).results[0]["partialFingerprints"] as? [String: String])?["kdbtFunctionHash/v1"]
        }
        let uaf = try print(Fixture.useAfterFree)
        #expect(uaf != nil)
        #expect(try print(Fixture.useAfterFree, FakeSymbolizer.standard()) == uaf)
        var moved = Fixture.useAfterFree
        moved.pc += 6
        moved.accessStack.frames[0] += 6
        #expect(try print(moved) == uaf)
        var oob = Fixture.useAfterFree
        oob.kind = HeapBugKind.outOfBounds.rawValue
        #expect(try print(oob) != uaf)
        #expect(try print(Fixture.badFree(.doubleFree, address: Fixture.object)) != uaf)
    }

    @Test("repeat counts, dropped findings, and kinds this CLI does not know")
    func extras() throws {
        var repeated = Fixture.useAfterFree
        repeated.count = 5
        var unknown = Fixture.useAfterFree
        unknown.tool = FindingTool.stackguard.rawValue
        unknown.kind = 9
        let (_, run, results) = try log([repeated, unknown], dropped: 2)
        #expect(results[0]["occurrenceCount"] as? Int == 5)
        #expect(results[1]["ruleId"] as? String == "KDBT-STACKGUARD-9")
        #expect(results[1]["ruleIndex"] as? Int == 5)
        let rules = try #require(((run["tool"] as? [String: Any])?["driver"] as? [String: Any])?["rules"] as? [[String: Any]])
        #expect(rules.count == 6 && rules[5]["id"] as? String == "KDBT-STACKGUARD-9")
        let invocation = try #require((run["invocations"] as? [[String: Any]])?.first)
        let notes = try #require(invocation["toolExecutionNotifications"] as? [[String: Any]])
        #expect((notes[0]["message"] as? [String: Any])?["text"] as? String
                == "2 findings were dropped: the module's report ring was full")
    }

    @Test("no findings: a valid log with an empty result list")
    func empty() throws {
        let (log, _, results) = try log([])
        #expect(log["version"] as? String == "2.1.0")
        #expect(results.isEmpty)
    }
}
