// SPDX-License-Identifier: GPL-2.0-only
//
// kallsyms' function+offset [module] to source lines with elfutils (libdwfl/libdw):
// the function is looked up by name in the symbol table of vmlinux or the module's
// .ko, so KASLR and module load addresses never matter. Relocatable .ko files are
// laid out by libdwfl's offline reporting, the way eu-addr2line reads them.

import CLibdw
import KdbtClient
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Source frames from DWARF debug information: vmlinux (a debug vmlinux, ET_EXEC)
/// for locations without a module, a module's .ko found by name under the module
/// directories otherwise. Every failure (missing or stripped file, unknown function,
/// address outside the debug information) yields no frames; `unavailableReason`
/// says why, for diagnostics.
///
/// Thread-safe: one lock serializes every libdw call (libdwfl handles are not).
public final class DwarfSymbolizer: FrameSymbolizing, Sendable {
    public let vmlinuxPath: String?
    public let moduleDirectories: [String]
    private let state: Mutex<State>

    /// `/lib/modules/$(uname -r)`: the running kernel's modules.
    public static var defaultModuleDirectories: [String] {
        var names = utsname()
        guard uname(&names) == 0 else { return [] }
        let release = withUnsafeBytes(of: names.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return ["/lib/modules/" + release]
    }

    /// `vmlinux`: the debug vmlinux for locations without a module (nil: none).
    /// `moduleDirectories` are searched recursively, without following symbolic
    /// links (`/lib/modules/*/build` points at the whole header tree).
    public init(vmlinux: String? = nil, moduleDirectories: [String] = DwarfSymbolizer.defaultModuleDirectories) {
        vmlinuxPath = vmlinux
        self.moduleDirectories = moduleDirectories
        state = Mutex(State())
    }

    deinit {
        state.withLock { state in
            for case .open(let handle) in state.handles.values { dwfl_end(handle.dwfl) }
            state.handles.removeAll()
        }
    }

    public func sourceFrames(for location: SymbolLocation, isReturnAddress: Bool) -> [SourceFrame] {
        state.withLock { state -> [SourceFrame] in
            guard case .open(let handle) = handle(for: location.module, in: &state) else { return [] }
            guard let start = handle.address(of: location.function, offset: location.offset) else { return [] }
            // The call instruction ends at the return address: look inside it.
            let offset = isReturnAddress && location.offset > 0 ? location.offset - 1 : location.offset
            // Past kallsyms' bound is another symbol's code: not this location's.
            guard location.size == 0 || offset < location.size else { return [] }
            return frames(at: start &+ offset, in: handle, function: location.function)
        }
    }

    /// Why `module` (nil: vmlinux) yields no frames at all, or nil when its debug
    /// information opened (a given location may still have none).
    public func unavailableReason(module: String?) -> String? {
        state.withLock { state -> String? in
            switch handle(for: module, in: &state) {
            case .open: return nil
            case .unavailable(let reason): return reason
            }
        }
    }

    /// The file `module` is read from, if one is found.
    public func modulePath(for module: String) -> String? {
        state.withLock { state in path(of: module, in: &state) }
    }

    // MARK: - Handles

    private struct State {
        /// Keyed by module name; "" is vmlinux. Failures are cached too: a call
        /// trace asks about the same module many times.
        var handles: [String: Entry] = [:]
        /// Normalized module name -> file, built on the first module lookup.
        var moduleFiles: [String: String]?
    }

    private func handle(for module: String?, in state: inout State) -> Entry {
        let key = module ?? ""
        if let entry = state.handles[key] { return entry }
        let entry: Entry
        if let module {
            if let path = path(of: module, in: &state) {
                entry = Handle.open(name: module, path: path)
            } else {
                let searched = moduleDirectories.isEmpty ? "no module directory" : moduleDirectories.joined(separator: ", ")
                entry = .unavailable("\(module): no \(module).ko under \(searched)")
            }
        } else if let vmlinuxPath {
            entry = Handle.open(name: "vmlinux", path: vmlinuxPath)
        } else {
            entry = .unavailable("vmlinux: no debug vmlinux given")
        }
        state.handles[key] = entry
        return entry
    }

    private func path(of module: String, in state: inout State) -> String? {
        if state.moduleFiles == nil { state.moduleFiles = indexModules(under: moduleDirectories) }
        return state.moduleFiles?[normalizedModuleName(module)]
    }

    // MARK: - Frames

    /// The inline chain at `address`, innermost first; the containing function last.
    private func frames(at address: UInt64, in handle: Handle, function: String) -> [SourceFrame] {
        let module = handle.module
        var (file, line, column) = lineInfo(module, address)
        var bias: Dwarf_Addr = 0
        guard let cu = dwfl_module_addrdie(module, address, &bias) else {
            // Line rows without DIEs (assembly): one frame, named as kallsyms does.
            guard file != nil else { return [] }
            return [SourceFrame(function: function, file: file, line: line, column: column, inlined: false)]
        }
        let chain = scopeChain(cu, address &- bias)
        var files: OpaquePointer?
        var fileCount = 0
        if dwarf_getsrcfiles(cu, &files, &fileCount) != 0 { files = nil }

        var frames: [SourceFrame] = []
        for var die in chain {
            let tag = dwarf_tag(&die)
            if tag == Int32(DW_TAG_inlined_subroutine) {
                frames.append(SourceFrame(function: name(of: &die) ?? function, file: file, line: line,
                                          column: column, inlined: true))
                // The caller's frame is where this copy was inlined.
                file = files.flatMap { files in unsigned(&die, DW_AT_call_file).flatMap { index in
                    index < UInt64(fileCount) ? dwarf_filesrc(files, Int(index), nil, nil).map { String(cString: $0) } : nil
                } }
                line = unsigned(&die, DW_AT_call_line).map { Int(clamping: $0) }
                column = unsigned(&die, DW_AT_call_column).flatMap { $0 == 0 ? nil : Int(clamping: $0) }
            } else if tag == Int32(DW_TAG_subprogram) {
                frames.append(SourceFrame(function: name(of: &die) ?? function, file: file, line: line,
                                          column: column, inlined: false))
                return frames
            }
        }
        // No subprogram DIE covers the address: the line table alone still names it.
        if frames.isEmpty, file != nil {
            return [SourceFrame(function: function, file: file, line: line, column: column, inlined: false)]
        }
        // An inlined body with no containing subprogram in sight: keep what is known.
        if let last = frames.last, last.inlined {
            frames.append(SourceFrame(function: function, file: file, line: line, column: column, inlined: false))
        }
        return frames
    }

    /// The scopes around `pc`, innermost first, by physical nesting. dwarf_getscopes
    /// finds the innermost; from an inlined instance it continues into the abstract
    /// origin's scopes, so the enclosing chain comes from dwarf_getscopes_die (as in
    /// eu-addr2line -i).
    private func scopeChain(_ cu: UnsafeMutablePointer<Dwarf_Die>, _ pc: Dwarf_Addr) -> [Dwarf_Die] {
        var scopes: UnsafeMutablePointer<Dwarf_Die>?
        let count = dwarf_getscopes(cu, pc, &scopes)
        defer { free(scopes) }
        guard count > 0, let scopes else { return [] }
        var innermost = scopes[0]
        var chain: UnsafeMutablePointer<Dwarf_Die>?
        let chainCount = dwarf_getscopes_die(&innermost, &chain)
        defer { free(chain) }
        guard chainCount > 0, let chain else { return [innermost] }
        return Array(UnsafeBufferPointer(start: chain, count: Int(chainCount)))
    }

    private func lineInfo(_ module: OpaquePointer, _ address: UInt64) -> (String?, Int?, Int?) {
        guard let row = dwfl_module_getsrc(module, address) else { return (nil, nil, nil) }
        var line: Int32 = 0
        var column: Int32 = 0
        guard let file = dwfl_lineinfo(row, nil, &line, &column, nil, nil) else { return (nil, nil, nil) }
        return (String(cString: file), line > 0 ? Int(line) : nil, column > 0 ? Int(column) : nil)
    }

    /// DW_AT_name, through DW_AT_abstract_origin and DW_AT_specification.
    private func name(of die: inout Dwarf_Die) -> String? {
        var attribute = Dwarf_Attribute()
        guard let value = dwarf_formstring(dwarf_attr_integrate(&die, UInt32(DW_AT_name), &attribute)) else {
            return nil
        }
        return String(cString: value)
    }

    private func unsigned(_ die: inout Dwarf_Die, _ attributeName: Int) -> UInt64? {
        var attribute = Dwarf_Attribute()
        var value: Dwarf_Word = 0
        guard dwarf_formudata(dwarf_attr(&die, UInt32(attributeName), &attribute), &value) == 0 else { return nil }
        return value
    }
}

/// A module's debug information, or why there is none.
private enum Entry {
    case open(Handle)
    case unavailable(String)
}

/// One opened ELF file and its function symbols.
private final class Handle: @unchecked Sendable {
    let dwfl: OpaquePointer
    let module: OpaquePointer
    /// Name -> (address in libdwfl's layout, st_size); several for same-named statics.
    let functions: [String: [(address: UInt64, size: UInt64)]]

