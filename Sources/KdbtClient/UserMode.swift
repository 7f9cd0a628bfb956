// SPDX-License-Identifier: GPL-2.0-only
//
// `kdbt user`: runs a program under the Engine's user-mode host by exec'ing it with
// libkdbt-preload.so in LD_PRELOAD and the tool selection in the environment.

#if canImport(Glibc)
import Glibc
#endif

public enum UserModeTool: String, CaseIterable, Sendable {
    case null
    case inscount
}

public struct UserModeError: Error, CustomStringConvertible {
    public let description: String
    /// 126: found but not executable; 127: not found (as env(1) and shells do);
    /// 2: kdbt itself is incomplete (no preload library).
    public let exitCode: Int32
}

public enum UserMode {
    public static let preloadName = "libkdbt-preload.so"

    /// The preload library: $KDBT_PRELOAD, else next to the running kdbt binary.
    public static func preloadLibrary() throws(UserModeError) -> String {
        if let explicit = getenv("KDBT_PRELOAD") { return String(cString: explicit) }
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if n > 0 {
            let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if let slash = exe.lastIndex(of: "/") {
                let candidate = String(exe[..<slash]) + "/" + preloadName
                if access(candidate, R_OK) == 0 { return candidate }
            }
        }
        throw UserModeError(
            description: "cannot find \(preloadName) next to the kdbt binary; build it with `swift build` "
                + "or set KDBT_PRELOAD to its path",
            exitCode: 2)
    }

    /// Replaces this process with `program` running under the user-mode host.
    /// Returns only on failure.
    public static func exec(program: String, arguments: [String], tools: [UserModeTool],
                            output: String?, statistics: Bool = false) throws(UserModeError) -> Never {
        let library = try preloadLibrary()
        let existing = getenv("LD_PRELOAD").map { String(cString: $0) }
        setenv("LD_PRELOAD", existing.map { "\(library):\($0)" } ?? library, 1)
        setenv("KDBT_USER_TOOLS", tools.map(\.rawValue).joined(separator: ","), 1)
        if let output { setenv("KDBT_USER_OUTPUT", output, 1) } else { unsetenv("KDBT_USER_OUTPUT") }
        if statistics { setenv("KDBT_USER_STATS", "1", 1) } else { unsetenv("KDBT_USER_STATS") }
        var argv: [UnsafeMutablePointer<CChar>?] = ([program] + arguments).map { strdup($0) }
        argv.append(nil)
        execvp(program, argv)
        let error = errno
        throw UserModeError(
            description: "cannot run \(program): \(String(cString: strerror(error)))",
            exitCode: error == ENOENT ? 127 : 126)
    }
}
