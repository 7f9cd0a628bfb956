// SPDX-License-Identifier: GPL-2.0-only

import ArgumentParser
import KdbtClient

struct DisasmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disasm",
        abstract: "Disassemble live kernel text, or the code of an ELF file.",
        discussion: """
            With SYMBOL (from /proc/kallsyms, optionally SYMBOL+0xOFFSET) the whole function \
            is shown; with a 0x-prefixed ADDRESS, 16 instructions. The text is read through \
            the module as the CPU runs it now. With --file, a vmlinux or .ko is decoded \
            offline (addresses are section offsets in a .ko). Bytes that start no valid \
            instruction are shown as (bad), one at a time.
            """
    )

    @OptionGroup(title: "Global Options") var global: GlobalOptions
    @OptionGroup var output: FormatOption

    @Argument(help: ArgumentHelp("A kernel symbol, SYMBOL+0xOFFSET, or a 0x-prefixed address.",
                                 valueName: "symbol|address"))
    var target: String?

    @Option(name: .long, help: "Show at most this many instructions.")
    var count: Int?

    @Option(name: .long, help: ArgumentHelp("Decode this ELF file (vmlinux, .ko) instead of live text.",
                                            valueName: "elf"))
    var file: String?

    @Option(name: .long, help: ArgumentHelp("With --file: only this section.", valueName: "name"))
    var section: String?

    @Option(name: .long, help: ArgumentHelp("With --file: only this function.", valueName: "name"))
    var symbol: String?

    @Option(name: .long, help: ArgumentHelp(
        "With --file: start at this virtual address (a stripped vmlinux has no symbols).", valueName: "address"))
    var address: String?

    @Option(name: .long, help: ArgumentHelp("With --address: decode this many bytes.", valueName: "bytes"))
    var length: Int?

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1.") }
        if file != nil {
            if target != nil { throw ValidationError("Give either a symbol or address, or --file, not both.") }
            if [section != nil, symbol != nil, address != nil].filter({ $0 }).count > 1 {
                throw ValidationError("Give one of --section, --symbol and --address.")
            }
            if let address, Disassembler.parseAddress(address) == nil { throw ValidationError("--address takes a 0x-prefixed address.") }
            if let length, length < 1 { throw ValidationError("--length must be at least 1.") }
        } else {
            if target == nil { throw ValidationError("Missing a symbol or address (or --file ELF).") }
            if section != nil || symbol != nil || address != nil { throw ValidationError("--section, --symbol and --address need --file.") }
        }
    }

    func run() throws {
        let context = CLIContext.current
        let listing: DisassemblyListing
        do {
            if let file {
                let elf: ELFFile
                do { elf = try ELFFile(path: file) } catch { throw DisassemblyError.elf(error) }
                // Streamed: a vmlinux has millions of instructions.
                let format = output.format
                let start = address.flatMap(Disassembler.parseAddress).map { ($0, UInt64(length ?? 256)) }
                listing = try Disassembler.file(elf, path: file, section: section, symbol: symbol, range: start,
                                                count: count) {
                    context.write(renderDisassembly($0, format: format))
                }
            } else {
                let target = try Disassembler.resolve(self.target ?? "", kallsyms: context.loadKallsyms)
                let symbols = try? context.loadKallsyms()
                listing = try global.withClient { client, _ throws(DeviceError) in
                    Result { () throws(DisassemblyError) in
                        try Disassembler.live(client, target: target, count: count, kallsyms: symbols)
                    }
                }.get()
            }
        } catch let error as DisassemblyError {
            context.writeError("kdbt: \(error.description)\n")
            throw ExitStatus.environment
        }
        context.write(renderDisassembly(listing, format: output.format))
    }
}

