// SPDX-License-Identifier: GPL-2.0-only
//
// Findings of the checking tools, rendered for people (KASAN's report layout, so
// existing eyes and scripts read them), for scripts (JSON lines) and for code
// scanning (SARIF, FindingSARIF.swift). All three start from the same analysis
// (`FindingFacts`) and the same resolved frames, so they cannot disagree.

import Protocol

/// `kdbt report --format`.
public enum ReportFormat: String, CaseIterable, Sendable {
    case text
    case json
    case sarif
}

/// One code address as the report shows it: kallsyms' function+offset, and the
/// source frames when a symbolizer knows them (innermost inlined first).
public struct ResolvedFrame: Equatable, Sendable {
    public var address: UInt64
    public var location: SymbolLocation?
    public var source: [SourceFrame]

    public init(address: UInt64, location: SymbolLocation?, source: [SourceFrame] = []) {
        self.address = address
        self.location = location
        self.source = source
    }

    /// Inlined frames, innermost first.
    public var inlined: [SourceFrame] { source.filter(\.inlined) }
    /// The frame of the function that holds the machine code.
    public var containing: SourceFrame? { source.last { !$0.inlined } ?? source.last }

    /// kallsyms' name: "func+0xoff/0xsize [module]", or the bare address.
    public var kernelDescription: String { location?.kernelDescription ?? "0x" + String(address, radix: 16) }
}

/// Turns addresses into frames: kallsyms first, then the symbolizer (if any) on
/// the kallsyms location.
public struct FrameResolver {
    public let kallsyms: Kallsyms?
    public let symbolizer: (any FrameSymbolizing)?

    public init(kallsyms: Kallsyms?, symbolizer: (any FrameSymbolizing)? = nil) {
        self.kallsyms = kallsyms
        self.symbolizer = symbolizer
    }

    public func resolve(_ address: UInt64, isReturnAddress: Bool) -> ResolvedFrame {
        let location = kallsyms?.location(address)
        var source: [SourceFrame] = []
        if let location, let symbolizer {
            source = symbolizer.sourceFrames(for: location, isReturnAddress: isReturnAddress)
        }
        return ResolvedFrame(address: address, location: location, source: source)
    }

    /// A recorded stack. In the access stack frame 0 is the faulting instruction
    /// itself; every other frame (and every frame of an allocation or free stack,
    /// which the module saves from inside the allocator) is a return address.
    public func resolve(_ stack: FindingStack, firstIsPC: Bool) -> [ResolvedFrame] {
        stack.frames.enumerated().map { resolve($1, isReturnAddress: !(firstIsPC && $0 == 0)) }
    }
}

/// Where the buggy address lies relative to the object (KASAN's describe_object_addr).
public struct ObjectRelation: Equatable, Sendable {
    public enum Side: String, Sendable {
        case inside, right, left
        /// KASAN's wording.
        public var phrase: String {
            switch self {
            case .inside: return "inside of"
            case .right: return "to the right of"
            case .left: return "to the left of"
            }
        }
    }
    public var side: Side
    /// Bytes from the region's start (inside), end (right) or start (left).
    public var distance: UInt64
    public var regionStart: UInt64
    public var regionSize: UInt64
}

/// What a finding means, derived once from its record.
public struct FindingFacts: Sendable {
    public let record: FindingRecord

    public init(_ record: FindingRecord) { self.record = record }

    public var heapKind: HeapBugKind? {
        record.tool == FindingTool.heapcheck.rawValue ? HeapBugKind(rawValue: record.kind) : nil
    }

    public var toolName: String {
        switch FindingTool(rawValue: record.tool) {
        case .heapcheck: return "heapcheck"
        case .stackguard: return "stackguard"
        case nil: return "tool\(record.tool)"
        }
    }

    /// KASAN's name for the bug ("use-after-free"); kinds this CLI does not know
    /// keep their numbers.
    public var bugName: String {
        if let k = heapKind { return "\(k.name)" }
        if let k = stackBugKind { return "\(k.name)" }
        return "\(toolName)-finding-\(record.kind)"
    }

    /// Stable SARIF rule id of the bug class.
    public var ruleID: String {
        if let k = stackBugKind {
            switch k {
            case .nearOverflow: return "KDBT-STACK-NEAR-OVERFLOW"
            }
        }
        switch heapKind {
        case .useAfterFree: return "KDBT-HEAP-UAF"
        case .outOfBounds: return "KDBT-HEAP-OOB"
        case .doubleFree: return "KDBT-HEAP-DOUBLE-FREE"
        case .invalidFree: return "KDBT-HEAP-INVALID-FREE"
        case nil: return "KDBT-\(toolName.uppercased())-\(record.kind)"
        }
    }

    /// A bad free rather than a bad access.
    public var isFree: Bool { heapKind == .doubleFree || heapKind == .invalidFree }

