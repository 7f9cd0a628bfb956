// SPDX-License-Identifier: GPL-2.0-only
//
// The fixture module, built once per test run with Kbuild against the installed
// kernel headers, so `swift test` alone exercises real .ko files with DWARF.

import KdbtClient

#if canImport(Glibc)
import Glibc
#endif

/// The package root: this file is Tests/SymbolizerTests/Fixture.swift.
let packageRoot: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}()

let fixtureSources = packageRoot + "/Tests/SymbolizerTests/Fixtures"

/// The guest kernel's version as the project picks it (scripts/kver), nil when no
/// kernel headers are installed.
let kernelVersion: String? = {
    guard let output = try? runShell("\(quoted(packageRoot))/scripts/kver 2>/dev/null") else { return nil }
    let version = output.split(separator: "\n").first.map(String.init) ?? ""
    return version.isEmpty ? nil : version
}()

/// The Kbuild directory of `kernelVersion`, nil when absent.
let kernelBuildDirectory: String? = kernelVersion.flatMap { version in
    let path = "/lib/modules/\(version)/build"
    return access(path + "/Makefile", R_OK) == 0 ? path : nil
}

struct Fixture: Sendable {
    /// Holds the source (as copied), the Kbuild outputs and the variants below.
    let directory: String
    var source: String { directory + "/kdbt_symfixture.c" }
    var module: String { directory + "/kdbt_symfixture.ko" }
    /// Each variant directory holds one kdbt_symfixture.ko* file.
    var strippedDirectory: String { directory + "/stripped" }
    var xzDirectory: String { directory + "/xz" }
    var garbageDirectory: String { directory + "/garbage" }
    /// The ET_EXEC stand-in for a debug vmlinux, and its source.
    var executable: String { directory + "/vmlinux" }
    var executableSource: String { directory + "/kdbt_symexec.c" }
    let sourceLines: [String]
    let executableSourceLines: [String]

    /// The 1-based line holding `marker`: a FX_* comment in the module's source,
    /// an EX_* comment in the executable's.
    func line(_ marker: String) -> Int? {
        let lines = marker.hasPrefix("EX_") ? executableSourceLines : sourceLines
        return lines.firstIndex { $0.contains("/* \(marker) */") }.map { $0 + 1 }
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
}

/// Built on first use; the error carries the build's output.
let fixture: Result<Fixture, FixtureError> = {
    guard let buildDirectory = kernelBuildDirectory else {
        return .failure(FixtureError(description: "no kernel headers (scripts/kver); run scripts/ensure-deps"))
    }
    var template = Array("/tmp/kdbt-symfixture.XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else {
        return .failure(FixtureError(description: "mkdtemp: \(String(cString: strerror(errno)))"))
    }
    let directory = String(cString: made)
    fixtureDirectory = directory
    atexit { if let directory = fixtureDirectory { _ = try? runShell("rm -rf \(quoted(directory))") } }
    let d = quoted(directory)
    let ko = quoted(directory + "/kdbt_symfixture.ko")
    // MAKEFLAGS from an outer `make check` would hand Kbuild the outer jobserver.
    let script = """
        set -e
        cp \(quoted(fixtureSources))/kdbt_symfixture.c \(quoted(fixtureSources))/kdbt_symexec.c \
            \(quoted(fixtureSources))/Kbuild \(d)/
        gcc -g -O2 -no-pie -fno-pie -o \(d)/vmlinux \(d)/kdbt_symexec.c
        env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C \(quoted(buildDirectory)) M=\(d) modules
        mkdir \(d)/stripped \(d)/xz \(d)/garbage
        strip --strip-debug -o \(d)/stripped/kdbt_symfixture.ko \(ko)
        xz -c \(ko) > \(d)/xz/kdbt_symfixture.ko.xz
        echo 'not an ELF file' > \(d)/garbage/kdbt_symfixture.ko
        """
    do throws(FixtureError) {
        _ = try runShell(script)
    } catch {
        return .failure(error)
    }
    guard let module = try? readWholeFile(directory + "/kdbt_symfixture.c"),
          let executable = try? readWholeFile(directory + "/kdbt_symexec.c")
    else {
        return .failure(FixtureError(description: "\(directory): fixture sources missing after the build"))
    }
    return .success(Fixture(directory: directory, sourceLines: lines(module), executableSourceLines: lines(executable)))
}()

/// Removed at exit (the test process's, not each test's: the fixture is shared).
nonisolated(unsafe) private var fixtureDirectory: String?

private func lines(_ bytes: [UInt8]) -> [String] {
    String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
}

func builtFixture() throws -> Fixture {
    try fixture.get()
}

/// Runs `script` with sh; stdout and stderr together, an error unless it exits 0.
func runShell(_ script: String) throws(FixtureError) -> String {
    guard let pipe = popen("( \(script) ) 2>&1", "r") else {
        throw FixtureError(description: "popen: \(String(cString: strerror(errno)))")
    }
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buffer, 1, buffer.count, pipe)
        if n == 0 { break }
        output.append(contentsOf: buffer[0..<n])
    }
    let status = pclose(pipe)
    let text = String(decoding: output, as: UTF8.self)
    guard status == 0 else {
        throw FixtureError(description: "command failed (status \(status)):\n\(script)\n--- output ---\n\(text)")
    }
    return text
}

func quoted(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
