// SPDX-License-Identifier: GPL-2.0-only
//
// The running kernel's symbols from /proc/kallsyms: name -> address and size, and
// address -> "function+0xoff/0xsize [module]". Root (with kptr_restrict <= 1) sees
// real addresses; otherwise every address reads as zero, which is reported as such.

public struct KernelSymbol: Equatable, Sendable {
    public let name: String
    public let address: UInt64
    /// Up to the next symbol's address (kallsyms has no sizes).
    public let size: UInt64
    public let type: Character
    public let module: String?

    public var isText: Bool { type == "t" || type == "T" }
}

public struct Kallsyms: Sendable {
    /// Sorted by address.
    public let symbols: [KernelSymbol]

    public static let defaultPath = "/proc/kallsyms"

    public init(path: String = Kallsyms.defaultPath) throws(ELFError) {
        let bytes = try readWholeFile(path)
        try self.init(text: String(decoding: bytes, as: UTF8.self), source: path)
    }

    public init(text: String, source: String = "kallsyms") throws(ELFError) {
        var parsed: [(address: UInt64, type: Character, name: String, module: String?)] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 3, let address = UInt64(fields[0], radix: 16), let type = fields[1].first else {
                continue
            }
            var module: String? = nil
            if fields.count >= 4, fields[3].hasPrefix("["), fields[3].hasSuffix("]") {
                module = String(fields[3].dropFirst().dropLast())
            }
            parsed.append((address, type, String(fields[2]), module))
        }
        guard !parsed.isEmpty else { throw ELFError("\(source): no symbols") }
        if parsed.allSatisfy({ $0.address == 0 }) {
            throw ELFError("\(source): every address is 0; run as root (kernel.kptr_restrict must be 0 or 1)")
        }
        parsed.sort { $0.address < $1.address }
        var symbols: [KernelSymbol] = []
        symbols.reserveCapacity(parsed.count)
        for (i, p) in parsed.enumerated() {
            // The next symbol at a higher address bounds this one.
            var j = i + 1
            while j < parsed.count && parsed[j].address == p.address { j += 1 }
            let size = j < parsed.count ? parsed[j].address - p.address : 0
            symbols.append(KernelSymbol(name: p.name, address: p.address, size: size, type: p.type, module: p.module))
        }
        self.symbols = symbols
    }

    /// A text symbol by name (`name` or `module:name` is not needed: first text match).
    public func lookup(_ name: String) -> KernelSymbol? {
        symbols.first { $0.name == name && $0.isText } ?? symbols.first { $0.name == name }
    }

    /// The symbol containing `address`, and the offset into it.
    public func symbolize(_ address: UInt64) -> (symbol: KernelSymbol, offset: UInt64)? {
        var lo = 0
        var hi = symbols.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if symbols[mid].address <= address { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return nil }
        var i = lo - 1
        // Prefer a text symbol among aliases at the same address.
        var k = i
        while k > 0 && symbols[k - 1].address == symbols[i].address {
            k -= 1
            if symbols[k].isText && !symbols[i].isText { i = k }
        }
        let s = symbols[i]
        guard s.size == 0 || address - s.address < s.size else { return nil }
        return (s, address - s.address)
    }

    /// The function, offset and module of `address`: what a symbolizer starts from.
    public func location(_ address: UInt64) -> SymbolLocation? {
        guard let (s, off) = symbolize(address) else { return nil }
        return SymbolLocation(function: s.name, offset: off, size: s.size, module: s.module)
    }

    /// "name+0xoff/0xsize [module]", the kernel's own %pS format.
    public func describe(_ address: UInt64) -> String {
        location(address)?.kernelDescription ?? "0x" + String(address, radix: 16)
    }
}

extension SymbolLocation {
    /// "name+0xoff/0xsize [module]", as the kernel's %pS prints it.
    public var kernelDescription: String {
        var text = "\(function)+0x\(String(offset, radix: 16))/0x\(String(size, radix: 16))"
        if let module { text += " [\(module)]" }
        return text
    }
}
