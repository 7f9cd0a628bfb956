// SPDX-License-Identifier: GPL-2.0-only
//
// The `kdbt` command: lists subcommands, maps failures to stable exit codes
// (0 ok, 1 findings, 2 environment: no module or no permission, 64 usage).

import ArgumentParser
import KdbtClient

@main
struct Kdbt: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kdbt",
        abstract: "Dynamic binary translation of the running Linux kernel.",
        discussion: """
            kdbt talks to the kdbt kernel module through /dev/kdbt. Exit status: 0 success, \
            1 findings, 2 environment problem (module not loaded, no permission, protocol \
            mismatch), 64 usage error.
            """,
        version: cliVersion,
        subcommands: [VersionCommand.self, StatusCommand.self, AttachCommand.self, DetachCommand.self, ToolCommand.self, ReportCommand.self, SelfTestCommand.self, DisasmCommand.self, UserCommand.self]
    )

    // Declared here too so that `kdbt --device P status` parses; subcommands that
    // declare the same group see the value.
    @OptionGroup(title: "Global Options") var global: GlobalOptions
}

/// Exit codes the CLI promises to scripts.
enum ExitStatus {
    static let findings = ExitCode(1)
    static let environment = ExitCode(2)
    static let usage = ExitCode(64)
}
