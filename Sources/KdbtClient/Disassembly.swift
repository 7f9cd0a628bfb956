// SPDX-License-Identifier: GPL-2.0-only
//
// `kdbt disasm`: decodes live kernel text (read through the module, page by page) or
// the sections of an ELF file with the Engine's decoder and printer, and renders one
// instruction a line as text or JSON. A byte that starts no valid instruction is
// listed as `(bad)` and decoding resumes at the next byte: a listing never ends
// silently in the middle of its range.

import Engine
import Protocol

/// The Intel text of one decoded instruction (Engine's kernel-safe printer, as a String).
public func format(_ insn: Instruction, operands: Operands) -> String {
    withUnsafeTemporaryAllocation(byteCount: Printer.maxLength, alignment: 1) { buffer in
        let n = Printer.format(insn, operands: operands, into: buffer)
        return String(decoding: UnsafeRawBufferPointer(rebasing: buffer[0..<n]), as: UTF8.self)
    }
}

/// The Intel text of one decoded instruction; decodes its operands.
public func format(_ insn: Instruction) -> String {
    var operands = Operands()
    Decoder.decodeOperands(insn, into: &operands)
    return format(insn, operands: operands)
}

/// One memory access an instruction makes: an explicit operand, or its stack traffic.
public struct MemoryAccess: Equatable, Sendable {
    public enum Kind: String, Sendable { case read, write, readWrite = "read-write" }
    public let kind: Kind
    /// Bytes (0 when the size depends on run-time state, e.g. xsave).
    public let size: Int
    /// Implicit push/pop/call/ret traffic at the stack pointer.
    public let stack: Bool
}

/// One line of a listing: a decoded instruction, or one undecodable byte.
public struct DisassembledInstruction: Equatable, Sendable {
    public let address: UInt64
    public let bytes: [UInt8]
    /// Intel syntax; `(bad)` for a byte that starts no valid instruction.
    public let text: String
    public let isValid: Bool
    /// The Engine's control-flow class in snake_case (`call`, `jmp_indirect`, `none`);
    /// `invalid` for `(bad)`.
    public let controlFlow: String
    /// Where a relative branch goes.
    public let target: UInt64?
    public let memory: [MemoryAccess]
    /// `name+0xoff` of the enclosing symbol, where known.
    public var symbol: String?
}

public enum Disassembler {
    /// Decodes `bytes` as code at `address`, at most `limit` instructions.
    public static func decode(_ bytes: [UInt8], address: UInt64, limit: Int? = nil) -> [DisassembledInstruction] {
        var result: [DisassembledInstruction] = []
        decode(bytes, address: address, limit: limit) { result.append($0) }
        return result
    }

    /// Decodes `bytes` as code at `address`, handing each instruction to `body` as
    /// it goes (a vmlinux has millions); returns how many were decoded.
    @discardableResult
    public static func decode(_ bytes: [UInt8], address: UInt64, limit: Int? = nil,
                              _ body: (DisassembledInstruction) -> Void) -> Int {
        var count = 0
        var insn = Instruction()
        var operands = Operands()
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count && (limit.map { count < $0 } ?? true) {
                let window = UnsafeRawBufferPointer(rebasing: raw[offset..<min(offset + Decoder.maxLength, raw.count)])
                let at = address &+ UInt64(offset)
                count += 1
                guard Decoder.decode(bytes: window, address: at, into: &insn) == .ok, insn.length > 0 else {
                    body(DisassembledInstruction(
                        address: at, bytes: [raw[offset]], text: "(bad)", isValid: false,
                        controlFlow: "invalid", target: nil, memory: []))
                    offset += 1
                    continue
                }
                Decoder.decodeOperands(insn, into: &operands)
                let length = Int(insn.length)
                body(DisassembledInstruction(
                    address: at, bytes: Array(window[0..<length]), text: format(insn, operands: operands),
                    isValid: true, controlFlow: snakeCase(String(describing: insn.controlFlow)),
                    target: branchTarget(operands), memory: memoryAccesses(insn, operands)))
                offset += length
            }
        }
        return count
    }

    /// The longest instruction in `bytes` (length decoding only, no text).
    static func longestInstruction(_ bytes: ArraySlice<UInt8>) -> Int {
        var longest = 1
        var insn = Instruction()
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let window = UnsafeRawBufferPointer(rebasing: raw[offset..<min(offset + Decoder.maxLength, raw.count)])
                let length = Decoder.decode(bytes: window, address: 0, into: &insn) == .ok ? max(Int(insn.length), 1) : 1
                longest = max(longest, length)
                offset += length
            }
        }
        return longest
    }

    static func branchTarget(_ operands: Operands) -> UInt64? {
        for i in 0..<operands.count where operands[i].type == .relative {
            return UInt64(bitPattern: operands[i].immediate)
        }
        return nil
    }

    static func memoryAccesses(_ insn: Instruction, _ operands: Operands) -> [MemoryAccess] {
        let summary = Decoder.memoryAccesses(insn, operands: operands)
        var accesses: [MemoryAccess] = []
        // The summary leaves out operands that touch no memory (lea, nop, prefetch).
        if summary.explicitReads + summary.explicitWrites > 0 {
            for i in 0..<operands.count where operands[i].type == .memory && operands[i].access != 0 {
                let op = operands[i]
                let kind: MemoryAccess.Kind = op.isRead && op.isWritten ? .readWrite : (op.isWritten ? .write : .read)
                accesses.append(MemoryAccess(kind: kind, size: Int(op.mem.size), stack: false))
            }
        }
        if summary.stackReadBytes > 0 {
            accesses.append(MemoryAccess(kind: .read, size: Int(summary.stackReadBytes), stack: true))
        }
        if summary.stackWriteBytes > 0 {
            accesses.append(MemoryAccess(kind: .write, size: Int(summary.stackWriteBytes), stack: true))
        }
        return accesses
    }
}

