// SPDX-License-Identifier: GPL-2.0-only
//
// DwarfSymbolizer on real modules: the fixture (Fixtures/, built by Kbuild at test
// time) for exact lines and inline chains, checked also against binutils' addr2line
// -i at every offset; bad inputs (stripped, garbage, unknown names) for empty
// results; kdbt's own kdbt.ko when it has been built.

import KdbtClient
import Symbolizer
import Testing

#if canImport(Glibc)
import Glibc
#endif

private let headersMissing = "no kernel headers in /lib/modules/*/build (scripts/kver): run scripts/ensure-deps"

/// A symbolizer reading modules from `directory` only.
private func symbolizer(_ directory: String, vmlinux: String? = nil) -> DwarfSymbolizer {
    DwarfSymbolizer(vmlinux: vmlinux, moduleDirectories: [directory])
}

private func at(_ function: String, _ offset: UInt64, module: String? = "kdbt_symfixture") -> SymbolLocation {
    SymbolLocation(function: function, offset: offset, size: 0x100, module: module)
}

/// `function`'s st_size in the fixture module.
private func size(of function: String, in fixture: Fixture) throws -> UInt64 {
    let elf = try ELFFile(path: fixture.module)
    let symbol = try #require(elf.symbols.first { $0.name == function && $0.isFunction }, "\(function) not in the fixture")
    return symbol.size
}

/// Frames at every offset of `function`, in order.
private func framesAtEveryOffset(_ function: String, _ fixture: Fixture, returnAddress: Bool = false) throws
    -> [(offset: UInt64, frames: [SourceFrame])]
{
    let s = symbolizer(fixture.directory)
    return try (0..<size(of: function, in: fixture)).map { offset in
        (offset, s.sourceFrames(for: at(function, offset), isReturnAddress: returnAddress))
    }
}

@Suite("DwarfSymbolizer", .enabled(if: kernelBuildDirectory != nil, Comment(rawValue: headersMissing)))
struct SymbolizerTests {
    @Test("a non-inline function's first byte is its opening line")
    func functionEntry() throws {
        let fixture = try builtFixture()
        let frames = symbolizer(fixture.directory).sourceFrames(for: at("fx_outer", 0), isReturnAddress: false)
        let frame = try #require(frames.first)
        #expect(frames.count == 1)
        #expect(frame.function == "fx_outer")
        #expect(frame.file == fixture.source)
        #expect(frame.line == fixture.line("FX_OUTER_ENTRY"))
        #expect(frame.inlined == false)
    }

    @Test("an inlined body gives the callee first (inlined) and the caller at its call line")
    func inlinedOnce() throws {
        let fixture = try builtFixture()
        let all = try framesAtEveryOffset("fx_outer", fixture)
        let expected = [
            SourceFrame(function: "fx_inner", file: fixture.source, line: fixture.line("FX_INNER_LINE"), inlined: true),
            SourceFrame(function: "fx_outer", file: fixture.source, line: fixture.line("FX_OUTER_CALL"), inlined: false),
        ]
        let inlined = all.filter { $0.frames.count == 2 }
        #expect(inlined.contains { withoutColumns($0.frames) == expected }, "no offset in fx_outer reads as \(expected): \(all)")
        for (offset, frames) in all {
            #expect(!frames.isEmpty, "fx_outer+\(offset) has no frames")
            #expect(frames.count <= 2, "fx_outer+\(offset): \(frames)")
            #expect(frames.last?.function == "fx_outer" && frames.last?.inlined == false, "fx_outer+\(offset): \(frames)")
            if frames.count == 2 {
                #expect(frames[0].function == "fx_inner" && frames[0].inlined, "fx_outer+\(offset): \(frames)")
                #expect(frames[1].line == fixture.line("FX_OUTER_CALL"), "fx_outer+\(offset): \(frames)")
            }
        }
    }

    @Test("two levels of inlining: leaf, middle, then the containing function")
    func inlinedTwice() throws {
        let fixture = try builtFixture()
        let all = try framesAtEveryOffset("fx_deep", fixture)
        let expected = [
            SourceFrame(function: "fx_leaf", file: fixture.source, line: fixture.line("FX_LEAF_LINE"), inlined: true),
            SourceFrame(function: "fx_middle", file: fixture.source, line: fixture.line("FX_MIDDLE_CALL"), inlined: true),
            SourceFrame(function: "fx_deep", file: fixture.source, line: fixture.line("FX_DEEP_CALL"), inlined: false),
        ]
        #expect(all.contains { withoutColumns($0.frames) == expected }, "no offset in fx_deep reads as \(expected): \(all)")
    }

