// SPDX-License-Identifier: GPL-2.0-only

import ArgumentParser
import KdbtClient

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show whether the kernel is attached, and the engine's statistics."
    )

    @OptionGroup(title: "Global Options") var global: GlobalOptions
    @OptionGroup var output: FormatOption

    func run() throws {
        let status = try global.withClient { client, _ throws(DeviceError) in try client.status() }
        CLIContext.current.write(renderStatus(status, format: output.format))
    }
}