/// "jmpIndirect" -> "jmp_indirect".
func snakeCase(_ name: String) -> String {
    var out = ""
    for c in name {
        if c.isUppercase {
            out += "_" + c.lowercased()
        } else {
            out.append(c)
        }
    }
    return out
}

// MARK: - listings

/// What `kdbt disasm` prints: section headings, symbol labels, instructions.
public struct DisassemblyListing: Sendable {
    public enum Line: Equatable, Sendable {
        case heading(String)
        case label(address: UInt64, name: String)
        case instruction(DisassembledInstruction)
    }

    public var lines: [Line] = []
    /// Hex digits of the address column.
    public var addressWidth = 16
    /// Section name for JSON (file mode).
    public var sectionOfLine: [Int: String] = [:]
    /// Branch targets get a `<symbol+0xoff>` comment from this, when set.
    public var describeTarget: (@Sendable (UInt64) -> String?)?
    /// The bytes column fits this many bytes; nil: the longest instruction listed.
    public var bytesColumnLength: Int?
    /// Part of a longer listing already written out (rendering streams it in pieces).
    public var continuesOutput = false

    public init() {}

    public var instructions: [DisassembledInstruction] {
        lines.compactMap { if case .instruction(let i) = $0 { return i } else { return nil } }
    }
}

public func renderDisassembly(_ listing: DisassemblyListing, format: OutputFormat) -> String {
    var out = ""
    switch format {
    case .text:
        let widest = listing.bytesColumnLength ?? listing.instructions.map(\.bytes.count).max() ?? 1
        let bytesColumn = widest * 3 - 1
        var previousWasInstruction = listing.continuesOutput
        for line in listing.lines {
            switch line {
            case .heading(let title):
                if !out.isEmpty || listing.continuesOutput { out += "\n" }
                out += title + "\n"
                previousWasInstruction = false
            case .label(let address, let name):
                if previousWasInstruction || !out.isEmpty { out += "\n" }
                out += paddedHex(address, listing.addressWidth) + " <" + name + ">:\n"
                previousWasInstruction = false
            case .instruction(let insn):
                let bytes = insn.bytes.map { hexByte($0) }.joined(separator: " ")
                out += paddedHex(insn.address, listing.addressWidth) + ": " + bytes
                out += String(repeating: " ", count: max(0, bytesColumn - bytes.count) + 3) + insn.text
                if let target = insn.target, let name = listing.describeTarget?(target) {
                    out += " <" + name + ">"
                }
                out += "\n"
                previousWasInstruction = true
            }
        }
    case .json:
        for (index, line) in listing.lines.enumerated() {
            guard case .instruction(let insn) = line else { continue }
            var json = JSONObject()
            json.add("address", .string("0x" + String(insn.address, radix: 16)))
            if let section = listing.sectionOfLine[index] { json.add("section", .string(section)) }
            if let symbol = insn.symbol { json.add("symbol", .string(symbol)) }
            json.add("bytes", .string(insn.bytes.map { hexByte($0) }.joined()))
            json.add("length", .int(Int64(insn.bytes.count)))
            json.add("text", .string(insn.text))
            json.add("valid", .bool(insn.isValid))
            json.add("control_flow", .string(insn.controlFlow))
            if let target = insn.target { json.add("target", .string("0x" + String(target, radix: 16))) }
            json.add("memory", .array(insn.memory.map { access in
                var m = JSONObject()
                m.add("access", .string(access.kind.rawValue))
                m.add("size", .int(Int64(access.size)))
                if access.stack { m.add("stack", .bool(true)) }
                return m.value
            }))
            out += json.value.serialized() + "\n"
        }
    }
    return out
}