    @Test("a return address names the call: offset - 1")
    func returnAddress() throws {
        let fixture = try builtFixture()
        let plain = try framesAtEveryOffset("fx_deep", fixture)
        let returns = try framesAtEveryOffset("fx_deep", fixture, returnAddress: true)
        for offset in 1..<plain.count {
            #expect(returns[offset].frames == plain[offset - 1].frames, "fx_deep+\(offset) as a return address")
        }
        // Offset 0 cannot be a return address into this function; it stays put.
        #expect(returns[0].frames == plain[0].frames)
    }

    @Test("a function outside .text (.init.text) is found in libdwfl's section layout")
    func initText() throws {
        let fixture = try builtFixture()
        let all = try framesAtEveryOffset("fx_init", fixture)
        for (offset, frames) in all {
            #expect(frames.last?.function == "fx_init", "fx_init+\(offset): \(frames)")
            #expect(frames.allSatisfy { $0.file == fixture.source }, "fx_init+\(offset): \(frames)")
        }
        #expect(all.contains { $0.frames.last?.line == fixture.line("FX_INIT_LINE") })
    }

    @Test("every offset agrees with binutils addr2line -i", arguments: ["fx_outer", "fx_deep"])
    func matchesAddr2line(function: String) throws {
        let fixture = try builtFixture()
        let elf = try ELFFile(path: fixture.module)
        let symbol = try #require(elf.symbols.first { $0.name == function && $0.isFunction })
        let text = try #require(elf.section(named: ".text"))
        try #require(symbol.sectionIndex == text.index, "\(function) is not in .text")
        let ours = try framesAtEveryOffset(function, fixture)
        let addresses = ours.map { "0x" + String(symbol.value + $0.offset, radix: 16) }.joined(separator: " ")
        let output = try runShell("addr2line -a -f -i -j .text -e \(quoted(fixture.module)) \(addresses)")
        let theirs = parseAddr2line(output)
        try #require(theirs.count == ours.count, "addr2line printed \(theirs.count) addresses for \(ours.count):\n\(output)")
        var compared = 0
        for (mine, reference) in zip(ours, theirs) where !reference.contains(where: { $0.line == nil }) {
            let simplified = mine.frames.map { Addr2lineFrame(function: $0.function, file: $0.file, line: $0.line) }
            #expect(simplified == reference, "\(function)+\(mine.offset)")
            compared += 1
        }
        #expect(compared > 0)
    }

    @Test("the module's file name may use - where kallsyms uses _; the search recurses")
    func dashedFileName() throws {
        let fixture = try builtFixture()
        let directory = fixture.directory + "/dashed"
        _ = try runShell("""
            mkdir -p \(quoted(directory))/kernel/drivers && \
            cp \(quoted(fixture.module)) \(quoted(directory))/kernel/drivers/kdbt-symfixture.ko
            """)
        let s = symbolizer(directory)
        #expect(s.modulePath(for: "kdbt_symfixture") == directory + "/kernel/drivers/kdbt-symfixture.ko")
        #expect(s.sourceFrames(for: at("fx_outer", 0), isReturnAddress: false).first?.function == "fx_outer")
    }

    @Test("an xz-compressed module reads like the plain one")
    func xzModule() throws {
        let fixture = try builtFixture()
        let plain = try framesAtEveryOffset("fx_deep", fixture)
        let s = symbolizer(fixture.xzDirectory)
        #expect(s.unavailableReason(module: "kdbt_symfixture") == nil)
        for (offset, frames) in plain {
            #expect(s.sourceFrames(for: at("fx_deep", offset), isReturnAddress: false) == frames)
        }
    }

