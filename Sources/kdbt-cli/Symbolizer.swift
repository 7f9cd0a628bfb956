// SPDX-License-Identifier: GPL-2.0-only
//
// The seam between `kdbt report --symbolize` and the DWARF symbolizer. Rendering
// only needs a FrameSymbolizing; which one exists depends on the build.

import KdbtClient
import Symbolizer

/// What `--symbolize` gets: a symbolizer, or why there is none (the report then
/// shows kallsyms' function+offset and says so).
enum SymbolizerChoice {
    case available(any FrameSymbolizing)
    case unavailable(reason: String)
}

/// The symbolizer for `report --symbolize`: debug information of `vmlinux` (nil:
/// kallsyms function+offset for the kernel itself) and of the modules under
/// `modules` (nil: /lib/modules/$(uname -r)).
func makeFrameSymbolizer(vmlinux: String?, modules: String?) -> SymbolizerChoice {
    let directories = modules.map { [$0] } ?? DwarfSymbolizer.defaultModuleDirectories
    return .available(DwarfSymbolizer(vmlinux: vmlinux, moduleDirectories: directories))
}