    private init(dwfl: OpaquePointer, module: OpaquePointer, functions: [String: [(address: UInt64, size: UInt64)]]) {
        self.dwfl = dwfl
        self.module = module
        self.functions = functions
    }

    static func open(name: String, path: String) -> Entry {
        guard access(path, R_OK) == 0 else {
            return .unavailable("\(path): \(String(cString: strerror(errno)))")
        }
        var module: OpaquePointer?
        guard let dwfl = clibdw_report_offline(name, path, &module), let module else {
            let hint = path.hasSuffix(".zst") ? " (this libdw cannot decompress zstd: unpack it with zstd -d)" : ""
            return .unavailable("\(path): \(libdwError())\(hint)")
        }
        // No DWARF (stripped, no separate debug file): nothing to symbolize with.
        var bias: Dwarf_Addr = 0
        guard dwfl_module_getdwarf(module, &bias) != nil else {
            let reason = "\(path): no debug information (\(libdwError()))"
            dwfl_end(dwfl)
            return .unavailable(reason)
        }
        var functions: [String: [(address: UInt64, size: UInt64)]] = [:]
        let count = dwfl_module_getsymtab(module)
        if count > 0 {
            for index in 0..<count {
                var symbol = GElf_Sym()
                var address: GElf_Addr = 0
                var section: GElf_Word = 0
                guard let cName = dwfl_module_getsym_info(module, index, &symbol, &address, &section, nil, nil),
                      symbol.st_info & 0xF == UInt8(STT_FUNC), symbol.st_shndx != UInt16(SHN_UNDEF), cName[0] != 0
                else { continue }
                functions[String(cString: cName), default: []].append((address, symbol.st_size))
            }
        }
        return .open(Handle(dwfl: dwfl, module: module, functions: functions))
    }

