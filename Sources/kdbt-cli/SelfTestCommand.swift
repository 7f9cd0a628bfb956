// SPDX-License-Identifier: GPL-2.0-only

import ArgumentParser
import KdbtClient
import Protocol

extension SelfTestWorkload: ExpressibleByArgument {
    public init?(argument: String) {
        guard let w = SelfTestWorkload.named(argument) else { return nil }
        self = w
    }

    static let all: [SelfTestWorkload] = [.recursion, .sort, .strings, .interpreter, .slab]

    static func named(_ name: String) -> SelfTestWorkload? { all.first { $0.name == name } }

    var name: String {
        switch self {
        case .recursion: return "recursion"
        case .sort: return "sort"
        case .strings: return "strings"
        case .interpreter: return "interpreter"
        case .slab: return "slab"
        }
    }

    /// Enough work to cover the code paths, quick under TCG.
    var defaultArgument: UInt64 {
        switch self {
        case .recursion: return 18
        case .sort: return 4096
        case .strings: return 3000
        case .interpreter: return 300_000
        case .slab: return 3000
        }
    }
}

struct SelfTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Run built-in kernel workloads natively and translated, and compare.",
        discussion: """
            Each workload (recursion, sort, strings, interpreter, slab) is real kernel \
            code: lib/sort.c with a comparator, vsnprintf and crc32, the slab allocator. \
            The module runs it natively, then from its code cache with inscount, on one \
            CPU with preemption off. Exit status 1 when a translated result differs from \
            the native one or translation failed.
            """
    )

    @OptionGroup(title: "Global Options") var global: GlobalOptions
    @OptionGroup var output: FormatOption

    @Option(name: .long, help: ArgumentHelp(
        "A workload to run (repeatable; default: all): recursion, sort, strings, interpreter, slab.",
        valueName: "name"))
    var workload: [SelfTestWorkload] = []

    @Option(name: .long, help: ArgumentHelp("The workload's size (default: per workload).", valueName: "n"))
    var argument: UInt64?

    func validate() throws {
        for w in workload {
            if let a = argument, a == 0 || a > w.maximumArgument {
                throw ValidationError("--argument for \(w.name) must be 1...\(w.maximumArgument)")
            }
        }
        if argument != nil && workload.isEmpty {
            throw ValidationError("--argument needs --workload")
        }
    }

    func run() throws {
        let workloads = workload.isEmpty ? SelfTestWorkload.all : workload
        let outcomes = try global.withClient { client, _ throws(DeviceError) in
            var outcomes: [SelfTestOutcome] = []
            for w in workloads {
                let reply = try client.selfTest(w, argument: argument ?? w.defaultArgument)
                outcomes.append(SelfTestOutcome(name: w.name, reply: reply))
            }
            return outcomes
        }
        CLIContext.current.write(renderSelfTest(outcomes, format: output.format))
        if outcomes.contains(where: { !$0.passed }) { throw ExitCode(1) }
    }
}
