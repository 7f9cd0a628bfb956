// SPDX-License-Identifier: GPL-2.0-only
//
// Zydis as the reference disassembler for kdbt's printer tests: one call decodes and
// formats one x86-64 instruction with Zydis' Intel formatter, configured the way
// kdbt's printer writes (see Sources/Engine/X86/Printer.swift).

#ifndef CZYDIS_H
#define CZYDIS_H

#include <stddef.h>
#include <stdint.h>

/// Decodes the instruction at `bytes` (64-bit mode) as if it lived at `address` and
/// writes its Intel text, NUL-terminated, to `out`. Returns the instruction's length,
/// or 0 when Zydis finds no valid instruction there (`out` is then "(bad)").
int czydis_format_intel(const uint8_t *bytes, size_t length, uint64_t address,
                        char *out, size_t out_size);

#endif