    /// "read", "write" or "free".
    public var accessName: String {
        isFree ? "free" : (record.flags.has(FindingLayout.Flags.write) ? "write" : "read")
    }

    /// The object's bytes, as the allocation asked for them (KASAN since 6.2 uses
    /// the requested size too: an access past it but inside the slot is out of
    /// bounds, and says so). nil when no object is known.
    public var relation: ObjectRelation? {
        let r = record
        guard r.objectStart != 0 else { return nil }
        let size = r.objectSize != 0 ? r.objectSize : r.cacheObjectSize
        if r.address < r.objectStart {
            return ObjectRelation(side: .left, distance: r.objectStart - r.address, regionStart: r.objectStart, regionSize: size)
        }
        if r.address - r.objectStart >= size {
            return ObjectRelation(side: .right, distance: r.address - r.objectStart - size,
                                  regionStart: r.objectStart, regionSize: size)
        }
        return ObjectRelation(side: .inside, distance: r.address - r.objectStart, regionStart: r.objectStart, regionSize: size)
    }

    /// The shadow byte describing `address`, when the record's shadow covers it.
    public func shadowByte(at address: UInt64) -> UInt8? {
        guard address >= record.shadowAddress else { return nil }
        let index = (address - record.shadowAddress) / UInt64(ShadowByte.granule)
        return index < UInt64(record.shadow.count) ? record.shadow[Int(index)] : nil
    }

    /// The first address of the access whose granule is not fully accessible, as
    /// generic KASAN's find_first_bad_addr finds it: the caret points there.
    public var firstBadAddress: UInt64 {
        let r = record
        let end = r.address &+ UInt64(r.accessSize)
        var p = r.address
        while p < end, let shadow = shadowByte(at: p), shadow == 0 { p += UInt64(ShadowByte.granule) }
        return p
    }

    /// Memory addresses of the shadow rows (16 granules each).
    public var shadowRows: [(address: UInt64, bytes: ArraySlice<UInt8>)] {
        let rowBytes = FindingLayout.shadowRowBytes
        return stride(from: 0, to: record.shadow.count, by: rowBytes).map { i in
            (record.shadowAddress &+ UInt64(i * ShadowByte.granule), record.shadow[i..<min(i + rowBytes, record.shadow.count)])
        }
    }
}

/// Findings as read from the module, rendered in each format.
public struct FindingReport {
    public let records: [FindingRecord]
    /// Findings that found the ring full.
    public let dropped: UInt64
    public let resolver: FrameResolver

    public init(records: [FindingRecord], dropped: UInt64 = 0, resolver: FrameResolver) {
        self.records = records
        self.dropped = dropped
        self.resolver = resolver
    }

    /// Something was found (including findings the ring had no room for).
    public var hasFindings: Bool { !records.isEmpty || dropped > 0 }

    public func render(_ format: ReportFormat) -> String {
        switch format {
        case .text: return text()
        case .json: return jsonLines()
        case .sarif: return sarif()
        }
    }

    /// "BUG: KDBT: use-after-free in func+0x2a/0x60 [module]": the title of the
    /// text report and the SARIF message.
    public func title(_ facts: FindingFacts) -> String {
        "BUG: KDBT: \(facts.bugName) in \(faultingFrame(facts).kernelDescription)"
    }

    /// The code that did it: the record's pc (frees: the free function), else the
    /// first frame of the access stack.
    func faultingFrame(_ facts: FindingFacts) -> ResolvedFrame {
        let pc = facts.record.pc != 0 ? facts.record.pc : (facts.record.accessStack.frames.first ?? 0)
        return resolver.resolve(pc, isReturnAddress: false)
    }

    /// The access stack as the call trace shows it; the faulting code alone when
    /// the module recorded no stack.
    func accessFrames(_ facts: FindingFacts) -> [ResolvedFrame] {
        let access = resolver.resolve(facts.record.accessStack, firstIsPC: true)
        return access.isEmpty ? [faultingFrame(facts)] : access
    }

    // MARK: Text

    static let separator = String(repeating: "=", count: 66)

    /// KASAN's report, finding by finding (mm/kasan/report.c: print_error_description,
    /// the stack dump, describe_object, print_memory_metadata).
    public func text() -> String {
        var out = ""
        for record in records { out += text(FindingFacts(record)) }
        if records.isEmpty { out += "findings: none\n" }
        if dropped > 0 {
            out += "findings: \(dropped) more dropped: the module's report ring was full\n"
        }
        return out
    }

