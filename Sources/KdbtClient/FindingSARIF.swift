// SPDX-License-Identifier: GPL-2.0-only
//
// Findings as SARIF 2.1.0 (OASIS), the format code-scanning services take: one
// run, a rule per bug class with a stable id, a result per finding located at the
// faulting code, its stacks as SARIF stacks, and a fingerprint that ignores
// offsets and line numbers so the same bug matches across builds.

extension FindingReport {
    public static let sarifSchema = "https://json.schemastore.org/sarif-2.1.0.json"
    public static let sarifVersion = "2.1.0"

    /// The rules of the bug classes this CLI knows, always listed so their indices
    /// never move (new ones are appended): a run holds every tool's results.
    static let knownRules: [(id: String, name: String, kind: String, help: String)] = [
        ("KDBT-HEAP-UAF", "UseAfterFree", "use-after-free",
         "A heap object was accessed after it was freed."),
        ("KDBT-HEAP-OOB", "SlabOutOfBounds", "slab-out-of-bounds",
         "A heap access fell outside the bytes its object was allocated with."),
        ("KDBT-HEAP-DOUBLE-FREE", "DoubleFree", "double-free",
         "A heap object was freed when it was already free."),
        ("KDBT-HEAP-INVALID-FREE", "InvalidFree", "invalid-free",
         "A pointer that is not the start of a live heap object was freed."),
        ("KDBT-STACK-NEAR-OVERFLOW", "StackNearOverflow", "stack-near-overflow",
         "A kernel stack's free space fell below stackguard's threshold: a little more depth would overflow it."),
    ]

    /// The whole report as one SARIF log (pretty-printing is left to viewers).
    public func sarif() -> String {
        var rules = FindingReport.knownRules.map { rule -> JSONValue in
            FindingReport.sarifRule(id: rule.id, name: rule.name, short: rule.kind, full: rule.help)
        }
        var ruleIndex: [String: Int] = [:]
        for (i, rule) in FindingReport.knownRules.enumerated() { ruleIndex[rule.id] = i }
        var results: [JSONValue] = []
        for record in records {
            let facts = FindingFacts(record)
            if ruleIndex[facts.ruleID] == nil {
                ruleIndex[facts.ruleID] = rules.count
                rules.append(FindingReport.sarifRule(id: facts.ruleID, name: facts.ruleID, short: facts.bugName,
                                                     full: "A finding of \(facts.toolName) this kdbt has no description for."))
            }
            results.append(sarifResult(facts, ruleIndex: ruleIndex[facts.ruleID]!))
        }

        var driver = JSONObject()
        driver.add("name", .string("kdbt"))
        driver.add("version", .string(cliVersion))
        driver.add("rules", .array(rules))
        var tool = JSONObject()
        tool.add("driver", driver.value)

        var invocation = JSONObject()
        invocation.add("executionSuccessful", .bool(true))
        if dropped > 0 {
            var notification = JSONObject()
            notification.add("level", .string("warning"))
            notification.add("message", FindingReport.sarifMessage(
                "\(dropped) findings were dropped: the module's report ring was full"))
            invocation.add("toolExecutionNotifications", .array([notification.value]))
        }

        var run = JSONObject()
        run.add("tool", tool.value)
        run.add("invocations", .array([invocation.value]))
        run.add("results", .array(results))

        var log = JSONObject()
        log.add("$schema", .string(FindingReport.sarifSchema))
        log.add("version", .string(FindingReport.sarifVersion))
        log.add("runs", .array([run.value]))
        return log.value.serialized() + "\n"
    }

    static func sarifRule(id: String, name: String, short: String, full: String) -> JSONValue {
        var rule = JSONObject()
        rule.add("id", .string(id))
        rule.add("name", .string(name))
        rule.add("shortDescription", sarifMessage(short))
        rule.add("fullDescription", sarifMessage(full))
        var configuration = JSONObject()
        configuration.add("level", .string("error"))
        rule.add("defaultConfiguration", configuration.value)
        return rule.value
    }

    static func sarifMessage(_ text: String) -> JSONValue {
        var message = JSONObject()
        message.add("text", .string(text))
        return message.value
    }

