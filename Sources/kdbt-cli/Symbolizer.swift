// SPDX-License-Identifier: GPL-2.0-only
//
// The seam between `kdbt report --symbolize` and the DWARF symbolizer. Rendering
// only needs a FrameSymbolizing; which one exists depends on the build.

import KdbtClient

/// What `--symbolize` gets: a symbolizer, or why there is none (the report then
/// shows kallsyms' function+offset and says so).
enum SymbolizerChoice {
    case available(any FrameSymbolizing)
    case unavailable(reason: String)
}

/// The symbolizer for `report --symbolize`: debug information of `vmlinux` (nil:
/// the symbolizer's default search) and of the modules under `modules`.
///
/// The libdw symbolizer plugs in here, once kdbt-cli depends on the Symbolizer
/// library (`import Symbolizer`), by replacing the body with:
///
///     do { return .available(try DwarfSymbolizer(vmlinux: vmlinux, modules: modules)) } catch { return .unavailable(reason: "\(error)") }
func makeFrameSymbolizer(vmlinux: String?, modules: String?) -> SymbolizerChoice {
    .unavailable(reason: "this kdbt is built without a DWARF symbolizer")
}
