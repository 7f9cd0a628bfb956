// SPDX-License-Identifier: GPL-2.0-only

import ArgumentParser
import KdbtClient
import Protocol

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show whether the kernel is attached, and the engine's statistics."
    )

    @OptionGroup(title: "Global Options") var global: GlobalOptions
    @OptionGroup var output: FormatOption

    func run() throws {
        let (status, cpus) = try global.withClient { client, version throws(DeviceError) in
            let status = try client.status()
            var cpus: [CPUStatsRequest] = []
            if status.state == .attached && version.reply.features.contains(.attach) {
                for cpu in 0..<version.reply.cpus { cpus.append(try client.cpuStats(cpu: cpu)) }
            }
            return (status, cpus)
        }
        CLIContext.current.write(renderStatus(status, cpus: cpus, format: output.format))
    }
}
