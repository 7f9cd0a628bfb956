// SPDX-License-Identifier: GPL-2.0-only
//
// A small ELF64 little-endian reader: sections and symbols of vmlinux, .ko files and
// shared libraries, for offline disassembly and the decoder's differential tests.
// Every offset read from the file is bounds-checked; a malformed file is an error,
// never a crash.

#if canImport(Glibc)
import Glibc
#endif

public struct ELFError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public struct ELFSection: Sendable {
    public let index: Int
    public let name: String
    public let type: UInt32
    public let flags: UInt64
    public let address: UInt64
    public let offset: UInt64
    public let size: UInt64
    public let link: UInt32
    public let entrySize: UInt64

    public static let SHT_PROGBITS: UInt32 = 1
    public static let SHT_SYMTAB: UInt32 = 2
    public static let SHT_NOBITS: UInt32 = 8
    public static let SHF_ALLOC: UInt64 = 0x2
    public static let SHF_EXECINSTR: UInt64 = 0x4

    public var isExecutable: Bool { flags & Self.SHF_EXECINSTR != 0 && type != Self.SHT_NOBITS }
}

public struct ELFSymbol: Sendable {
    public let name: String
    public let value: UInt64
    public let size: UInt64
    public let type: UInt8  // STT_*
    public let sectionIndex: Int

    public static let STT_FUNC: UInt8 = 2
    public var isFunction: Bool { type == Self.STT_FUNC }
}

public struct ELFFile: Sendable {
    public let bytes: [UInt8]
    /// ET_REL (.ko, .o), ET_EXEC (vmlinux), ET_DYN (shared objects).
    public let fileType: UInt16
    public let sections: [ELFSection]
    public let symbols: [ELFSymbol]

    public static let ET_REL: UInt16 = 1

    public init(path: String) throws(ELFError) {
        try self.init(bytes: try readWholeFile(path), name: path)
    }

    public init(bytes: [UInt8], name: String = "input") throws(ELFError) {
        self.bytes = bytes
        let r = ByteReader(bytes)
        guard bytes.count >= 64, bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C, bytes[3] == 0x46 else {
            throw ELFError("\(name): not an ELF file")
        }
        guard bytes[4] == 2, bytes[5] == 1 else { throw ELFError("\(name): not a 64-bit little-endian ELF file") }
        fileType = try r.u16(16)
        let machine = try r.u16(18)
        guard machine == 62 else { throw ELFError("\(name): not an x86-64 ELF file (e_machine \(machine))") }
        let shoff = try r.u64(0x28)
        let shentsize = Int(try r.u16(0x3A))
        let shnum = Int(try r.u16(0x3C))
        let shstrndx = Int(try r.u16(0x3E))
        guard shnum == 0 || shentsize >= 64 else { throw ELFError("\(name): bad section header size") }

        var raw: [(nameOffset: UInt32, section: ELFSection)] = []
        for i in 0..<shnum {
            let base = try r.checkedOffset(shoff, plus: UInt64(i * shentsize), length: 64)
            let section = ELFSection(
                index: i, name: "", type: try r.u32(base + 4), flags: try r.u64(base + 8),
                address: try r.u64(base + 16), offset: try r.u64(base + 24), size: try r.u64(base + 32),
                link: try r.u32(base + 40), entrySize: try r.u64(base + 56))
            raw.append((try r.u32(base), section))
        }
        guard shnum == 0 || shstrndx < shnum else { throw ELFError("\(name): bad section name table index") }
        let names = shnum == 0 ? nil : raw[shstrndx].section
        sections = try raw.map { entry throws(ELFError) in
            let s = entry.section
            let sectionName = try names.map { t throws(ELFError) in try r.string(in: t, at: UInt64(entry.nameOffset)) } ?? ""
            return ELFSection(index: s.index, name: sectionName, type: s.type, flags: s.flags, address: s.address,
                              offset: s.offset, size: s.size, link: s.link, entrySize: s.entrySize)
        }

        var symbols: [ELFSymbol] = []
        if let symtab = sections.first(where: { $0.type == ELFSection.SHT_SYMTAB }) {
            guard Int(symtab.link) < sections.count else { throw ELFError("\(name): bad symbol string table") }
            let strtab = sections[Int(symtab.link)]
            let count = Int(symtab.size / 24)
            symbols.reserveCapacity(count)
            for i in 0..<count {
                let base = try r.checkedOffset(symtab.offset, plus: UInt64(i * 24), length: 24)
                let nameOffset = try r.u32(base)
                symbols.append(ELFSymbol(
                    name: try r.string(in: strtab, at: UInt64(nameOffset)), value: try r.u64(base + 8),
                    size: try r.u64(base + 16), type: try r.u8(base + 4) & 0xF, sectionIndex: Int(try r.u16(base + 6))))
            }
        }
        self.symbols = symbols
    }

