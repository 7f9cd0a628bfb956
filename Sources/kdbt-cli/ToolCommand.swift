// SPDX-License-Identifier: GPL-2.0-only
//
// `kdbt tool enable|disable|list`: the tool set of a running attachment. A change
// rebuilds the code cache with the new tools (the module detaches and attaches
// again in one request, KDBT_IOC_RETOOL): findings carry over, inscount starts
// counting afresh.

import ArgumentParser
import KdbtClient
import Protocol

struct ToolCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tool",
        abstract: "Enable or disable a tool on the attached kernel, or list the tools.",
        subcommands: [ToolEnableCommand.self, ToolDisableCommand.self, ToolListCommand.self]
    )
}

/// Asks the module for the tool set `change` makes of the current one (nil when
/// detached; `change` returns nil for no change, and `unchanged` is printed), then
/// prints the reply. A refusal after the module detached leaves the kernel
/// detached: the message says so.
private func changeTools(_ global: GlobalOptions, format: OutputFormat, unchanged: String,
                         _ change: (AttachRequest?) -> AttachRequest?) throws {
    var wasAttached = false
    let reply = try global.withClient { client, _ throws(DeviceError) -> AttachRequest? in
        let now = try currentTools(client)
        wasAttached = now != nil
        guard let next = change(now) else { return nil }
        return try client.retool(next)
    }
    guard let reply else {
        CLIContext.current.write(unchanged + "\n")
        return
    }
    if reply.refusal != 0 && wasAttached {
        CLIContext.current.writeError("kdbt: the kernel was detached to change the tools, and stays detached\n")
    }
    try reportAttached(reply, format: format)
}

/// The tool set in effect now: the status reply's when attached, none otherwise.
private func currentTools(_ client: KdbtClient<AnyDevice>) throws(DeviceError) -> AttachRequest? {
    let status = try client.status()
    return status.state == .attached ? status.tools : nil
}

struct ToolEnableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enable",
        abstract: "Add a tool to the attached kernel (attaches when not attached).",
        discussion: """
            The code cache is rebuilt with the tool added; the other tools keep their \
            settings, and findings so far are kept. Enabling a tool that runs already \
            applies the settings given. Exit status 2 when the kernel cannot be attached.
            """
    )

    @OptionGroup(title: "Global Options") var global: GlobalOptions
    @OptionGroup var output: FormatOption
    @Argument(help: "The tool: inscount, null, heapcheck, stackguard.") var name: KernelTool
    @OptionGroup var settings: ToolSettings

    func validate() throws { try settings.check(enabling: [name], how: "enable") }

    func run() throws {
        try changeTools(global, format: output.format, unchanged: "\(name.rawValue) is enabled already") { now in
            let current = now ?? AttachRequest(tools: 0)
            var next = settings.apply(to: current)
            next.tools |= name.bit
            return next == current ? nil : next
        }
    }
}

struct ToolDisableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disable",
        abstract: "Remove a tool from the attached kernel (the kernel stays attached).",
        discussion: """
            The code cache is rebuilt without the tool; findings so far are kept. \
            Disabling a tool that does not run changes nothing.
            """
    )

    @OptionGroup(title: "Global Options") var global: GlobalOptions
    @OptionGroup var output: FormatOption
    @Argument(help: "The tool: inscount, null, heapcheck, stackguard.") var name: KernelTool

    func run() throws {
        try changeTools(global, format: output.format, unchanged: "\(name.rawValue) is not enabled") { now in
            guard var next = now, next.tools & name.bit != 0 else { return nil }
            next.tools &= ~name.bit
            return next
        }
    }
}

struct ToolListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "The kernel tools, and which run now."
    )

    @OptionGroup(title: "Global Options") var global: GlobalOptions
    @OptionGroup var output: FormatOption

    func run() throws {
        let now = try global.withClient { client, _ throws(DeviceError) in try currentTools(client) }
        let enabled = now?.tools ?? 0
        let context = CLIContext.current
        switch output.format {
        case .text:
            for tool in KernelTool.allCases {
                let name = tool.rawValue + String(repeating: " ", count: max(1, 12 - tool.rawValue.count))
                context.write(name + (enabled & tool.bit != 0 ? "enabled  " : "-        ") + tool.summary + "\n")
            }
        case .json:
            var json = JSONObject()
            json.add("attached", .bool(now != nil))
            json.add("tools", .array(KernelTool.allCases.map { tool in
                var o = JSONObject()
                o.add("name", .string(tool.rawValue))
                o.add("enabled", .bool(enabled & tool.bit != 0))
                return .object(o)
            }))
            context.write(json.value.serialized() + "\n")
        }
    }
}
