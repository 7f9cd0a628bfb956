// SPDX-License-Identifier: GPL-2.0-only
//
// What commands use from the outside world, swappable by tests: output streams and
// how a device is opened.

import KdbtClient

#if canImport(Glibc)
import Glibc
#endif

struct CLIContext {
    var write: (String) -> Void
    var writeError: (String) -> Void
    var openDevice: (String) throws(DeviceError) -> any DeviceConnection
    /// The running kernel's symbols (`kdbt disasm SYMBOL`).
    var loadKallsyms: () throws(ELFError) -> Kallsyms = { () throws(ELFError) in try Kallsyms() }
    /// Source lines for `kdbt report --symbolize` (vmlinux, modules directory).
    var makeSymbolizer: (String?, String?) -> SymbolizerChoice = makeFrameSymbolizer

    static var live: CLIContext {
        CLIContext(
            write: { text in writeAll(1, text) },
            writeError: { text in writeAll(2, text) },
            openDevice: { path throws(DeviceError) in try KdbtDevice.open(path: path) }
        )
    }

    /// Tests replace this before running a command.
    nonisolated(unsafe) static var current = CLIContext.live
}

/// write(2) until done: no stdio buffering to flush before exit().
func writeAll(_ fd: Int32, _ text: String) {
    var text = text
    text.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n <= 0 { return }
            offset += n
        }
    }
}

struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The kdbt device.", valueName: "path"))
    var device: String = defaultDevicePath
}

import ArgumentParser

extension GlobalOptions {
    /// Runs `body` with a connected, version-checked client. Environment problems
    /// are printed and become exit status 2.
    func withClient<T>(_ body: (KdbtClient<AnyDevice>, VersionReplyBox) throws(DeviceError) -> T) throws -> T {
        let context = CLIContext.current
        do {
            let device = AnyDevice(try context.openDevice(device))
            defer { device.close() }
            let client = KdbtClient(device: device)
            let version = try client.handshake()
            return try body(client, VersionReplyBox(version))
        } catch {
            context.writeError("kdbt: \(error.description)\n")
            throw ExitStatus.environment
        }
    }
}

import Protocol

/// The handshake's reply, handed to commands that print it.
struct VersionReplyBox {
    let reply: VersionReply
    init(_ reply: VersionReply) { self.reply = reply }
}

/// Type-erases a DeviceConnection so the client can be generic over it.
struct AnyDevice: DeviceConnection {
    let base: any DeviceConnection
    init(_ base: any DeviceConnection) { self.base = base }
    func perform(_ number: UInt32, _ buffer: UnsafeMutableRawBufferPointer) -> Int32 {
        base.perform(number, buffer)
    }
    func close() { base.close() }
}

extension OutputFormat: ExpressibleByArgument {}

struct FormatOption: ParsableArguments {
    @Option(name: .long, help: "Output format: text or json.")
    var format: OutputFormat = .text
}
