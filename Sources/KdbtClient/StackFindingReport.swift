// SPDX-License-Identifier: GPL-2.0-only
//
// stackguard's findings: a stack whose free space fell below the threshold.
// They share the record, the title, the frames and the JSON and SARIF plumbing
// with heapcheck's (FindingReport.swift, FindingSARIF.swift); what differs is
// what the record's fields mean (Findings.swift: the stack pointer, the stack's
// bounds, the bytes left) and the per-frame stack usage, which the text shows as
// a column and sums per function, so the frames to shrink are named first.

import Protocol

extension FindingFacts {
    public var isStackguard: Bool { record.tool == FindingTool.stackguard.rawValue }

    public var stackBugKind: StackBugKind? { isStackguard ? StackBugKind(rawValue: record.kind) : nil }

    /// "task", "irq", ...: the record's stack kind; a kind this CLI does not know
    /// by the name the module gave it, which it also writes.
    public var stackKindName: String {
        if let kind = StackKind(rawValue: record.stackKind), kind != .unknown { return "\(kind.name)" }
        return record.cacheName.isEmpty ? "\(StackKind.unknown.name)" : record.cacheName
    }

    /// The stack's lowest address, its size and the bytes left below the pointer.
    public var stackStart: UInt64 { record.objectStart }
    public var stackSize: UInt64 { record.objectSize }
    public var freeBytes: UInt64 { record.cacheObjectSize }

    /// Stack bytes of the access stack's frame `index`; nil when not known.
    public func frameBytes(_ index: Int) -> UInt32? {
        index < record.frameBytes.count && record.frameBytes[index] != 0 ? record.frameBytes[index] : nil
    }
}

/// A function's share of the stack on one call path: all its frames summed
/// (recursion shows as one user with many frames).
public struct StackUser: Equatable, Sendable {
    /// kallsyms' name; the frame's address when kallsyms does not know it.
    public var function: String
    public var module: String?
    public var bytes: UInt64
    public var frames: Int

    /// "func [module]", as kallsyms names module code.
    public var name: String { module.map { "\(function) [\($0)]" } ?? function }
}

extension FindingReport {
    /// How many users the summary lists.
    public static let largestStackUsers = 5

    /// Functions by the stack bytes their frames use on this path, largest first
    /// (ties: innermost first), at most `largestStackUsers`; frames of unknown
    /// size are left out, so every number is a measured one.
    public func stackUsers(_ facts: FindingFacts) -> [StackUser] {
        let frames = resolver.resolve(facts.record.accessStack, firstIsPC: true)
        var users: [StackUser] = []
        var index: [String: Int] = [:]
        for (i, frame) in frames.enumerated() {
            guard let bytes = facts.frameBytes(i) else { continue }
            let function = frame.location?.function ?? frame.kernelDescription
            let module = frame.location?.module
            let key = "\(function)|\(module ?? "")"
            if let u = index[key] {
                users[u].bytes += UInt64(bytes)
                users[u].frames += 1
            } else {
                index[key] = users.count
                users.append(StackUser(function: function, module: module, bytes: UInt64(bytes), frames: 1))
            }
        }
        let ranked = users.enumerated().sorted { a, b in
            a.element.bytes != b.element.bytes ? a.element.bytes > b.element.bytes : a.offset < b.offset
        }
        return ranked.prefix(FindingReport.largestStackUsers).map(\.element)
    }

    // MARK: Text

