// SPDX-License-Identifier: GPL-2.0-only
//
// Turning replies into text and JSON. Formatting is kept apart from the requests so
// every command renders the same way, and tests can check output without a device.

import Protocol

public enum OutputFormat: String, CaseIterable, Sendable {
    case text
    case json
}

public let cliVersion = "0.1.0"

public func hex64(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
}

public func engineVersionString(_ v: UInt32) -> String {
    let p = formatEngineVersion(v)
    return "\(p.major).\(p.minor).\(p.patch)"
}

public func featureNames(_ f: FeatureBits) -> [String] {
    var names: [String] = []
    if f.contains(.status) { names.append("status") }
    if f.contains(.readText) { names.append("read-text") }
    if f.contains(.selfTest) { names.append("selftest") }
    if f.contains(.attach) { names.append("attach") }
    let unknown = f.rawValue & ~FeatureBits.known.rawValue
    if unknown != 0 { names.append("unknown(0x\(String(unknown, radix: 16)))") }
    return names
}

public func renderVersion(cliVersion: String, module: VersionReply?, format: OutputFormat) -> String {
    switch format {
    case .text:
        var lines = ["kdbt CLI \(cliVersion) (protocol \(kdbtProtocolVersion))"]
        if let m = module {
            lines.append(
                "module   \(engineVersionString(m.engineVersion)) (protocol \(m.protocolVersion), "
                    + "build \(hex64(m.buildID)), \(m.cpus) CPUs, features: "
                    + "\(featureNames(m.features).joined(separator: ",")))")
        }
        return lines.joined(separator: "\n") + "\n"
    case .json:
        var json = JSONObject()
        json.add("cli_version", .string(cliVersion))
        json.add("cli_protocol", .int(Int64(kdbtProtocolVersion)))
        if let m = module {
            var mod = JSONObject()
            mod.add("engine_version", .string(engineVersionString(m.engineVersion)))
            mod.add("protocol", .int(Int64(m.protocolVersion)))
            mod.add("build_id", .string(hex64(m.buildID)))
            mod.add("cpus", .int(Int64(m.cpus)))
            mod.add("features", .array(featureNames(m.features).map { .string($0) }))
            json.add("module", .object(mod))
        }
        return json.value.serialized() + "\n"
    }
}

/// "heapcheck (quarantine 4194304 bytes, redzone 16 bytes), stackguard (threshold 4096 bytes)", or "none".
public func renderTools(_ t: AttachRequest) -> String {
    let names = ToolBits.names(t.tools)
    if names.isEmpty { return "none" }
    return names.map { name -> String in
        switch name {
        case "heapcheck": return "heapcheck (quarantine \(t.quarantineBytes) bytes, redzone \(t.redzoneBytes) bytes)"
        case "stackguard": return "stackguard (threshold \(t.stackThreshold) bytes)"
        default: return name
        }
    }.joined(separator: ", ")
}