    @Test("a zstd-compressed module reads like the plain one, or says why not",
          .enabled(if: access("/usr/bin/zstd", X_OK) == 0, "zstd not installed"))
    func zstdModule() throws {
        let fixture = try builtFixture()
        let directory = fixture.directory + "/zst"
        let compressed = quoted(directory + "/kdbt_symfixture.ko.zst")
        _ = try runShell("mkdir -p \(quoted(directory)) && zstd -q -f \(quoted(fixture.module)) -o \(compressed)")
        let s = symbolizer(directory)
        let frames = s.sourceFrames(for: at("fx_outer", 0), isReturnAddress: false)
        if let reason = s.unavailableReason(module: "kdbt_symfixture") {
            // Debian 12's libdw (0.188) is built without zstd.
            #expect(reason.contains("zstd"), "\(reason)")
            #expect(frames.isEmpty)
        } else {
            #expect(frames.first?.function == "fx_outer")
        }
    }

    @Test("an ET_EXEC as vmlinux serves locations without a module, inline chains included")
    func vmlinuxPath() throws {
        let fixture = try builtFixture()
        let s = DwarfSymbolizer(vmlinux: fixture.executable, moduleDirectories: [])
        let elf = try ELFFile(path: fixture.executable)
        #expect(elf.fileType == 2)  // ET_EXEC: symbol values are addresses
        let symbol = try #require(elf.symbols.first { $0.name == "ex_outer" && $0.isFunction })
        let all = (0..<symbol.size).map { offset in
            withoutColumns(s.sourceFrames(for: at("ex_outer", offset, module: nil), isReturnAddress: false))
        }
        let expected = [
            SourceFrame(function: "ex_inner", file: fixture.executableSource, line: fixture.line("EX_INNER_LINE"),
                        inlined: true),
            SourceFrame(function: "ex_outer", file: fixture.executableSource, line: fixture.line("EX_OUTER_CALL"),
                        inlined: false),
        ]
        #expect(all.contains(expected), "\(all)")
        #expect(all.allSatisfy { $0.last?.function == "ex_outer" }, "\(all)")
        // No module directory: a module location has nothing to read.
        #expect(s.sourceFrames(for: at("fx_outer", 0), isReturnAddress: false).isEmpty)
    }

    @Test("no frames without debug information or without the function")
    func nothingToSay() throws {
        let fixture = try builtFixture()
        let s = symbolizer(fixture.directory)
        #expect(s.sourceFrames(for: at("no_such_function", 0), isReturnAddress: false).isEmpty)
        #expect(s.sourceFrames(for: at("", 0), isReturnAddress: false).isEmpty)
        // A data symbol is not a function.
        #expect(s.sourceFrames(for: at("fx_sink", 0), isReturnAddress: false).isEmpty)
        #expect(s.sourceFrames(for: at("fx_outer", 0, module: "no_such_module"), isReturnAddress: false).isEmpty)
        #expect(s.unavailableReason(module: "no_such_module")?.contains("no no_such_module.ko") == true)
        #expect(s.sourceFrames(for: at("fx_outer", 0, module: nil), isReturnAddress: false).isEmpty)
        #expect(s.unavailableReason(module: nil) != nil)
        // Far past the function (and the address space): no crash, no frames.
        #expect(s.sourceFrames(for: at("fx_outer", 1 << 40), isReturnAddress: true).isEmpty)
        #expect(s.sourceFrames(for: at("fx_outer", .max), isReturnAddress: true).isEmpty)
        // Past kallsyms' size bound is not this function, whatever DWARF says is there.
        let bounded = SymbolLocation(function: "fx_outer", offset: 8, size: 8, module: "kdbt_symfixture")
        #expect(s.sourceFrames(for: bounded, isReturnAddress: false).isEmpty)
        #expect(!s.sourceFrames(for: bounded, isReturnAddress: true).isEmpty)

        let stripped = symbolizer(fixture.strippedDirectory)
        let outerSize = try size(of: "fx_outer", in: fixture)
        for offset in 0..<outerSize {
            #expect(stripped.sourceFrames(for: at("fx_outer", offset), isReturnAddress: false).isEmpty)
        }
        #expect(stripped.unavailableReason(module: "kdbt_symfixture")?.contains("no debug information") == true)

        let garbage = symbolizer(fixture.garbageDirectory)
        #expect(garbage.sourceFrames(for: at("fx_outer", 0), isReturnAddress: false).isEmpty)
        #expect(garbage.unavailableReason(module: "kdbt_symfixture") != nil)

        let missing = DwarfSymbolizer(vmlinux: "/nonexistent/vmlinux", moduleDirectories: ["/nonexistent"])
        #expect(missing.sourceFrames(for: at("start_kernel", 0, module: nil), isReturnAddress: false).isEmpty)
        #expect(missing.sourceFrames(for: at("fx_outer", 0), isReturnAddress: false).isEmpty)
        #expect(missing.unavailableReason(module: nil)?.contains("/nonexistent/vmlinux") == true)
    }
}

