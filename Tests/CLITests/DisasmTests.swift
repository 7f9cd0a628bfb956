// SPDX-License-Identifier: GPL-2.0-only
//
// `kdbt disasm`: offline on a real .ko and on crafted ELF files, live against an
// in-process Engine that serves made-up kernel text, and its exit codes. Nested in
// CLITests so that it shares that suite's serialization (CLIContext is global).

import Engine
import KdbtClient
import Protocol
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import kdbt_cli

/// A device served by a real Engine whose in-process world holds some kernel text;
/// it maps the READ_TEXT destination buffer as user memory too.
struct TextDevice: DeviceConnection {
    let world = InProcessWorld()
    let engine: Engine<InProcessHost>
    init(text: [UInt8], at address: UInt64) {
        engine = Engine.create(host: InProcessHost(world: world))!
        world.addKernelText(text, at: address)
    }
    func perform(_ number: UInt32, _ buffer: UnsafeMutableRawBufferPointer) -> Int32 {
        world.map(buffer)
        if number == KdbtCommand.readText.number, buffer.count >= ReadTextRequest.sizeV1 {
            let request = ReadTextRequest(decoding: LayoutReader(UnsafeRawBufferPointer(buffer)))
            if let destination = UnsafeMutableRawPointer(bitPattern: UInt(request.buffer)) {
                world.map(UnsafeMutableRawBufferPointer(start: destination, count: Int(request.length)))
            }
        }
        defer { world.unmapAll() }
        return engine.ioctl(number: number, argument: UInt64(UInt(bitPattern: buffer.baseAddress)))
    }
    func close() { engine.destroy() }
}

/// Runs the CLI with a device and a kallsyms of the test's choosing.
func runDisasm(
    _ arguments: [String],
    kallsyms: String = "",
    open: @escaping (String) throws(DeviceError) -> any DeviceConnection = { _ throws(DeviceError) in
        CLITests.DisasmTests.liveDevice()
    }
) -> RunResult {
    let saved = CLIContext.current
    defer { CLIContext.current = saved }
    let capture = Capture()
    CLIContext.current = CLIContext(
        write: { capture.out += $0 }, writeError: { capture.err += $0 }, openDevice: open,
        loadKallsyms: { () throws(ELFError) in try Kallsyms(text: kallsyms) })
    do {
        var command = try Kdbt.parseAsRoot(arguments)
        try command.run()
        return RunResult(exitCode: 0, stdout: capture.out, stderr: capture.err)
    } catch {
        let code = Kdbt.exitCode(for: error).rawValue
        if code == 0 {
            capture.out += Kdbt.fullMessage(for: error)
        } else if capture.err.isEmpty {
            capture.err = Kdbt.fullMessage(for: error)
        }
        return RunResult(exitCode: code, stdout: capture.out, stderr: capture.err)
    }
}