public func renderStatus(_ s: StatusReply, cpus: [CPUStatsRequest] = [], format: OutputFormat) -> String {
    let state = s.state == .attached ? "attached" : "detached"
    switch format {
    case .text:
        var out = """
            state:              \(state)
            cpus:               \(s.cpus)
            ioctl calls:        \(s.ioctlCalls)
            arena:              \(s.arenaUsed) of \(s.arenaBytes) bytes used
            live allocations:   \(s.liveAllocations) (\(s.liveBytes) bytes)
            loaded for:         \(formatDuration(nanoseconds: s.loadedNanoseconds))

            """
        if s.state == .attached {
            out += """
                attached for:       \(formatDuration(nanoseconds: s.attachedNanoseconds))
                tools:              \(renderTools(s.tools))
                blocks translated:  \(s.blocks)
                code cache:         \(s.cacheBytes) bytes for \(s.nativeBytes) native bytes

                """
            let h = s.heapCheck
            if h.checks > 0 {
                out += """
                    heapcheck:          \(h.objects) objects tracked now (\(h.tracked) since attach, \(h.untracked) left untracked)
                                        quarantine \(h.quarantineBytes) bytes, \(h.quarantined) frees held, \(h.released) given back
                                        \(h.checks) accesses checked inline, \(h.slowPaths) slow paths, \(h.findings) findings

                    """
            }
            if h.wrapFramesDropped > 0 {
                out += "wrapped calls lost: \(h.wrapFramesDropped) (their returns could not be followed)\n"
            }
            out += "cpu  syscalls  interrupts(user,kernel)  exceptions(user,kernel)  delayed(delivered)  instructions  native-exits  invalidations\n"
            for c in cpus {
                out += pad("\(c.cpu)", 3) + pad("\(c.syscalls)", 10)
                    + pad("\(c.userInterrupts),\(c.kernelInterrupts)", 25)
                    + pad("\(c.userExceptions),\(c.exceptions)", 25)
                    + pad("\(c.delayed)(\(c.delayedDelivered))", 20)
                    + pad("\(c.instructions)", 14) + pad("\(c.nativeFallbacks)", 14) + pad("\(c.invalidations)", 15) + "\n"
            }
        }
        return out
    case .json:
        var json = JSONObject()
        json.add("state", .string(state))
        json.add("cpus", .int(Int64(s.cpus)))
        json.add("ioctl_calls", .uint(s.ioctlCalls))
        json.add("arena_bytes", .uint(s.arenaBytes))
        json.add("arena_used", .uint(s.arenaUsed))
        json.add("live_allocations", .uint(s.liveAllocations))
        json.add("live_bytes", .uint(s.liveBytes))
        json.add("loaded_ns", .uint(s.loadedNanoseconds))
        if s.state == .attached {
            json.add("attached_ns", .uint(s.attachedNanoseconds))
            json.add("tools", .array(ToolBits.names(s.tools.tools).map { .string($0) }))
            if s.tools.tools & ToolBits.heapcheck != 0 {
                json.add("quarantine_limit", .uint(s.tools.quarantineBytes))
                json.add("redzone", .uint(UInt64(s.tools.redzoneBytes)))
            }
            if s.tools.tools & ToolBits.stackguard != 0 { json.add("stack_threshold", .uint(UInt64(s.tools.stackThreshold))) }
            json.add("blocks", .uint(s.blocks))
            json.add("cache_bytes", .uint(s.cacheBytes))
            json.add("native_bytes", .uint(s.nativeBytes))
            json.add("wrap_frames_dropped", .uint(s.heapCheck.wrapFramesDropped))
            if s.heapCheck.checks > 0 {
                let h = s.heapCheck
                var o = JSONObject()
                o.add("tracked", .uint(h.tracked))
                o.add("untracked", .uint(h.untracked))
                o.add("objects", .uint(h.objects))
                o.add("quarantined", .uint(h.quarantined))
                o.add("released", .uint(h.released))
                o.add("quarantine_bytes", .uint(h.quarantineBytes))
                o.add("checks", .uint(h.checks))
                o.add("slow_paths", .uint(h.slowPaths))
                o.add("findings", .uint(h.findings))
                json.add("heapcheck", .object(o))
            }
            json.add("per_cpu", .array(cpus.map { c in
                var o = JSONObject()
                o.add("cpu", .int(Int64(c.cpu)))
                o.add("syscalls", .uint(c.syscalls))
                o.add("user_interrupts", .uint(c.userInterrupts))
                o.add("kernel_interrupts", .uint(c.kernelInterrupts))
                o.add("user_exceptions", .uint(c.userExceptions))
                o.add("kernel_exceptions", .uint(c.exceptions))
                o.add("delayed_interrupts", .uint(c.delayed))
                o.add("delayed_delivered", .uint(c.delayedDelivered))
                o.add("untranslated_faults", .uint(c.untranslatedFaults))
                o.add("invalidations", .uint(c.invalidations))
                o.add("instructions", .uint(c.instructions))
                o.add("native_exits", .uint(c.nativeFallbacks))
                return .object(o)
            }))
        }
        return json.value.serialized() + "\n"
    }
}

/// Right-aligns `s` in `width` columns.
public func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? " " + s : String(repeating: " ", count: width - s.count) + s
}

public func formatDuration(nanoseconds: UInt64) -> String {
    let ms = nanoseconds / 1_000_000
    let s = ms / 1000
    if s >= 60 { return "\(s / 60)m\(s % 60)s" }
    let frac = ms % 1000
    let pad = frac < 10 ? "00" : (frac < 100 ? "0" : "")
    return "\(s).\(pad)\(frac)s"
}

/// A self-test result with the workload's name. `passed`: translated result equal
/// to the native one, no translation error, a non-zero instruction count.
public struct SelfTestOutcome: Sendable {
    public let name: String
    public let reply: SelfTestRequest
    public init(name: String, reply: SelfTestRequest) {
        self.name = name
        self.reply = reply
    }
    public var passed: Bool {
        reply.translateError == 0 && reply.translatedResult == reply.nativeResult && reply.instructions > 0
    }
}