/// kdbt's own module: $KDBT_KO, else kmod/kdbt.ko of this tree (`make kmod`).
private let kdbtModule: String? = {
    let candidate = getenv("KDBT_KO").map { String(cString: $0) } ?? packageRoot + "/kmod/kdbt.ko"
    return access(candidate, R_OK) == 0 ? candidate : nil
}()

@Suite("DwarfSymbolizer on kdbt.ko",
       .enabled(if: kdbtModule != nil, "kmod/kdbt.ko not built (make kmod) and KDBT_KO not set"))
struct KdbtModuleTests {
    @Test("a C shim function resolves to its line in kmod/shim.c")
    func shimFunction() throws {
        let module = try #require(kdbtModule)
        // A copy: the test reads it from a directory of its own, never the build tree.
        var template = Array("/tmp/kdbt-symko.XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        defer { _ = try? runShell("rm -rf \(quoted(directory))") }
        _ = try runShell("cp \(quoted(module)) \(quoted(directory))/kdbt.ko")

        let s = symbolizer(directory)
        let frames = s.sourceFrames(for: SymbolLocation(function: "kdbt_host_arena_alloc", offset: 4, size: 0x60,
                                                        module: "kdbt"), isReturnAddress: false)
        let frame = try #require(frames.last, "no frames: \(s.unavailableReason(module: "kdbt") ?? "debug info opened")")
        #expect(frame.function == "kdbt_host_arena_alloc")
        #expect(frame.inlined == false)
        let file = try #require(frame.file)
        #expect(file.hasSuffix("/kmod/shim.c"), "\(file)")
        // The line lies in the function's body, as far as its source is readable.
        let line = try #require(frame.line)
        if let source = try? readWholeFile(file) {
            let lines = String(decoding: source, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            let definition = try #require(lines.firstIndex { $0.contains("kdbt_host_arena_alloc(") }) + 1
            #expect((definition...definition + 20).contains(line), "line \(line), definition at \(definition)")
        }
        // The Engine is Swift compiled without -g: its code has no lines, and none
        // borrowed from the C objects around it.
        let engine = SymbolLocation(function: "kdbt_engine_create", offset: 4, size: 0x40, module: "kdbt")
        #expect(s.sourceFrames(for: engine, isReturnAddress: false).isEmpty)
    }
}

// MARK: - addr2line

private struct Addr2lineFrame: Equatable, CustomStringConvertible {
    var function: String
    var file: String?
    var line: Int?
    var description: String { "\(function) \(file ?? "??"):\(line.map(String.init) ?? "?")" }
}

/// `addr2line -a -f -i` output: per address, a "0x..." line, then function and
/// file:line pairs, innermost first.
private func parseAddr2line(_ output: String) -> [[Addr2lineFrame]] {
    var result: [[Addr2lineFrame]] = []
    var pendingFunction: String?
    for raw in output.split(separator: "\n") {
        let text = String(raw)
        if text.hasPrefix("0x") {
            result.append([])
        } else if let function = pendingFunction {
            pendingFunction = nil
            // "file:line (discriminator n)"
            let location = text.split(separator: " ").first.map(String.init) ?? text
            let colon = location.lastIndex(of: ":") ?? location.endIndex
            let file = String(location[..<colon])
            let line = colon < location.endIndex ? Int(location[location.index(after: colon)...]) : nil
            result[result.count - 1].append(Addr2lineFrame(
                function: function, file: file == "??" ? nil : file, line: line == 0 ? nil : line))
        } else if !result.isEmpty {
            pendingFunction = text
        }
    }
    return result
}

private func withoutColumns(_ frames: [SourceFrame]) -> [SourceFrame] {
    frames.map { var f = $0; f.column = nil; return f }
}