/// A relocatable x86-64 ELF file holding only `.text` (and the section names).
func relocatableELF(text: [UInt8]) -> [UInt8] {
    var file = [UInt8](repeating: 0, count: 64)
    func put(_ value: UInt64, at offset: Int, size: Int) {
        for i in 0..<size { file[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }
    file.replaceSubrange(0..<8, with: [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1, 0])
    put(1, at: 16, size: 2)   // ET_REL
    put(62, at: 18, size: 2)  // EM_X86_64
    put(1, at: 20, size: 4)
    put(64, at: 52, size: 2)
    let textOffset = file.count
    file += text
    let names: [UInt8] = Array("\0.text\0.shstrtab\0".utf8)
    let namesOffset = file.count
    file += names
    while file.count % 8 != 0 { file.append(0) }
    let sectionHeaders = file.count
    file += [UInt8](repeating: 0, count: 3 * 64)
    put(UInt64(sectionHeaders), at: 40, size: 8)
    put(64, at: 58, size: 2)
    put(3, at: 60, size: 2)
    put(2, at: 62, size: 2)
    let textHeader = sectionHeaders + 64
    put(1, at: textHeader, size: 4)                    // ".text"
    put(1, at: textHeader + 4, size: 4)                // SHT_PROGBITS
    put(6, at: textHeader + 8, size: 8)                // SHF_ALLOC | SHF_EXECINSTR
    put(UInt64(textOffset), at: textHeader + 24, size: 8)
    put(UInt64(text.count), at: textHeader + 32, size: 8)
    let namesHeader = sectionHeaders + 128
    put(7, at: namesHeader, size: 4)                   // ".shstrtab"
    put(3, at: namesHeader + 4, size: 4)               // SHT_STRTAB
    put(UInt64(namesOffset), at: namesHeader + 24, size: 8)
    put(UInt64(names.count), at: namesHeader + 32, size: 8)
    return file
}

/// Writes `bytes` to a fresh temporary file; returns its path.
func temporaryFile(_ bytes: [UInt8]) -> String {
    var template = Array("/tmp/kdbt-disasm-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    precondition(fd >= 0, "mkstemp failed")
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    Glibc.close(fd)
    return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

/// fat.ko of the newest installed Debian kernel.
func fatModule() -> String? {
    guard let dir = opendir("/lib/modules") else { return nil }
    defer { closedir(dir) }
    var versions: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if !name.hasPrefix(".") { versions.append(name) }
    }
    return versions.sorted(by: >).map { "/lib/modules/\($0)/kernel/fs/fat/fat.ko" }.first { access($0, R_OK) == 0 }
}

extension CLITests {
    @Suite("disasm")
    struct DisasmTests {
        static let base: UInt64 = 0xffff_ffff_8100_0000

        /// demo_function (0x20 bytes, calls demo_next) then demo_next (8 bytes):
        /// the only kernel text the live tests' module knows.
        static let text: [UInt8] = {
            var code: [UInt8] = [
                0xF3, 0x0F, 0x1E, 0xFA,        // endbr64
                0x55,                          // push rbp
                0x48, 0x89, 0xE5,              // mov rbp, rsp
                0xE8, 0x13, 0x00, 0x00, 0x00,  // call demo_next
                0x5D,                          // pop rbp
                0xC3,                          // ret
            ]
            code += [UInt8](repeating: 0xCC, count: 0x20 - code.count)
            code += [0x31, 0xC0, 0xC3, 0x90, 0x90, 0x90, 0x90, 0x90]  // xor eax, eax; ret; nops
            return code
        }()

        static let kallsyms = """
            ffffffff81000000 T demo_function
            ffffffff81000020 t demo_next
            """

        static func liveDevice() -> TextDevice { TextDevice(text: text, at: base) }

        // MARK: offline

        @Test("--file on fat.ko prints its functions with labels, offsets and code")
        func fatKo() throws {
            let path = try #require(fatModule(), "fat.ko not found: install linux-image-amd64")
            let all = runDisasm(["disasm", "--file", path])
            #expect(all.exitCode == 0)
            #expect(all.stdout.contains("Disassembly of section .text:"))
            #expect(all.stdout.contains("Disassembly of section .init.text:"))
            #expect(all.stdout.contains(" <fat_get_cluster>:\n"))
            #expect(!all.stdout.contains("(bad)"))

            let one = runDisasm(["disasm", "--file", path, "--symbol", "fat_get_cluster"])
            #expect(one.exitCode == 0)
            let lines = one.stdout.split(separator: "\n")
            #expect(lines.first?.hasSuffix(" <fat_get_cluster>:") == true)
            #expect(lines.contains { $0.hasSuffix("push r15") })
            #expect(lines.contains { $0.contains("mov rax, qword ptr gs:[0x0000000000000028]") })
            // The listing ends where the symbol does (st_size), on an instruction boundary.
            let elf = try ELFFile(path: path)
            let symbol = try #require(elf.symbols.first { $0.name == "fat_get_cluster" })
            let last = try #require(lines.last?.split(separator: ":", maxSplits: 1))
            let lastEnd = UInt64(last[0], radix: 16)! + UInt64(last[1].split(separator: "   ")[0].split(separator: " ").count)
            #expect(lastEnd == symbol.value + symbol.size)
            #expect(!one.stdout.contains("fat_cache_"))

            // Columns: "offset: bytes   text", offsets section-relative in a .ko.
            let first = String(lines[1])
            #expect(first.contains(try Regex(#"^[0-9a-f]{4,}: ([0-9a-f]{2} )+ +\S"#)), "\(first)")
        }

        @Test("--format json: one object a line with every field")
        func json() throws {
            let path = try #require(fatModule())
            let r = runDisasm(["disasm", "--file", path, "--section", ".text", "--count", "3", "--format", "json"])
            #expect(r.exitCode == 0)
            let lines = r.stdout.split(separator: "\n")
            #expect(lines.count == 3)
            for line in lines {
                #expect(line.hasPrefix("{\"address\":\"0x"))
                for key in ["section", "symbol", "bytes", "length", "text", "valid", "control_flow", "memory"] {
                    #expect(line.contains("\"\(key)\":"), "\(key) missing in \(line)")
                }
            }
            // fat.ko's .text starts with a call (to __fentry__, unrelocated).
            #expect(lines[0].contains(#""bytes":"e800000000","length":5,"text":"call 0x0000000000000005","valid":true,"control_flow":"call","target":"0x5","memory":[{"access":"write","size":8,"stack":true}]"#))
        }

        @Test("undecodable bytes are (bad), one byte each, and decoding resumes")
        func bad() {
            // nop; 06 (push es: invalid in 64-bit mode); ret; 0f cut off by the section end
            let path = temporaryFile(relocatableELF(text: [0x90, 0x06, 0xC3, 0x0F]))
            defer { unlink(path) }
            let r = runDisasm(["disasm", "--file", path])
            #expect(r.exitCode == 0)
            #expect(r.stdout == """
                Disassembly of section .text:
                0000: 90   nop
                0001: 06   (bad)
                0002: c3   ret
                0003: 0f   (bad)

                """)
            let j = runDisasm(["disasm", "--file", path, "--format", "json"])
            #expect(j.stdout.contains(#"{"address":"0x1","section":".text","bytes":"06","length":1,"text":"(bad)","valid":false,"control_flow":"invalid","memory":[]}"#))
            #expect(j.stdout.split(separator: "\n").count == 4)
        }

        @Test("--count stops the listing")
        func count() throws {
            let path = try #require(fatModule())
            let r = runDisasm(["disasm", "--file", path, "--count", "5"])
            #expect(r.stdout.split(separator: "\n").filter { $0.contains(": ") }.count == 5)
        }

        // MARK: live

        @Test("SYMBOL: the whole function, labelled, with branch targets named")
        func liveSymbol() {
            let r = runDisasm(["disasm", "demo_function"], kallsyms: Self.kallsyms)
            #expect(r.exitCode == 0, "\(r.stderr)")
            let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines[0] == "ffffffff81000000 <demo_function>:")
            #expect(lines[1] == "ffffffff81000000: f3 0f 1e fa      endbr64")
            #expect(lines[4] == "ffffffff81000008: e8 13 00 00 00   call 0xffffffff81000020 <demo_next+0x0>")
            #expect(lines.filter { $0.hasSuffix("int3") }.count == 17)
            #expect(!r.stdout.contains("xor eax"))
        }

        @Test("SYMBOL+OFFSET and ADDRESS with --count; text ending early is read to its end")
        func liveAddress() {
            let a = runDisasm(["disasm", "0xffffffff81000004", "--count", "2"], kallsyms: Self.kallsyms)
            #expect(a.exitCode == 0, "\(a.stderr)")
            #expect(a.stdout == """
                ffffffff81000004: 55         push rbp
                ffffffff81000005: 48 89 e5   mov rbp, rsp

                """)
            // demo_next is the last symbol: no extent, 16 instructions wanted, 6 bytes of text.
            let b = runDisasm(["disasm", "demo_next+0x2"], kallsyms: Self.kallsyms)
            #expect(b.exitCode == 0, "\(b.stderr)")
            #expect(b.stdout.hasPrefix("ffffffff81000022: c3   ret\n"))
            #expect(b.stdout.split(separator: "\n").count == 6)
        }

        @Test("live --format json names the symbol and the call's target")
        func liveJSON() {
            let r = runDisasm(["disasm", "demo_function", "--count", "4", "--format", "json"], kallsyms: Self.kallsyms)
            #expect(r.exitCode == 0)
            #expect(r.stdout.contains(#"{"address":"0xffffffff81000008","symbol":"demo_function+0x8","bytes":"e813000000","length":5,"text":"call 0xffffffff81000020","valid":true,"control_flow":"call","target":"0xffffffff81000020","memory":[{"access":"write","size":8,"stack":true}]}"#))
        }

        @Test("environment problems exit 2 with a message", arguments: [
            (["disasm", "0x1000"], "0x1000 is not kernel text"),
            (["disasm", "nosuch"], "no symbol nosuch in /proc/kallsyms"),
            (["disasm", "--file", "/nonexistent.ko"], "cannot open /nonexistent.ko"),
            (["disasm", "--file", "/proc/self/status"], "not an ELF file"),
        ])
        func environment(arguments: [String], message: String) {
            let r = runDisasm(arguments, kallsyms: Self.kallsyms)
            #expect(r.exitCode == 2)
            #expect(r.stderr.contains(message), "\(r.stderr)")
            #expect(r.stdout.isEmpty)
        }

        @Test("a missing section or symbol in the file exits 2 and says what exists")
        func fileNames() throws {
            let path = try #require(fatModule())
            let s = runDisasm(["disasm", "--file", path, "--section", ".nope"])
            #expect(s.exitCode == 2)
            #expect(s.stderr.contains("no section .nope in \(path); its code sections are: .text, .init.text"))
            let f = runDisasm(["disasm", "--file", path, "--symbol", "nope"])
            #expect(f.exitCode == 2)
            #expect(f.stderr.contains("no symbol nope in \(path)"))
        }

        @Test("no module, no kallsyms addresses: exit 2")
        func noModule() {
            let r = runDisasm(["disasm", "demo_function"], kallsyms: Self.kallsyms,
                              open: { path throws(DeviceError) in throw .notLoaded(path: path) })
            #expect(r.exitCode == 2)
            #expect(r.stderr.contains("/dev/kdbt does not exist"))
            let zero = runDisasm(["disasm", "demo_function"], kallsyms: "0000000000000000 T demo_function\n")
            #expect(zero.exitCode == 2)
            #expect(zero.stderr.contains("run as root"))
        }

        @Test("usage errors exit 64", arguments: [
            ["disasm"], ["disasm", "demo_function", "--file", "x.ko"], ["disasm", "--section", ".text", "demo_function"],
            ["disasm", "--file", "x.ko", "--section", ".text", "--symbol", "f"], ["disasm", "demo_function", "--count", "0"],
            ["disasm", "demo_function", "--count", "many"], ["disasm", "demo_function", "--format", "xml"],
        ])
        func usage(arguments: [String]) {
            #expect(runDisasm(arguments, kallsyms: Self.kallsyms).exitCode == 64)
        }
    }
}