public func renderSelfTest(_ outcomes: [SelfTestOutcome], format: OutputFormat) -> String {
    switch format {
    case .text:
        var out = ""
        for o in outcomes {
            let r = o.reply
            let verdict = o.passed ? "ok" : "FAILED"
            out += "\(o.name) \(r.argument): \(verdict) on cpu \(r.cpu): native \(Int64(bitPattern: r.nativeResult)), "
                + "translated \(Int64(bitPattern: r.translatedResult)), \(r.instructions) instructions, "
                + "\(r.blocks) blocks, \(r.nativeBytes) native bytes -> \(r.cacheBytes) cache bytes"
            if r.translateError != 0 {
                out += ", translation error \(r.translateError) at 0x\(String(r.errorPC, radix: 16))"
            }
            out += "\n"
        }
        return out
    case .json:
        var lines = ""
        for o in outcomes {
            let r = o.reply
            var json = JSONObject()
            json.add("workload", .string(o.name))
            json.add("argument", .uint(r.argument))
            json.add("passed", .bool(o.passed))
            json.add("cpu", .int(Int64(r.cpu)))
            json.add("native_result", .int(Int64(bitPattern: r.nativeResult)))
            json.add("translated_result", .int(Int64(bitPattern: r.translatedResult)))
            json.add("instructions", .uint(r.instructions))
            json.add("blocks", .uint(r.blocks))
            json.add("native_bytes", .uint(r.nativeBytes))
            json.add("cache_bytes", .uint(r.cacheBytes))
            json.add("translate_error", .int(Int64(r.translateError)))
            json.add("error_pc", .uint(r.errorPC))
            lines += json.value.serialized() + "\n"
        }
        return lines
    }
}

/// One function's share of the instructions in `kdbt report`.
public struct FunctionCount: Sendable, Equatable {
    public let function: String
    public let instructions: UInt64
    public init(function: String, instructions: UInt64) {
        self.function = function
        self.instructions = instructions
    }
}

/// Sums per-block counts by the function (symbol) each block starts in; the
/// `top` largest, largest first. Blocks outside any symbol go under their address.
public func topFunctions(_ entries: [(address: UInt64, instructions: UInt64)], symbols: Kallsyms?,
                         top: Int) -> [FunctionCount] {
    var byName: [String: UInt64] = [:]
    for e in entries where e.instructions > 0 {
        var name = "0x" + String(e.address, radix: 16)
        if let s = symbols?.symbolize(e.address) {
            name = s.symbol.name + (s.symbol.module.map { " [\($0)]" } ?? "")
        }
        byName[name, default: 0] += e.instructions
    }
    return byName.map { FunctionCount(function: $0.key, instructions: $0.value) }
        .sorted { $0.instructions != $1.instructions ? $0.instructions > $1.instructions : $0.function < $1.function }
        .prefix(top).map { $0 }
}

public func renderReport(cpus: [CPUStatsRequest], functions: [FunctionCount], profiled: UInt64,
                         format: OutputFormat) -> String {
    let total = cpus.reduce(UInt64(0)) { $0 + $1.instructions }
    switch format {
    case .text:
        var out = "inscount: \(total) kernel instructions\n"
        for c in cpus { out += "  cpu \(c.cpu): \(c.instructions)\n" }
        out += "top functions by instructions executed (per-block counts, \(profiled) in all):\n"
        out += "  instructions   share  function\n"
        for f in functions {
            let share = profiled > 0 ? Double(f.instructions) * 100 / Double(profiled) : 0
            let tenths = Int((share * 10).rounded())
            out += pad("\(f.instructions)", 14) + pad("\(tenths / 10).\(tenths % 10)%", 8) + "  \(f.function)\n"
        }
        return out
    case .json:
        var json = JSONObject()
        json.add("instructions", .uint(total))
        json.add("per_cpu", .array(cpus.map { c in
            var o = JSONObject()
            o.add("cpu", .int(Int64(c.cpu)))
            o.add("instructions", .uint(c.instructions))
            return .object(o)
        }))
        json.add("profiled_instructions", .uint(profiled))
        json.add("top_functions", .array(functions.map { f in
            var o = JSONObject()
            o.add("function", .string(f.function))
            o.add("instructions", .uint(f.instructions))
            return .object(o)
        }))
        return json.value.serialized() + "\n"
    }
}
