// SPDX-License-Identifier: GPL-2.0-only
//
// What report rendering needs from a symbolizer: a kernel address, already resolved
// through kallsyms to function+offset [module], turned into source frames. The
// DWARF implementation (libdw) lives in the Symbolizer library; rendering only sees
// this interface, so it is tested without debug files.

/// One source-level frame. For an address inside inlined code the symbolizer
/// returns several: the innermost inlined function first (`inlined` true), the
/// function that contains the machine code last (`inlined` false).
public struct SourceFrame: Equatable, Sendable {
    public var function: String
    public var file: String?
    public var line: Int?
    public var column: Int?
    public var inlined: Bool

    public init(function: String, file: String?, line: Int?, column: Int? = nil, inlined: Bool) {
        self.function = function
        self.file = file
        self.line = line
        self.column = column
        self.inlined = inlined
    }
}

/// A code location as kallsyms names it.
public struct SymbolLocation: Equatable, Sendable {
    /// Function name as in kallsyms (no `.cold`/`.isra` stripping).
    public var function: String
    /// Bytes from the function's start.
    public var offset: UInt64
    /// Kallsyms' size bound of the function (next symbol minus this one).
    public var size: UInt64
    /// Module name, nil for vmlinux.
    public var module: String?

    public init(function: String, offset: UInt64, size: UInt64, module: String?) {
        self.function = function
        self.offset = offset
        self.size = size
        self.module = module
    }
}

/// Resolves locations to source frames. `isReturnAddress` is true for every frame
/// of a call trace but the first: the call instruction is just before the return
/// address, so the symbolizer looks up offset - 1 to name the call's line.
public protocol FrameSymbolizing {
    /// Source frames for `location`, innermost first; empty when no debug
    /// information covers it.
    func sourceFrames(for location: SymbolLocation, isReturnAddress: Bool) -> [SourceFrame]
    /// Why nothing in `module` (nil: vmlinux) can be symbolized, or nil when it can.
    func unavailableReason(module: String?) -> String?
}

extension FrameSymbolizing {
    public func unavailableReason(module: String?) -> String? { nil }
}
