// SPDX-License-Identifier: GPL-2.0-only

import ArgumentParser
import KdbtClient
import Protocol

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Show what the tools found: inscount's totals per CPU and the top kernel functions.",
        discussion: """
            While attached with --tool inscount: the exact instruction count of each CPU, \
            and the kernel functions that executed the most instructions, from per-block \
            counts summed by the function each block starts in (symbols from \
            /proc/kallsyms). Per-block counts are updated without atomics, so concurrent \
            CPUs can lose a few: they rank, the per-CPU totals are exact. Exit status 2 \
            when nothing is attached with inscount.
            """
    )

    @OptionGroup(title: "Global Options") var global: GlobalOptions
    @OptionGroup var output: FormatOption

    @Option(name: .long, help: ArgumentHelp("How many functions to list.", valueName: "n"))
    var top: Int = 20

    func validate() throws {
        if top < 1 { throw ValidationError("--top must be at least 1") }
    }

    func run() throws {
        let context = CLIContext.current
        let gathered = try global.withClient { client, version throws(DeviceError) in
            let status = try client.status()
            guard status.state == .attached else { return nil as ([CPUStatsRequest], [(address: UInt64, instructions: UInt64)])? }
            var cpus: [CPUStatsRequest] = []
            for cpu in 0..<version.reply.cpus { cpus.append(try client.cpuStats(cpu: cpu)) }
            do throws(DeviceError) {
                return (cpus, try client.profile().entries)
            } catch {
                if case .requestFailed(_, let errno) = error, errno == Errno.ENOENT { return nil }
                throw error
            }
        }
        guard let (cpus, entries) = gathered else {
            context.writeError("kdbt: nothing to report: attach with `kdbt attach --tool inscount` first\n")
            throw ExitStatus.environment
        }
        let symbols = try? Kallsyms()
        let functions = topFunctions(entries, symbols: symbols, top: top)
        let profiled = entries.reduce(UInt64(0)) { $0 + $1.instructions }
        context.write(renderReport(cpus: cpus, functions: functions, profiled: profiled, format: output.format))
    }
}