    /// The KASAN-shaped report: title, where the stack pointer is, the task, the
    /// call trace with each frame's stack bytes, and the largest users.
    func stackText(_ facts: FindingFacts) -> String {
        let r = facts.record
        var lines = [FindingReport.separator, title(facts)]
        let adjustment = r.accessSize != 0 ? " (threshold crossed by a \(r.accessSize)-byte adjustment)" : ""
        lines.append("Stack pointer \(hex64(r.address)) leaves \(facts.freeBytes) bytes free on the "
                     + "\(facts.stackKindName) stack [\(hex64(facts.stackStart)), \(hex64(facts.stackStart &+ facts.stackSize))) "
                     + "of \(facts.stackSize) bytes\(adjustment)")
        lines.append("by task \(r.comm)/\(r.pid) on cpu \(r.cpu)")
        lines += FindingReport.repeatLines(r)
        lines.append("")
        lines.append("Call Trace (stack bytes per frame):")
        // The kernel's marker of the stack the trace is on (<TASK>, <IRQ>, ...).
        let marker = facts.stackKindName == "task" ? "TASK" : facts.stackKindName.uppercased()
        lines.append(" <\(marker)>")
        let frames = accessFrames(facts)
        lines += frameLines(frames, column: frames.indices.map { facts.frameBytes($0).map(String.init) ?? "?" })
        lines.append(" </\(marker)>")
        lines.append("")
        lines.append("Largest stack users on this path:")
        let users = stackUsers(facts)
        if users.isEmpty { lines.append(" (no frame sizes were recorded)") }
        for user in users {
            lines.append(" \(user.name): \(user.bytes) bytes in \(user.frames) frame\(user.frames == 1 ? "" : "s")")
        }
        lines.append(FindingReport.separator)
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: JSON

    func stackJSON(_ facts: FindingFacts) -> JSONObject {
        let r = facts.record
        var o = JSONObject()
        o.add("tool", .string(facts.toolName))
        o.add("kind", .string(facts.bugName))
        o.add("rule", .string(facts.ruleID))
        o.add("title", .string(title(facts)))
        o.add("stack_pointer", .string(hexAddress(r.address)))
        o.add("free_bytes", .uint(facts.freeBytes))
        var stack = JSONObject()
        stack.add("kind", .string(facts.stackKindName))
        stack.add("start", .string(hexAddress(facts.stackStart)))
        stack.add("size", .uint(facts.stackSize))
        o.add("stack", stack.value)
        o.add("adjustment", .uint(UInt64(r.accessSize)))
        o.add("pc", .string(hexAddress(r.pc)))
        o.add("location", FindingReport.json(faultingFrame(facts)))
        o.add("cpu", .uint(UInt64(r.cpu)))
        o.add("pid", .uint(UInt64(r.pid)))
        o.add("comm", .string(r.comm))
        o.add("count", .uint(UInt64(r.count)))
        o.add("timestamp_ns", .uint(r.timestampNanoseconds))
        let frames = resolver.resolve(r.accessStack, firstIsPC: true)
        o.add("frames", .array(frames.indices.map { i in
            var frame = FindingReport.jsonObject(frames[i])
            frame.add("stack_bytes", facts.frameBytes(i).map { .uint(UInt64($0)) } ?? .null)
            return frame.value
        }))
        o.add("largest_users", FindingReport.json(stackUsers(facts)))
        return o
    }

    static func json(_ users: [StackUser]) -> JSONValue {
        .array(users.map { user in
            var u = JSONObject()
            u.add("function", .string(user.function))
            u.add("module", user.module.map { .string($0) } ?? .null)
            u.add("bytes", .uint(user.bytes))
            u.add("frames", .uint(UInt64(user.frames)))
            return u.value
        })
    }

    // MARK: SARIF

    /// The result's stacks and properties (the rest is heapcheck's).
    func stackSARIFDetails(_ facts: FindingFacts) -> (stacks: [JSONValue], properties: JSONValue) {
        let r = facts.record
        let frames = resolver.resolve(r.accessStack, firstIsPC: true)
        let stack = FindingReport.sarifStack(
            "Call trace on the \(facts.stackKindName) stack (task \(r.comm)/\(r.pid) on cpu \(r.cpu))", frames,
            stackBytes: frames.indices.map { facts.frameBytes($0) })
        var properties = JSONObject()
        properties.add("stackPointer", .string(hexAddress(r.address)))
        properties.add("freeBytes", .uint(facts.freeBytes))
        properties.add("stackKind", .string(facts.stackKindName))
        properties.add("stackStart", .string(hexAddress(facts.stackStart)))
        properties.add("stackSize", .uint(facts.stackSize))
        properties.add("adjustment", .uint(UInt64(r.accessSize)))
        properties.add("pid", .uint(UInt64(r.pid)))
        properties.add("comm", .string(r.comm))
        properties.add("cpu", .uint(UInt64(r.cpu)))
        properties.add("largestUsers", FindingReport.json(stackUsers(facts)))
        return ([stack], properties.value)
    }
}