func hexByte(_ b: UInt8) -> String {
    let s = String(b, radix: 16)
    return b < 16 ? "0" + s : s
}

func paddedHex(_ value: UInt64, _ width: Int) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}

// MARK: - errors

/// Why a disassembly could not be produced; each case says what to do.
public enum DisassemblyError: Error, Equatable, CustomStringConvertible {
    case addressNotInFile(UInt64, file: String)
    case symbolNotFound(String)
    case notKernelText(UInt64)
    case badAddress(String)
    case sectionNotFound(String, file: String, available: [String])
    case fileSymbolNotFound(String, file: String)
    case device(DeviceError)
    case elf(ELFError)

    public var description: String {
        switch self {
        case .addressNotInFile(let address, let file):
            return "0x\(String(address, radix: 16)) is in no executable section of \(file)"
        case .symbolNotFound(let name):
            return "no symbol \(name) in /proc/kallsyms (is its module loaded?)"
        case .notKernelText(let address):
            return "0x\(String(address, radix: 16)) is not kernel text: the module reads only the kernel's and modules' code"
        case .badAddress(let text):
            return "\(text) is not an address (write it in hex with 0x) or a symbol"
        case .sectionNotFound(let name, let file, let available):
            return "no section \(name) in \(file); its code sections are: \(available.joined(separator: ", "))"
        case .fileSymbolNotFound(let name, let file):
            return "no symbol \(name) in \(file)"
        case .device(let error):
            return error.description
        case .elf(let error):
            return error.description
        }
    }
}

// MARK: - live kernel text

/// Where a live disassembly starts and how far it may go.
public struct LiveTarget: Equatable, Sendable {
    public let address: UInt64
    /// Bytes to the end of the symbol; nil for a bare address.
    public let length: UInt64?
    public let symbolName: String?
}

extension Disassembler {
    /// Kernel text beyond this is not read when the whole function is asked for.
    public static let maxFunctionBytes = 256 * 1024
    /// Instructions a bare address shows by default.
    public static let defaultAddressCount = 16

