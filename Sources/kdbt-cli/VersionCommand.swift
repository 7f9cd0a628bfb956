// SPDX-License-Identifier: GPL-2.0-only

import ArgumentParser
import KdbtClient

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Show the CLI's and the loaded module's versions.",
        discussion: "Fails with exit status 2 when the module is missing or speaks another protocol."
    )

    @OptionGroup(title: "Global Options") var global: GlobalOptions
    @OptionGroup var output: FormatOption

    func run() throws {
        let module = try global.withClient { _, version in version.reply }
        CLIContext.current.write(renderVersion(cliVersion: cliVersion, module: module, format: output.format))
    }
}
