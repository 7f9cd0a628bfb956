// SPDX-License-Identifier: GPL-2.0-only

import ArgumentParser
import KdbtClient

extension UserModeTool: ExpressibleByArgument {}

struct UserCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Run a program translated by the Engine in user mode.",
        discussion: """
            Every thread of PROGRAM runs from the code cache from the dynamic loader's \
            start-up until it exits; fork children and exec'd programs stay translated. \
            Tool reports go to stderr (or --output), so the program's own output is \
            unchanged. The exit status is PROGRAM's; 127 if it is not found, 126 if it \
            cannot be run.
            """
    )

    @Option(name: .customLong("tool"), help: "A tool to run (repeatable): null, inscount.")
    var tools: [UserModeTool] = []

    @Option(help: ArgumentHelp("Append tool reports to this file instead of stderr.", valueName: "file"))
    var output: String?

    @Flag(help: "At exit, report the translation cost: blocks, cache bytes per native byte, dispatches.")
    var stats = false

    @Argument(parsing: .captureForPassthrough, help: "-- PROGRAM [ARGS...]")
    var command: [String] = []

    func validate() throws {
        if command.first == "--" { return }
        if command.isEmpty { throw ValidationError("missing PROGRAM: kdbt user [--tool NAME]... -- PROGRAM [ARGS...]") }
    }

    func run() throws {
        var words = command
        if words.first == "--" { words.removeFirst() }
        guard let program = words.first else {
            throw ValidationError("missing PROGRAM: kdbt user [--tool NAME]... -- PROGRAM [ARGS...]")
        }
        do {
            try UserMode.exec(program: program, arguments: Array(words.dropFirst()), tools: tools, output: output,
                              statistics: stats)
        } catch {
            CLIContext.current.writeError("kdbt: \(error.description)\n")
            throw ExitCode(error.exitCode)
        }
    }
}