    func sarifResult(_ facts: FindingFacts, ruleIndex: Int) -> JSONValue {
        let r = facts.record
        let faulting = faultingFrame(facts)
        var result = JSONObject()
        result.add("ruleId", .string(facts.ruleID))
        result.add("ruleIndex", .int(Int64(ruleIndex)))
        result.add("level", .string("error"))
        result.add("message", FindingReport.sarifMessage(title(facts)))
        result.add("locations", .array([FindingReport.sarifLocation(faulting, message: false)]))
        var fingerprints = JSONObject()
        fingerprints.add("kdbtFunctionHash/v1", .string(FindingReport.fingerprint(facts, faulting)))
        result.add("partialFingerprints", fingerprints.value)
        result.add("occurrenceCount", .uint(UInt64(max(r.count, 1))))
        if facts.isStackguard {
            let details = stackSARIFDetails(facts)
            result.add("stacks", .array(details.stacks))
            result.add("properties", details.properties)
            return result.value
        }

        var stacks: [JSONValue] = [
            FindingReport.sarifStack("Call trace (task \(r.comm)/\(r.pid) on cpu \(r.cpu))",
                                     resolver.resolve(r.accessStack, firstIsPC: true)),
        ]
        if facts.relation != nil {
            stacks.append(FindingReport.sarifStack("Allocated by task \(r.allocated.pid) on cpu \(r.allocated.cpu)",
                                                   resolver.resolve(r.allocated.stack, firstIsPC: false)))
        }
        if let freed = r.freed {
            stacks.append(FindingReport.sarifStack("Freed by task \(freed.pid) on cpu \(freed.cpu)",
                                                   resolver.resolve(freed.stack, firstIsPC: false)))
        }
        result.add("stacks", .array(stacks))

        var properties = JSONObject()
        properties.add("access", .string(facts.accessName))
        properties.add("address", .string(hexAddress(r.address)))
        properties.add("size", .uint(UInt64(r.accessSize)))
        properties.add("pid", .uint(UInt64(r.pid)))
        properties.add("comm", .string(r.comm))
        properties.add("cpu", .uint(UInt64(r.cpu)))
        if let relation = facts.relation {
            properties.add("object", .string(hexAddress(relation.regionStart)))
            properties.add("objectSize", .uint(relation.regionSize))
            properties.add("relation", .string(relation.side.rawValue))
            properties.add("distance", .uint(relation.distance))
            if !r.cacheName.isEmpty { properties.add("cache", .string(r.cacheName)) }
        }
        result.add("properties", properties.value)
        return result.value
    }

    /// A physical location (file, line) when symbolized, at the innermost source
    /// frame, where the bug's line is; always the logical location (function).
    static func sarifLocation(_ frame: ResolvedFrame, message: Bool) -> JSONValue {
        var location = JSONObject()
        let innermost = frame.source.first
        if let innermost, let file = innermost.file {
            var artifact = JSONObject()
            if file.hasPrefix("/") {
                artifact.add("uri", .string("file://" + percentEncodedPath(file)))
            } else {
                // DWARF names kernel sources relative to the build tree.
                artifact.add("uri", .string(percentEncodedPath(file)))
                artifact.add("uriBaseId", .string("SRCROOT"))
            }
            var physical = JSONObject()
            physical.add("artifactLocation", artifact.value)
            if let line = innermost.line, line > 0 {
                var region = JSONObject()
                region.add("startLine", .int(Int64(line)))
                if let column = innermost.column, column > 0 { region.add("startColumn", .int(Int64(column))) }
                physical.add("region", region.value)
            }
            location.add("physicalLocation", physical.value)
        }
        if let name = innermost?.function ?? frame.location?.function {
            var logical = JSONObject()
            logical.add("name", .string(name))
            if let module = frame.location?.module { logical.add("fullyQualifiedName", .string("\(module)!\(name)")) }
            logical.add("kind", .string("function"))
            location.add("logicalLocations", .array([logical.value]))
        }
        if message || location.members.isEmpty {
            location.add("message", sarifMessage(frame.kernelDescription))
        }
        return location.value
    }

    /// `stackBytes` (stackguard): each frame's stack usage, as a frame property.
    static func sarifStack(_ text: String, _ frames: [ResolvedFrame], stackBytes: [UInt32?] = []) -> JSONValue {
        var stack = JSONObject()
        stack.add("message", sarifMessage(text))
        stack.add("frames", .array(frames.enumerated().map { i, frame in
            var f = JSONObject()
            f.add("location", sarifLocation(frame, message: true))
            if let module = frame.location?.module { f.add("module", .string(module)) }
            if i < stackBytes.count, let bytes = stackBytes[i] {
                var properties = JSONObject()
                properties.add("stackBytes", .uint(UInt64(bytes)))
                f.add("properties", properties.value)
            }
            return f.value
        }))
        return stack.value
    }

    /// FNV-1a 64 of the rule, the function and its module: no offsets or lines,
    /// which move with every rebuild, and the same with and without --symbolize.
    static func fingerprint(_ facts: FindingFacts, _ frame: ResolvedFrame) -> String {
        let function = frame.location.map { "\($0.function)|\($0.module ?? "vmlinux")" } ?? frame.kernelDescription
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in "\(facts.ruleID)|\(function)".utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hex64(hash)
    }

    /// RFC 3986: everything but unreserved characters and "/" escaped.
    static func percentEncodedPath(_ path: String) -> String {
        var out = ""
        for byte in path.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                 UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + hex2(byte).uppercased()
            }
        }
        return out
    }
}
