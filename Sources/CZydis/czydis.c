// SPDX-License-Identifier: GPL-2.0-only
//
// The formatter is Zydis' default Intel style with three properties changed, which is
// exactly kdbt's printer style:
//   FORCE_SIZE            every memory operand says its size (`qword ptr`), not only
//                         ambiguous ones;
//   HEX_UPPERCASE = 0     `0xffffffff81000000`, as the kernel prints addresses;
//   FORCE_RELATIVE_RIPREL `[rip+0x10]`, not the resolved address.

#include "czydis.h"

#include <Zydis/Zydis.h>
#include <string.h>

int czydis_format_intel(const uint8_t *bytes, size_t length, uint64_t address,
                        char *out, size_t out_size)
{
    ZydisDecoder decoder;
    ZydisFormatter formatter;
    ZydisDecodedInstruction insn;
    ZydisDecodedOperand operands[ZYDIS_MAX_OPERAND_COUNT];

    if (out_size == 0)
        return 0;
    if (!ZYAN_SUCCESS(ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64)) ||
        !ZYAN_SUCCESS(ZydisFormatterInit(&formatter, ZYDIS_FORMATTER_STYLE_INTEL)) ||
        !ZYAN_SUCCESS(ZydisFormatterSetProperty(&formatter, ZYDIS_FORMATTER_PROP_FORCE_SIZE, ZYAN_TRUE)) ||
        !ZYAN_SUCCESS(ZydisFormatterSetProperty(&formatter, ZYDIS_FORMATTER_PROP_HEX_UPPERCASE, ZYAN_FALSE)) ||
        !ZYAN_SUCCESS(ZydisFormatterSetProperty(&formatter, ZYDIS_FORMATTER_PROP_FORCE_RELATIVE_RIPREL, ZYAN_TRUE)))
        goto bad;
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder, bytes, length, &insn, operands)))
        goto bad;
    if (!ZYAN_SUCCESS(ZydisFormatterFormatInstruction(&formatter, &insn, operands,
                                                      insn.operand_count_visible, out, out_size,
                                                      address, ZYAN_NULL)))
        goto bad;
    return insn.length;
bad:
    strncpy(out, "(bad)", out_size - 1);
    out[out_size - 1] = 0;
    return 0;
}