    public func section(named name: String) -> ELFSection? { sections.first { $0.name == name } }

    /// The bytes of a section (empty for NOBITS).
    public func contents(of section: ELFSection) throws(ELFError) -> ArraySlice<UInt8> {
        if section.type == ELFSection.SHT_NOBITS { return [] }
        let start = try ByteReader(bytes).checkedOffset(section.offset, plus: 0, length: Int(clamping: section.size))
        return bytes[start..<start + Int(section.size)]
    }

    /// The address a section's first byte has: sh_addr, or 0 in relocatable files.
    public func loadAddress(of section: ELFSection) -> UInt64 { fileType == Self.ET_REL ? 0 : section.address }

    /// Where a symbol's bytes are: its section and the offset inside it.
    public func location(of symbol: ELFSymbol) -> (section: ELFSection, offset: UInt64)? {
        guard symbol.sectionIndex > 0, symbol.sectionIndex < sections.count else { return nil }
        let section = sections[symbol.sectionIndex]
        let offset = fileType == Self.ET_REL ? symbol.value : symbol.value &- section.address
        guard offset <= section.size else { return nil }
        return (section, offset)
    }
}

/// Bounds-checked little-endian reads.
struct ByteReader {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func checkedOffset(_ base: UInt64, plus: UInt64, length: Int) throws(ELFError) -> Int {
        let (start, overflow) = base.addingReportingOverflow(plus)
        guard !overflow, length >= 0, start <= UInt64(bytes.count), UInt64(length) <= UInt64(bytes.count) - start else {
            throw ELFError("truncated or malformed ELF file (offset \(base)+\(plus), \(length) bytes)")
        }
        return Int(start)
    }
    func u8(_ o: Int) throws(ELFError) -> UInt8 { bytes[try checkedOffset(UInt64(o), plus: 0, length: 1)] }
    func u16(_ o: Int) throws(ELFError) -> UInt16 { UInt16(try load(o, 2)) }
    func u32(_ o: Int) throws(ELFError) -> UInt32 { UInt32(try load(o, 4)) }
    func u64(_ o: Int) throws(ELFError) -> UInt64 { try load(o, 8) }
    private func load(_ o: Int, _ n: Int) throws(ELFError) -> UInt64 {
        let start = try checkedOffset(UInt64(o), plus: 0, length: n)
        var v: UInt64 = 0
        for i in (0..<n).reversed() { v = v << 8 | UInt64(bytes[start + i]) }
        return v
    }
    /// A NUL-terminated string at `offset` inside a string-table section.
    func string(in table: ELFSection, at offset: UInt64) throws(ELFError) -> String {
        guard offset < table.size else { throw ELFError("string offset \(offset) outside its table") }
        let start = try checkedOffset(table.offset, plus: offset, length: 0)
        let end = Int(min(UInt64(bytes.count), table.offset + table.size))
        var i = start
        while i < end && bytes[i] != 0 { i += 1 }
        return String(decoding: bytes[start..<i], as: UTF8.self)
    }
}

/// Reads a whole file; errors name the file and the reason.
public func readWholeFile(_ path: String) throws(ELFError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw ELFError("cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { throw ELFError("cannot read \(path): \(String(cString: strerror(errno)))") }
        if n == 0 { break }
        result.append(contentsOf: chunk[0..<n])
    }
    return result
}
