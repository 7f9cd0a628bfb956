// SPDX-License-Identifier: GPL-2.0-only

import ArgumentParser
import KdbtClient
import Protocol

/// A tool `kdbt attach --tool` accepts.
enum KernelTool: String, ExpressibleByArgument, CaseIterable {
    case inscount, null, heapcheck, stackguard

    var bit: UInt64 {
        switch self {
        case .inscount: return ToolBits.inscount
        case .null: return ToolBits.null
        case .heapcheck: return ToolBits.heapcheck
        case .stackguard: return ToolBits.stackguard
        }
    }

    var summary: String {
        switch self {
        case .inscount: return "exact per-CPU instruction counts, top functions"
        case .null: return "no instrumentation (the translator's own cost)"
        case .heapcheck: return "use-after-free, out-of-bounds and bad frees in the slab heap"
        case .stackguard: return "kernel stacks about to overflow, per-CPU high-water marks"
        }
    }
}

/// The tools' settings, shared by `kdbt attach` and `kdbt tool enable`.
struct ToolSettings: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "heapcheck: bytes of freed objects held back before the allocator reuses them (default 4 MiB).",
        valueName: "bytes"))
    var quarantine: UInt64?

    @Option(name: .long, help: ArgumentHelp(
        "heapcheck: the least poisoned bytes after each kmalloc object, 8 to \(AttachRequest.maxRedzone) (default 16).",
        valueName: "bytes"))
    var redzone: UInt32?

    @Option(name: .long, help: ArgumentHelp(
        "stackguard: report a stack with fewer free bytes than this, up to \(AttachRequest.maxStackThreshold) (default 4096).",
        valueName: "bytes"))
    var threshold: UInt32?

    /// Each setting must belong to a tool being enabled, and be in range.
    func check(enabling tools: [KernelTool], how: String) throws {
        if threshold != nil && !tools.contains(.stackguard) {
            throw ValidationError("--threshold is stackguard's option (\(how) stackguard)")
        }
        if let t = threshold, t == 0 || t > AttachRequest.maxStackThreshold {
            throw ValidationError("--threshold must be between 1 and \(AttachRequest.maxStackThreshold) bytes")
        }
        if (quarantine != nil || redzone != nil) && !tools.contains(.heapcheck) {
            throw ValidationError("--quarantine and --redzone are heapcheck's options (\(how) heapcheck)")
        }
        if let r = redzone, r < 8 || r > AttachRequest.maxRedzone {
            throw ValidationError("--redzone must be between 8 and \(AttachRequest.maxRedzone) bytes")
        }
        if let q = quarantine, q == 0 {
            throw ValidationError("--quarantine must be more than 0 bytes")
        }
    }

    /// `request` with the settings given here (0 asks the module for its default).
    func apply(to request: AttachRequest) -> AttachRequest {
        var r = request
        if let q = quarantine { r.quarantineBytes = q }
        if let z = redzone { r.redzoneBytes = z }
        if let t = threshold { r.stackThreshold = t }
        return r
    }
}

/// Prints an attach (or retool) reply; throws the environment status when the
/// module refused.
func reportAttached(_ reply: AttachRequest, format: OutputFormat) throws {
    let context = CLIContext.current
    guard reply.refusal == 0 else {
        let reason = AttachRefusal(rawValue: reply.refusal)?.message ?? "refused (reason \(reply.refusal))"
        context.writeError("kdbt: cannot attach: \(reason)\n")
        throw ExitStatus.environment
    }
    switch format {
    case .text:
        let tools = ToolBits.names(reply.tools)
        let ms = formatMilliseconds(reply.attachNanoseconds)
        context.write("attached: \(reply.cpus) CPUs, \(reply.blocks) entry blocks translated, "
                      + "tools: \(tools.isEmpty ? "none" : tools.joined(separator: ",")), in \(ms)\n")
    case .json:
        var json = JSONObject()
        json.add("attached", .bool(true))
        json.add("cpus", .int(Int64(reply.cpus)))
        json.add("blocks", .uint(reply.blocks))
        json.add("attach_ns", .uint(reply.attachNanoseconds))
        json.add("tools", .array(ToolBits.names(reply.tools).map { .string($0) }))
        context.write(json.value.serialized() + "\n")
    }
}

struct AttachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Run the whole kernel from kdbt's code cache, on every CPU.",
        discussion: """
            Points every CPU's interrupt table and syscall entry at kdbt: syscalls, \
            interrupts, exceptions and kernel threads then run translated, with the \
            chosen tools, until `kdbt detach`. Exit status 2 when the kernel cannot be \
            attached (the message says why and what to do).
            """
    )

    @OptionGroup(title: "Global Options") var global: GlobalOptions
    @OptionGroup var output: FormatOption

    @Option(name: .long, help: ArgumentHelp("A tool to run (repeatable): inscount, null, heapcheck, stackguard.",
                                            valueName: "name"))
    var tool: [KernelTool] = []

    @OptionGroup var settings: ToolSettings

    func validate() throws { try settings.check(enabling: tool, how: "add --tool") }

    func run() throws {
        let request = settings.apply(to: AttachRequest(tools: tool.reduce(UInt64(0)) { $0 | $1.bit }))
        let reply = try global.withClient { client, _ throws(DeviceError) in
            try client.attach(tools: request.tools, quarantineBytes: request.quarantineBytes,
                              redzoneBytes: request.redzoneBytes, stackThreshold: request.stackThreshold)
        }
        try reportAttached(reply, format: output.format)
    }
}

struct DetachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detach",
        abstract: "Give the kernel back: native entry points on every CPU, the cache freed."
    )

    @OptionGroup(title: "Global Options") var global: GlobalOptions
    @OptionGroup var output: FormatOption

    func run() throws {
        let reply = try global.withClient { client, _ throws(DeviceError) in try client.detach() }
        let context = CLIContext.current
        switch output.format {
        case .text:
            if reply.wasAttached == 0 {
                context.write("not attached\n")
            } else {
                let counted = reply.instructions > 0 ? ", \(reply.instructions) instructions counted" : ""
                context.write("detached in \(formatMilliseconds(reply.detachNanoseconds))\(counted)\n")
            }
        case .json:
            var json = JSONObject()
            json.add("was_attached", .bool(reply.wasAttached != 0))
            json.add("detach_ns", .uint(reply.detachNanoseconds))
            json.add("instructions", .uint(reply.instructions))
            context.write(json.value.serialized() + "\n")
        }
    }
}

/// "12.345 ms"
func formatMilliseconds(_ nanoseconds: UInt64) -> String {
    let us = nanoseconds / 1000
    let frac = us % 1000
    return "\(us / 1000).\(frac < 10 ? "00" : frac < 100 ? "0" : "")\(frac) ms"
}