    /// `0xADDRESS`, `SYMBOL` or `SYMBOL+0xOFFSET`.
    public static func resolve(_ spec: String, kallsyms: () throws(ELFError) -> Kallsyms) throws(DisassemblyError) -> LiveTarget {
        if let address = parseAddress(spec) { return LiveTarget(address: address, length: nil, symbolName: nil) }
        var name = Substring(spec)
        var offset: UInt64 = 0
        if let plus = spec.firstIndex(of: "+") {
            name = spec[..<plus]
            guard let value = parseAddress(String(spec[spec.index(after: plus)...])) ?? UInt64(spec[spec.index(after: plus)...]) else {
                throw .badAddress(spec)
            }
            offset = value
        }
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "$" }) else {
            throw .badAddress(spec)
        }
        let symbols: Kallsyms
        do { symbols = try kallsyms() } catch { throw .elf(error) }
        guard let symbol = symbols.lookup(String(name)) else { throw .symbolNotFound(String(name)) }
        // A data symbol is refused here: its "size" (up to the next symbol) can span
        // megabytes of .data that the module would refuse byte by byte.
        guard symbol.isText else { throw .notKernelText(symbol.address) }
        let length: UInt64? = symbol.size > offset ? symbol.size - offset : (symbol.size == 0 ? nil : 0)
        return LiveTarget(address: symbol.address &+ offset, length: length, symbolName: symbol.name)
    }

    /// `0x` hex, or exactly 16 hex digits (as /proc/kallsyms and oopses print them).
    public static func parseAddress(_ text: String) -> UInt64? {
        if text.hasPrefix("0x") || text.hasPrefix("0X") { return UInt64(text.dropFirst(2), radix: 16) }
        if text.count == 16 { return UInt64(text, radix: 16) }
        return nil
    }

    /// Reads live text page by page: the first byte must be text (else
    /// `notKernelText`); the read stops early, to the byte, where text ends.
    public static func readLiveText<D: DeviceConnection>(
        _ client: KdbtClient<D>, address: UInt64, length: Int
    ) throws(DisassemblyError) -> [UInt8] {
        let page: UInt64 = 4096
        var bytes: [UInt8] = []
        bytes.reserveCapacity(length)
        var chunkLimit = page
        while bytes.count < length {
            let at = address &+ UInt64(bytes.count)
            let chunk = min(UInt64(length - bytes.count), page - at % page, chunkLimit)
            do {
                bytes += try client.readText(address: at, length: Int(chunk))
            } catch .requestFailed(_, let errno) where errno == Errno.EFAULT {
                // Text may end inside a page: halve until one byte is refused.
                if chunk > 1 {
                    chunkLimit = chunk / 2
                    continue
                }
                if bytes.isEmpty { throw .notKernelText(at) }
                break
            } catch {
                throw .device(error)
            }
        }
        return bytes
    }

    /// Disassembles live kernel text: a symbol's whole extent (or `count`
    /// instructions of it), or `count` (default 16) instructions at an address.
    public static func live<D: DeviceConnection>(
        _ client: KdbtClient<D>, target: LiveTarget, count: Int?, kallsyms: Kallsyms?
    ) throws(DisassemblyError) -> DisassemblyListing {
        var length: Int
        if let count {
            length = count * Decoder.maxLength
            if let extent = target.length { length = min(length, Int(clamping: extent)) }
        } else if let extent = target.length {
            length = Int(clamping: extent)
        } else {
            length = defaultAddressCount * Decoder.maxLength
        }
        length = min(length, maxFunctionBytes)
        let limit = count ?? (target.length == nil ? defaultAddressCount : nil)
        var listing = DisassemblyListing()
        if length == 0 { return listing }
        let bytes = try readLiveText(client, address: target.address, length: length)
        if let name = target.symbolName, kallsyms?.symbolize(target.address)?.offset == 0 {
            listing.lines.append(.label(address: target.address, name: name))
        }
        for var insn in decode(bytes, address: target.address, limit: limit) {
            insn.symbol = kallsyms.flatMap { symbols in symbols.symbolize(insn.address).map { "\($0.symbol.name)+0x\(String($0.offset, radix: 16))" } }
            listing.lines.append(.instruction(insn))
        }
        if let kallsyms {
            listing.describeTarget = { address in
                kallsyms.symbolize(address).map { "\($0.symbol.name)+0x\(String($0.offset, radix: 16))" }
            }
        }
        return listing
    }
}

// MARK: - ELF files