    /// The start of `function`. Among same-named static functions, the first one
    /// that `offset` fits into (kallsyms cannot say which one it meant).
    func address(of function: String, offset: UInt64) -> UInt64? {
        guard let candidates = functions[function] else { return nil }
        return (candidates.first { offset < $0.size } ?? candidates.first)?.address
    }
}

private func libdwError() -> String {
    guard let message = dwfl_errmsg(-1) else { return "unknown libdwfl error" }
    return String(cString: message)
}

// MARK: - Module files

/// Kallsyms names modules with `_`; their files may use `-` (snd-hda-intel.ko).
func normalizedModuleName(_ name: String) -> String {
    String(name.map { $0 == "-" ? "_" : $0 })
}

/// Module file suffixes, preferred first. Compressed files are handed to libdwfl,
/// which decompresses what it was built for (Debian's 0.188: gzip, bzip2, xz; not
/// zstd, so a .ko.zst is reported unavailable with libdwfl's error).
let moduleSuffixes = [".ko", ".ko.xz", ".ko.gz", ".ko.zst"]

/// Every module file under `directories`, by normalized module name; the first
/// directory and the uncompressed file win.
func indexModules(under directories: [String]) -> [String: String] {
    var found: [String: (path: String, rank: Int)] = [:]
    for (directoryRank, directory) in directories.enumerated() {
        walk(directory, depth: 0) { path, fileName in
            guard let suffixRank = moduleSuffixes.firstIndex(where: { fileName.hasSuffix($0) }) else { return }
            let name = normalizedModuleName(String(fileName.dropLast(moduleSuffixes[suffixRank].count)))
            let rank = directoryRank * moduleSuffixes.count + suffixRank
            if let existing = found[name], existing.rank <= rank { return }
            found[name] = (path, rank)
        }
    }
    return found.mapValues(\.path)
}

/// Regular files under `directory`, recursively; symbolic links are not followed.
private func walk(_ directory: String, depth: Int, _ visit: (String, String) -> Void) {
    guard depth < 32, let dir = opendir(directory) else { return }
    defer { closedir(dir) }
    var subdirectories: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name == "." || name == ".." { continue }
        let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
        var type = entry.pointee.d_type
        if type == UInt8(DT_UNKNOWN) {
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            type = info.st_mode & S_IFMT == S_IFDIR ? UInt8(DT_DIR) : info.st_mode & S_IFMT == S_IFREG ? UInt8(DT_REG) : 0
        }
        if type == UInt8(DT_DIR) {
            subdirectories.append(path)
        } else if type == UInt8(DT_REG) {
            visit(path, name)
        }
    }
    for subdirectory in subdirectories { walk(subdirectory, depth: depth + 1, visit) }
}