    public func text(_ facts: FindingFacts) -> String {
        if facts.isStackguard { return stackText(facts) }
        let r = facts.record
        var lines = [FindingReport.separator, title(facts)]
        let task = "by task \(r.comm)/\(r.pid)"
        if facts.isFree {
            // The header KASAN prints for bad frees since 6.2 (6.1 printed none): it
            // names the task, which the stack dump alone leaves to the CPU line.
            lines.append("Free of addr \(hex64(r.address)) \(task)")
        } else {
            let verb = facts.accessName == "write" ? "Write" : "Read"
            let size = r.accessSize != 0 ? " of size \(r.accessSize)" : ""
            lines.append("\(verb)\(size) at addr \(hex64(r.address)) \(task)")
        }
        lines += FindingReport.repeatLines(r)
        lines.append("")
        lines.append("CPU: \(r.cpu) PID: \(r.pid) Comm: \(r.comm)")
        lines.append("Call Trace:")
        lines.append(" <TASK>")
        lines += frameLines(accessFrames(facts))
        lines.append(" </TASK>")
        lines.append("")
        if let relation = facts.relation {
            lines += trackLines("Allocated", r.allocated)
            if let freed = r.freed { lines += trackLines("Freed", freed) }
            lines += objectLines(facts, relation)
            lines.append("")
        }
        lines += shadowLines(facts)
        lines.append(FindingReport.separator)
        return lines.joined(separator: "\n") + "\n"
    }

    /// "This finding was seen N times ..." when it was.
    static func repeatLines(_ r: FindingRecord) -> [String] {
        r.count > 1 ? ["This finding was seen \(r.count) times; task and stacks are those of the first."] : []
    }

    /// One line per frame, as stack_trace_print does (" %pS"); symbolized frames as
    /// syzbot prints them: inlined callees first with [inline], then kallsyms'
    /// function+offset followed by FILE:LINE. `column`, one entry per frame, is
    /// printed right-aligned after each frame's own line (not its [inline] lines),
    /// in one column past the longest of them.
    public func frameLines(_ frames: [ResolvedFrame], column: [String]? = nil) -> [String] {
        let blocks = frames.map { frame -> (inlined: [String], own: String) in
            let inlined = frame.inlined.map {
                " " + [$0.function, sourcePosition($0), "[inline]"].compactMap { $0 }.joined(separator: " ")
            }
            var own = " " + frame.kernelDescription
            if let containing = frame.containing, let position = sourcePosition(containing) { own += " " + position }
            return (inlined, own)
        }
        guard let column else { return blocks.flatMap { $0.inlined + [$0.own] } }
        let ownWidth = blocks.map(\.own.count).max() ?? 0
        let valueWidth = column.map(\.count).max() ?? 0
        return blocks.enumerated().flatMap { i, block in
            let value = i < column.count ? column[i] : ""
            let padding = ownWidth - block.own.count + 3 + valueWidth - value.count
            return block.inlined + [block.own + String(repeating: " ", count: padding) + value]
        }
    }

    func sourcePosition(_ frame: SourceFrame) -> String? {
        guard let file = frame.file else { return nil }
        return frame.line.map { "\(file):\($0)" } ?? file
    }

    func trackLines(_ what: String, _ track: FindingTrack) -> [String] {
        var lines = ["\(what) by task \(track.pid) on cpu \(track.cpu):"]
        if track.stack.frames.isEmpty {
            lines.append("(stack is not available)")
        } else {
            lines += frameLines(resolver.resolve(track.stack, firstIsPC: false))
        }
        lines.append("")
        return lines
    }

    func objectLines(_ facts: FindingFacts, _ relation: ObjectRelation) -> [String] {
        let r = facts.record
        let container: String
        if r.flags.has(FindingLayout.Flags.pageBacked) || r.cacheName.isEmpty {
            // kmalloc_large: no cache, KASAN would dump the page; say what it is.
            container = " which belongs to a page allocation of size \(r.cacheObjectSize != 0 ? r.cacheObjectSize : relation.regionSize)"
        } else {
            container = " which belongs to the cache \(r.cacheName) of size \(r.cacheObjectSize)"
        }
        return [
            "The buggy address belongs to the object at \(hex64(r.objectStart))",
            container,
            "The buggy address is located \(relation.distance) bytes \(relation.side.phrase)",
            " \(relation.regionSize)-byte region [\(hex64(relation.regionStart)), \(hex64(relation.regionStart &+ relation.regionSize)))",
        ]
    }

    /// ">ffff888003d4c800: fb fb ..." with the caret under the first bad granule:
    /// ">" + 16 digits + ": " is 19 columns, each granule 3 more.
    func shadowLines(_ facts: FindingFacts) -> [String] {
        let rows = facts.shadowRows
        guard !rows.isEmpty, facts.record.shadowAddress != 0 else { return [] }
        let bad = facts.firstBadAddress
        let rowSpan = UInt64(FindingLayout.shadowRowBytes * ShadowByte.granule)
        var lines = ["Memory state around the buggy address:"]
        for row in rows {
            let guilty = row.address <= bad && bad - row.address < rowSpan
            let bytes = row.bytes.map { hex2($0) }.joined(separator: " ")
            lines.append((guilty ? ">" : " ") + hex64(row.address) + ": " + bytes)
            if guilty {
                let granule = Int((bad - row.address) / UInt64(ShadowByte.granule))
                lines.append(String(repeating: " ", count: 19 + 3 * granule) + "^")
            }
        }
        return lines
    }

