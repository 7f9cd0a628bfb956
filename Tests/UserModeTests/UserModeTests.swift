// SPDX-License-Identifier: GPL-2.0-only
//
// `kdbt user` on unmodified programs of this machine: output and exit status
// identical to a native run; threads, fork and exec; inscount's per-thread report.
// Needs the built `kdbt` and libkdbt-preload.so next to this test bundle
// (`swift build` builds both; `make check` does so before `swift test`).

import Glibc
import Testing

/// The build directory holding this test bundle, kdbt and libkdbt-preload.so.
let buildDirectory: String = {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    let exe = String(decoding: buffer[0..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var dir = exe
    while let slash = dir.lastIndex(of: "/") {
        dir = String(dir[..<slash])
        if access(dir + "/kdbt", X_OK) == 0 { return dir }
    }
    return "."
}()

struct Run: Equatable {
    var status: Int32
    var output: String
}

/// Runs a shell command line, capturing stdout (stderr to `stderrFile` or /dev/null).
func run(_ command: String, stderrFile: String = "/dev/null") -> Run {
    guard let pipe = popen("\(command) 2>\(stderrFile)", "r") else { return Run(status: -1, output: "") }
    var output = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&chunk, 1, chunk.count, pipe)
        if n <= 0 { break }
        output += chunk[0..<n]
    }
    let status = pclose(pipe)
    return Run(status: (status >> 8) & 0xFF, output: String(decoding: output, as: UTF8.self))
}

func readFile(_ path: String) -> String {
    guard let f = fopen(path, "r") else { return "" }
    defer { fclose(f) }
    var text = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&chunk, 1, chunk.count, f)
        if n <= 0 { break }
        text += chunk[0..<n]
    }
    return String(decoding: text, as: UTF8.self)
}

let programs: [String] = [
    "/bin/echo hello world",
    "/bin/ls -la /etc/apt",
    "/usr/bin/sort -r /etc/services",
    "/usr/bin/sha256sum /etc/services /etc/passwd",
    "/usr/bin/wc -l -w -c /etc/services",
    "/bin/gzip -9 -c /etc/services | /bin/gzip -d | /usr/bin/md5sum",
    "/usr/bin/python3 -c 'import hashlib,zlib,json; print(hashlib.sha256(zlib.compress(json.dumps(list(range(5000))).encode())).hexdigest())'",
    "/usr/bin/python3 -c 'import threading; r=[]; ts=[threading.Thread(target=lambda i=i: r.append(sum(range(i*1000)))) for i in range(4)]; [t.start() for t in ts]; [t.join() for t in ts]; print(sorted(r))'",
    "/bin/sh -c 'echo a b c | /usr/bin/tr a-c x-z; (exit 7)'",
    "/usr/bin/find /etc/apt -name \"*.list*\"",
    // Signals: a 2 kHz SIGALRM storm; Python's handler (run translated) counts.
    "/usr/bin/python3 -c 'import signal; c=[0]; signal.signal(signal.SIGALRM, lambda s,f: c.__setitem__(0, c[0]+1)); "
        + "signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005); s=sum(i*i%7 for i in range(600000)); "
        + "signal.setitimer(signal.ITIMER_REAL, 0, 0); print(s, c[0] > 0)'",
]

@Suite("kdbt user", .serialized)
struct UserModeTests {
    @Test("output and exit status are identical to a native run", arguments: programs)
    func identical(_ program: String) {
        let native = run(program)
        let translated = run("\(buildDirectory)/kdbt user -- \(program)")
        #expect(translated == native)
        let counted = run("\(buildDirectory)/kdbt user --tool inscount -- \(program)")
        #expect(counted == native)
    }

    @Test("inscount reports every thread and a total that adds them up")
    func perThread() throws {
        let report = "/tmp/kdbt-user-test-\(getpid()).txt"
        unlink(report)
        let r = run("\(buildDirectory)/kdbt user --tool inscount --output \(report) -- \(programs[7])")
        #expect(r.status == 0)
        let lines = readFile(report).split(separator: "\n")
        unlink(report)
        let threads = lines.filter { $0.contains(": thread ") }.compactMap { line in
            UInt64(line.split(separator: " ").dropLast().last ?? "")
        }
        let total = lines.first { $0.contains(": total ") }.flatMap { line in
            line.split(separator: " ").first { UInt64($0) != nil }.flatMap { UInt64($0) }
        }
        #expect(threads.count >= 5, "main thread and four workers: \(lines)")
        #expect(threads.allSatisfy { $0 > 0 })
        #expect(total == threads.reduce(0, +))
    }

    @Test("--stats reports the translation cost at exit")
    func statistics() {
        let report = "/tmp/kdbt-user-stats-\(getpid()).txt"
        unlink(report)
        let r = run("\(buildDirectory)/kdbt user --stats --output \(report) -- /usr/bin/sort /etc/services")
        let text = readFile(report)
        unlink(report)
        #expect(r.status == 0)
        #expect(text.contains("kdbt: translation: "), "\(text)")
        #expect(text.contains("cache bytes (") && text.contains("per native byte"))
    }

    @Test("a program that is not there exits 127; usage errors exit 64")
    func errors() {
        #expect(run("\(buildDirectory)/kdbt user -- /nonexistent/program").status == 127)
        #expect(run("\(buildDirectory)/kdbt user --tool nosuchtool -- /bin/true").status == 64)
        #expect(run("\(buildDirectory)/kdbt user").status == 64)
    }
}
