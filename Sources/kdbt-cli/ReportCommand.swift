// SPDX-License-Identifier: GPL-2.0-only

import ArgumentParser
import KdbtClient
import Protocol

extension ReportFormat: ExpressibleByArgument {}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Show what the tools found: inscount's totals and top functions, checking tools' findings.",
        discussion: """
            While attached with --tool inscount: the exact instruction count of each CPU, \
            and the kernel functions that executed the most instructions, from per-block \
            counts summed by the function each block starts in (symbols from \
            /proc/kallsyms). Per-block counts are updated without atomics, so concurrent \
            CPUs can lose a few: they rank, the per-CPU totals are exact.

            Findings of the checking tools (heapcheck, stackguard) are printed in \
            KASAN's report layout (text; stackguard's with each frame's stack bytes \
            and the largest stack users), as one JSON object per finding per line \
            (json), or as a SARIF 2.1.0 log (sarif). Frames are kallsyms' function+offset; with \
            --symbolize, also file and line and inlined calls, from DWARF. Exit \
            status 2 when there is nothing to report; 1 with --fail-on-findings when \
            there is any finding.
            """
    )

    @OptionGroup(title: "Global Options") var global: GlobalOptions

    @Option(name: .long, help: "Output format: text, json (JSON lines) or sarif (findings only).")
    var format: ReportFormat = .text

    @Option(name: .long, help: ArgumentHelp("How many functions to list.", valueName: "n"))
    var top: Int = 20

    @Flag(name: .long, help: "Add source file, line and inlined calls to findings' frames (DWARF).")
    var symbolize = false

    @Option(name: .long, help: ArgumentHelp("With --symbolize: the vmlinux with debug information.", valueName: "file"))
    var vmlinux: String?

    @Option(name: .long, help: ArgumentHelp("With --symbolize: where the modules' .ko files with debug information are.",
                                            valueName: "dir"))
    var modules: String?

    @Flag(name: .long, help: "Exit with status 1 when there is any finding.")
    var failOnFindings = false

    func validate() throws {
        if top < 1 { throw ValidationError("--top must be at least 1") }
        if !symbolize && (vmlinux != nil || modules != nil) {
            throw ValidationError("--vmlinux and --modules need --symbolize")
        }
    }

    /// What the module had to report; nil parts: that tool is not running.
    struct Gathered {
        var inscount: (cpus: [CPUStatsRequest], entries: [(address: UInt64, instructions: UInt64)])?
        var findings: FindingsSnapshot?
        /// Per-CPU counters with stackguard's high-water marks, when it runs.
        var stackMarks: [CPUStatsRequest]?
    }

    func run() throws {
        let context = CLIContext.current
        let gathered = try global.withClient { client, version throws(DeviceError) in
            var gathered = Gathered()
            if try client.status().state == .attached {
                var cpus: [CPUStatsRequest] = []
                for cpu in 0..<version.reply.cpus { cpus.append(try client.cpuStats(cpu: cpu)) }
                if cpus.contains(where: \.hasStackHighWater) { gathered.stackMarks = cpus }
                gathered.inscount = try ReportCommand.unlessMissing { () throws(DeviceError) in
                    (cpus, try client.profile().entries)
                }
            }
            gathered.findings = try ReportCommand.unlessMissing { () throws(DeviceError) in try client.findings() }
            return gathered
        }
        guard gathered.inscount != nil || gathered.findings != nil || gathered.stackMarks != nil else {
            context.writeError("kdbt: nothing to report: attach with `kdbt attach --tool inscount` (or a checking tool) first\n")
            throw ExitStatus.environment
        }

        let symbols: Kallsyms?
        do { symbols = try context.loadKallsyms() } catch {
            symbols = nil
            if gathered.findings.map({ !$0.records.isEmpty }) ?? false {
                context.writeError("kdbt: note: no kernel symbols (\(error.description)): frames are raw addresses\n")
            }
        }

        var out = ""
        if let (cpus, entries) = gathered.inscount, format != .sarif {
            let functions = topFunctions(entries, symbols: symbols, top: top)
            let profiled = entries.reduce(UInt64(0)) { $0 + $1.instructions }
            out += renderReport(cpus: cpus, functions: functions, profiled: profiled,
                                format: format == .json ? .json : .text)
        }
        if let marks = gathered.stackMarks, format != .sarif {
            if format == .text && !out.isEmpty { out += "\n" }
            out += renderStackHighWater(marks, format: format == .json ? .json : .text)
        }
        let findings = gathered.findings ?? FindingsSnapshot(records: [], dropped: 0)
        if gathered.findings != nil || format == .sarif {
            let report = FindingReport(records: findings.records, dropped: findings.dropped,
                                       resolver: FrameResolver(kallsyms: symbols, symbolizer: symbolizer(findings, symbols)))
            if format == .text && !out.isEmpty { out += "\n" }
            out += report.render(format)
            if format == .json && findings.dropped > 0 {
                context.writeError("kdbt: \(findings.dropped) findings dropped: the module's report ring was full\n")
            }
        }
        context.write(out)
        if failOnFindings && (!findings.records.isEmpty || findings.dropped > 0) { throw ExitStatus.findings }
    }

    /// The DWARF symbolizer when --symbolize asks for one and there is something
    /// to symbolize; without one, a note that frames stay function+offset.
    func symbolizer(_ findings: FindingsSnapshot, _ symbols: Kallsyms?) -> (any FrameSymbolizing)? {
        guard symbolize, !findings.records.isEmpty else { return nil }
        switch CLIContext.current.makeSymbolizer(vmlinux, modules) {
        case .available(let symbolizer):
            if let symbols { noteUnsymbolizable(findings, symbolizer, symbols) }
            return symbolizer
        case .unavailable(let reason):
            CLIContext.current.writeError(
                "kdbt: note: --symbolize: \(reason); frames are kallsyms function+offset, without file:line\n")
            return nil
        }
    }

    /// One note per code object (a module, or vmlinux) of the findings' frames that
    /// has no debug information, saying why: those frames stay function+offset.
    func noteUnsymbolizable(_ findings: FindingsSnapshot, _ symbolizer: any FrameSymbolizing, _ symbols: Kallsyms) {
        var seen = Set<String>()
        for record in findings.records {
            var frames = record.accessStack.frames + record.allocated.stack.frames
            if let freed = record.freed { frames += freed.stack.frames }
            for address in frames {
                guard let location = symbols.location(address) else { continue }
                let key = location.module ?? "vmlinux"
                guard seen.insert(key).inserted,
                      let reason = symbolizer.unavailableReason(module: location.module) else { continue }
                let hint = location.module == nil ? " (give a debug vmlinux with --vmlinux)" : " (see --modules)"
                CLIContext.current.writeError(
                    "kdbt: note: --symbolize: \(key): \(reason)\(hint); its frames are kallsyms function+offset\n")
            }
        }
    }

    /// `body`'s result, or nil when the module has no such data: the tool is not
    /// attached (ENOENT) or this module does not keep it (EOPNOTSUPP).
    static func unlessMissing<T>(_ body: () throws(DeviceError) -> T) throws(DeviceError) -> T? {
        do throws(DeviceError) {
            return try body()
        } catch {
            if case .requestFailed(_, let errno) = error, errno == Errno.ENOENT || errno == Errno.EOPNOTSUPP {
                return nil
            }
            throw error
        }
    }
}