    // MARK: JSON lines

    /// One JSON object per finding, one per line.
    public func jsonLines() -> String {
        records.map { json(FindingFacts($0)).value.serialized() + "\n" }.joined()
    }

    public func json(_ facts: FindingFacts) -> JSONObject {
        if facts.isStackguard { return stackJSON(facts) }
        let r = facts.record
        var o = JSONObject()
        o.add("tool", .string(facts.toolName))
        o.add("kind", .string(facts.bugName))
        o.add("rule", .string(facts.ruleID))
        o.add("title", .string(title(facts)))
        o.add("access", .string(facts.accessName))
        o.add("address", .string(hexAddress(r.address)))
        o.add("size", .uint(UInt64(r.accessSize)))
        o.add("first_bad_address", .string(hexAddress(facts.firstBadAddress)))
        o.add("pc", .string(hexAddress(r.pc)))
        o.add("location", FindingReport.json(faultingFrame(facts)))
        o.add("cpu", .uint(UInt64(r.cpu)))
        o.add("pid", .uint(UInt64(r.pid)))
        o.add("comm", .string(r.comm))
        o.add("count", .uint(UInt64(r.count)))
        o.add("timestamp_ns", .uint(r.timestampNanoseconds))
        if let relation = facts.relation {
            var object = JSONObject()
            object.add("address", .string(hexAddress(r.objectStart)))
            object.add("size", .uint(relation.regionSize))
            object.add("relation", .string(relation.side.rawValue))
            object.add("distance", .uint(relation.distance))
            object.add("cache", r.cacheName.isEmpty ? .null : .string(r.cacheName))
            object.add("cache_object_size", .uint(r.cacheObjectSize))
            object.add("named_cache", .bool(r.flags.has(FindingLayout.Flags.namedCache)))
            object.add("page_backed", .bool(r.flags.has(FindingLayout.Flags.pageBacked)))
            o.add("object", object.value)
        } else {
            o.add("object", .null)
        }
        o.add("access_stack", .array(resolver.resolve(r.accessStack, firstIsPC: true).map(FindingReport.json)))
        o.add("allocated", facts.relation == nil ? .null : json(r.allocated))
        o.add("freed", r.freed.map(json) ?? .null)
        var shadow = JSONObject()
        shadow.add("address", .string(hexAddress(r.shadowAddress)))
        shadow.add("bytes", .array(r.shadow.map { .uint(UInt64($0)) }))
        o.add("shadow", shadow.value)
        return o
    }

    func json(_ track: FindingTrack) -> JSONValue {
        var o = JSONObject()
        o.add("pid", .uint(UInt64(track.pid)))
        o.add("cpu", .uint(UInt64(track.cpu)))
        o.add("comm", .string(track.comm))
        o.add("stack", .array(resolver.resolve(track.stack, firstIsPC: false).map(FindingReport.json)))
        return o.value
    }

    static func json(_ frame: ResolvedFrame) -> JSONValue { jsonObject(frame).value }

    static func jsonObject(_ frame: ResolvedFrame) -> JSONObject {
        var o = JSONObject()
        o.add("address", .string(hexAddress(frame.address)))
        o.add("function", frame.location.map { .string($0.function) } ?? .null)
        o.add("offset", frame.location.map { .uint($0.offset) } ?? .null)
        o.add("size", frame.location.map { .uint($0.size) } ?? .null)
        o.add("module", frame.location?.module.map { .string($0) } ?? .null)
        let containing = frame.containing
        o.add("file", containing?.file.map { .string($0) } ?? .null)
        o.add("line", containing?.line.map { .int(Int64($0)) } ?? .null)
        o.add("column", containing?.column.map { .int(Int64($0)) } ?? .null)
        o.add("inlined", .array(frame.inlined.map { s in
            var i = JSONObject()
            i.add("function", .string(s.function))
            i.add("file", s.file.map { .string($0) } ?? .null)
            i.add("line", s.line.map { .int(Int64($0)) } ?? .null)
            i.add("column", s.column.map { .int(Int64($0)) } ?? .null)
            return i.value
        }))
        return o
    }
}

/// "0xffff888003d4c80c": kernel addresses do not fit JSON's safe integers.
func hexAddress(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

func hex2(_ b: UInt8) -> String { (b < 0x10 ? "0" : "") + String(b, radix: 16) }