extension Disassembler {
    /// Disassembles an ELF file: one section, one symbol, or every executable
    /// section. Addresses are section offsets in relocatable files (.ko), virtual
    /// addresses otherwise (vmlinux).
    public static func file(
        _ elf: ELFFile, path: String, section sectionName: String?, symbol symbolName: String?,
        range addressRange: (start: UInt64, length: UInt64)? = nil, count: Int?,
        flush: ((DisassemblyListing) -> Void)? = nil
    ) throws(DisassemblyError) -> DisassemblyListing {
        var ranges: [(section: ELFSection, start: UInt64, end: UInt64)] = []
        let code = elf.sections.filter(\.isExecutable)
        if let symbolName {
            guard let symbol = elf.symbols.first(where: { $0.name == symbolName && $0.isFunction })
                    ?? elf.symbols.first(where: { $0.name == symbolName && $0.sectionIndex > 0 }),
                  let (section, offset) = elf.location(of: symbol)
            else { throw .fileSymbolNotFound(symbolName, file: path) }
            var end = symbol.size > 0 ? offset + symbol.size : section.size
            if symbol.size == 0, let next = labels(elf, section).first(where: { $0.offset > offset }) { end = next.offset }
            ranges.append((section, offset, min(end, section.size)))
        } else if let addressRange {
            guard let section = code.first(where: { section in
                let base = elf.loadAddress(of: section)
                return addressRange.start >= base && addressRange.start - base < section.size
            }) else { throw .addressNotInFile(addressRange.start, file: path) }
            let offset = addressRange.start - elf.loadAddress(of: section)
            ranges.append((section, offset, min(offset + addressRange.length, section.size)))
        } else if let sectionName {
            guard let section = elf.section(named: sectionName), section.type != ELFSection.SHT_NOBITS else {
                throw .sectionNotFound(sectionName, file: path, available: code.map(\.name))
            }
            ranges.append((section, 0, section.size))
        } else {
            ranges = code.map { ($0, 0, $0.size) }
        }

        var listing = DisassemblyListing()
        let maxAddress = ranges.map { elf.loadAddress(of: $0.section) &+ $0.end }.max() ?? 0
        listing.addressWidth = max(4, String(maxAddress, radix: 16).count)
        if elf.fileType != ELFFile.ET_REL {
            // Branch targets are final only where nothing is left to relocate.
            let all = ranges.flatMap { range in
                labels(elf, range.section).map { (address: elf.loadAddress(of: range.section) &+ $0.offset, name: $0.name) }
            }.sorted { $0.address < $1.address }
            listing.describeTarget = { address in
                guard let index = lastIndex(in: all, atOrBefore: address) else { return nil }
                return "\(all[index].name)+0x\(String(address - all[index].address, radix: 16))"
            }
        }
        if flush != nil && count == nil {
            // Streamed in pieces: the column must fit every piece's instructions.
            var longest = 1
            for range in ranges {
                guard let contents = try? elf.contents(of: range.section) else { continue }
                longest = max(longest, longestInstruction(
                    contents[(contents.startIndex + Int(range.start))..<(contents.startIndex + Int(range.end))]))
            }
            listing.bytesColumnLength = longest
        }
        var remaining = count
        for range in ranges {
            if remaining == 0 { break }
            let contents: ArraySlice<UInt8>
            do { contents = try elf.contents(of: range.section) } catch { throw .elf(error) }
            let base = elf.loadAddress(of: range.section)
            let slice = Array(contents[(contents.startIndex + Int(range.start))..<(contents.startIndex + Int(range.end))])
            let sectionLabels = labels(elf, range.section)
            if symbolName == nil { listing.lines.append(.heading("Disassembly of section \(range.section.name):")) }
            var nextLabel = sectionLabels.firstIndex { $0.offset >= range.start } ?? sectionLabels.endIndex
            var current = sectionLabels.last { $0.offset <= range.start }
            let decoded = decode(slice, address: base &+ range.start, limit: remaining) { decodedInstruction in
                var insn = decodedInstruction
                let offset = insn.address &- base
                while nextLabel < sectionLabels.endIndex && sectionLabels[nextLabel].offset <= offset {
                    current = sectionLabels[nextLabel]
                    listing.lines.append(.label(address: base &+ current!.offset, name: current!.name))
                    nextLabel += 1
                }
                if let current { insn.symbol = "\(current.name)+0x\(String(offset - current.offset, radix: 16))" }
                listing.sectionOfLine[listing.lines.count] = range.section.name
                listing.lines.append(.instruction(insn))
                if let flush, listing.lines.count >= 4096 {
                    flush(listing)
                    listing.lines.removeAll(keepingCapacity: true)
                    listing.sectionOfLine.removeAll(keepingCapacity: true)
                    listing.continuesOutput = true
                }
            }
            remaining = remaining.map { $0 - decoded }
        }
        return listing
    }

    /// Index of the last element of `sorted` at or before `address` (binary search).
    static func lastIndex(in sorted: [(address: UInt64, name: String)], atOrBefore address: UInt64) -> Int? {
        var lo = 0
        var hi = sorted.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sorted[mid].address <= address { lo = mid + 1 } else { hi = mid }
        }
        return lo > 0 ? lo - 1 : nil
    }

    /// Function and untyped symbols of `section`, by offset, one name per offset.
    static func labels(_ elf: ELFFile, _ section: ELFSection) -> [(offset: UInt64, name: String)] {
        var seen = Set<UInt64>()
        return elf.symbols
            .filter { ($0.isFunction || $0.type == 0) && !$0.name.isEmpty && $0.sectionIndex == section.index }
            .sorted { ($0.value, $0.isFunction ? 0 : 1) < ($1.value, $1.isFunction ? 0 : 1) }
            .compactMap { symbol in
                guard let (_, offset) = elf.location(of: symbol), seen.insert(offset).inserted else { return nil }
                return (offset, symbol.name)
            }
    }
}
