// SPDX-License-Identifier: GPL-2.0-only
//
// Zydis 4.0 and Capstone 4.0 wrappers: see oracles.h.
#include "oracles.h"
#include <Zydis/Zydis.h>
#include <capstone/capstone.h>
#include <stdio.h>
#include <string.h>

static ZydisDecoder zdec;
static int zinit;

static void zydis_init(void) {
    if (zinit) return;
    ZydisDecoderInit(&zdec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    zinit = 1;
}

static const char *zreg(ZydisRegister r) { return r == ZYDIS_REGISTER_NONE ? "" : ZydisRegisterGetString(r); }

static const char *fsgs(const char *name) {
    if (!name) return "";
    if (!strcmp(name, "fs")) return "fs";
    if (!strcmp(name, "gs")) return "gs";
    return "";
}

int oracle_zydis(const uint8_t *buf, size_t len, uint64_t address, oracle_insn *out, int full) {
    zydis_init();
    ZydisDecodedInstruction insn;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    out->count = 0;
    out->cf = ORACLE_CF_NONE;
    out->hiddenMemory = 0;
    out->text[0] = 0;
    if (!full) {
        if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&zdec, NULL, buf, len, &insn))) return 0;
        out->length = insn.length;
        out->mnemonic = ZydisMnemonicGetString(insn.mnemonic);
        return 1;
    }
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&zdec, buf, len, &insn, ops))) return 0;
    out->length = insn.length;
    out->mnemonic = ZydisMnemonicGetString(insn.mnemonic);
    int n = 0;
    for (int i = 0; i < insn.operand_count; i++) {
        const ZydisDecodedOperand *z = &ops[i];
        if (i >= insn.operand_count_visible) {
            if (z->type == ZYDIS_OPERAND_TYPE_MEMORY && z->mem.type == ZYDIS_MEMOP_TYPE_MEM
                && z->mem.base != ZYDIS_REGISTER_RSP && z->mem.base != ZYDIS_REGISTER_ESP) out->hiddenMemory = 1;
            continue;
        }
        if (z->encoding == ZYDIS_OPERAND_ENCODING_MASK) continue;  // EVEX {k}: kdbt keeps it in evexMask
        if (n == 8) break;
        oracle_op *o = &out->ops[n++];
        memset(o, 0, sizeof *o);
        o->reg = o->seg = o->base = o->index = "";
        o->size = z->size;
        o->access = ((z->actions & ZYDIS_OPERAND_ACTION_MASK_READ) ? 1 : 0)
                  | ((z->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) ? 2 : 0);
        switch (z->type) {
        case ZYDIS_OPERAND_TYPE_REGISTER:
            o->type = ORACLE_OP_REG; o->reg = zreg(z->reg.value); break;
        case ZYDIS_OPERAND_TYPE_MEMORY:
            o->type = ORACLE_OP_MEM;
            o->seg = fsgs(zreg(z->mem.segment));
            o->base = zreg(z->mem.base);
            o->index = zreg(z->mem.index);
            o->scale = z->mem.scale;
            o->disp = z->mem.disp.has_displacement ? z->mem.disp.value : 0;
            o->agen = z->mem.type == ZYDIS_MEMOP_TYPE_AGEN || z->mem.type == ZYDIS_MEMOP_TYPE_MIB;
            break;
        case ZYDIS_OPERAND_TYPE_IMMEDIATE:
            if (z->imm.is_relative) {
                ZyanU64 t = 0;
                ZydisCalcAbsoluteAddress(&insn, z, address, &t);
                o->type = ORACLE_OP_REL; o->imm = (int64_t)t;
            } else {
                o->type = ORACLE_OP_IMM;
                o->imm = z->imm.is_signed ? z->imm.value.s : (int64_t)z->imm.value.u;
            }
            break;
        case ZYDIS_OPERAND_TYPE_POINTER: o->type = ORACLE_OP_PTR; break;
        default: o->type = ORACLE_OP_NONE;
        }
    }
    out->count = n;
    int direct = insn.operand_count_visible > 0 && ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE;
    switch (insn.meta.category) {
    case ZYDIS_CATEGORY_COND_BR: out->cf = ORACLE_CF_JCC; break;
    case ZYDIS_CATEGORY_UNCOND_BR: out->cf = direct ? ORACLE_CF_JMP : ORACLE_CF_JMP_INDIRECT; break;
    case ZYDIS_CATEGORY_CALL: out->cf = direct ? ORACLE_CF_CALL : ORACLE_CF_CALL_INDIRECT; break;
    case ZYDIS_CATEGORY_RET:
        out->cf = (insn.mnemonic == ZYDIS_MNEMONIC_IRET || insn.mnemonic == ZYDIS_MNEMONIC_IRETD
                   || insn.mnemonic == ZYDIS_MNEMONIC_IRETQ) ? ORACLE_CF_IRET : ORACLE_CF_RET;
        break;
    case ZYDIS_CATEGORY_SYSCALL: out->cf = ORACLE_CF_SYSCALL; break;
    case ZYDIS_CATEGORY_SYSRET: out->cf = ORACLE_CF_SYSRET; break;
    case ZYDIS_CATEGORY_INTERRUPT: out->cf = ORACLE_CF_INTERRUPT; break;
    default: break;
    }
    return 1;
}

static csh cs;
static cs_insn *csi;

static int capstone_init(void) {
    if (csi) return 1;
    if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK) return 0;
    cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
    csi = cs_malloc(cs);
    return csi != NULL;
}

static const char *csreg(unsigned r) {
    if (r == X86_REG_INVALID) return "";
    switch (r) {  // st(0) .. st(7) -> st0 .. st7
    case X86_REG_ST0: return "st0";
    case X86_REG_ST1: return "st1";
    case X86_REG_ST2: return "st2";
    case X86_REG_ST3: return "st3";
    case X86_REG_ST4: return "st4";
    case X86_REG_ST5: return "st5";
    case X86_REG_ST6: return "st6";
    case X86_REG_ST7: return "st7";
    }
    const char *s = cs_reg_name(cs, r);
    return s ? s : "";
}

int oracle_capstone(const uint8_t *buf, size_t len, uint64_t address, oracle_insn *out) {
    if (!capstone_init()) return 0;
    const uint8_t *code = buf;
    size_t size = len;
    uint64_t addr = address;
    out->count = 0;
    out->cf = ORACLE_CF_NONE;
    out->hiddenMemory = 0;
    out->text[0] = 0;
    if (!cs_disasm_iter(cs, &code, &size, &addr, csi)) return 0;
    out->length = csi->size;
    out->mnemonic = cs_insn_name(cs, csi->id);
    snprintf(out->text, sizeof out->text, "%s %s", csi->mnemonic, csi->op_str);
    const cs_x86 *x = &csi->detail->x86;
    int n = 0;
    int branch = cs_insn_group(cs, csi, CS_GRP_JUMP) || cs_insn_group(cs, csi, CS_GRP_CALL);
    for (int i = 0; i < x->op_count && n < 8; i++) {
        const cs_x86_op *c = &x->operands[i];
        oracle_op *o = &out->ops[n++];
        memset(o, 0, sizeof *o);
        o->reg = o->seg = o->base = o->index = "";
        o->size = c->size * 8;
        o->access = c->access & 3;
        switch (c->type) {
        case X86_OP_REG: o->type = ORACLE_OP_REG; o->reg = csreg(c->reg); break;
        case X86_OP_IMM:
            o->type = branch && cs_insn_group(cs, csi, CS_GRP_BRANCH_RELATIVE) ? ORACLE_OP_REL : ORACLE_OP_IMM;
            o->imm = c->imm;
            break;
        case X86_OP_MEM:
            o->type = ORACLE_OP_MEM;
            o->seg = fsgs(csreg(c->mem.segment));
            o->base = csreg(c->mem.base);
            o->index = csreg(c->mem.index);
            o->scale = c->mem.index == X86_REG_INVALID ? 0 : c->mem.scale;
            o->disp = c->mem.disp;
            o->agen = csi->id == X86_INS_LEA;
            break;
        default: o->type = ORACLE_OP_NONE;
        }
    }
    out->count = n;
    int direct = x->op_count > 0 && x->operands[0].type == X86_OP_IMM;
    switch (csi->id) {
    case X86_INS_SYSCALL: case X86_INS_SYSENTER: out->cf = ORACLE_CF_SYSCALL; return 1;
    case X86_INS_SYSRET: case X86_INS_SYSEXIT: out->cf = ORACLE_CF_SYSRET; return 1;
    case X86_INS_INT: case X86_INS_INT1: case X86_INS_INT3: case X86_INS_INTO: out->cf = ORACLE_CF_INTERRUPT; return 1;
    case X86_INS_JMP: case X86_INS_LJMP: out->cf = direct ? ORACLE_CF_JMP : ORACLE_CF_JMP_INDIRECT; return 1;
    default: break;
    }
    if (cs_insn_group(cs, csi, CS_GRP_IRET)) out->cf = ORACLE_CF_IRET;
    else if (cs_insn_group(cs, csi, CS_GRP_RET)) out->cf = ORACLE_CF_RET;
    else if (cs_insn_group(cs, csi, CS_GRP_CALL)) out->cf = direct ? ORACLE_CF_CALL : ORACLE_CF_CALL_INDIRECT;
    else if (cs_insn_group(cs, csi, CS_GRP_JUMP)) out->cf = ORACLE_CF_JCC;
    return 1;
}

uint64_t bench_zydis_full(const uint8_t *code, size_t size, uint64_t address) {
    zydis_init();
    ZydisDecodedInstruction insn;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    uint64_t count = 0;
    size_t off = 0;
    while (off < size) {
        if (ZYAN_SUCCESS(ZydisDecoderDecodeFull(&zdec, code + off, size - off, &insn, ops))) off += insn.length;
        else off += 1;
        count++;
    }
    (void)address;
    return count;
}

uint64_t bench_zydis_length(const uint8_t *code, size_t size, uint64_t address) {
    zydis_init();
    ZydisDecodedInstruction insn;
    uint64_t count = 0;
    size_t off = 0;
    while (off < size) {
        if (ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&zdec, NULL, code + off, size - off, &insn))) off += insn.length;
        else off += 1;
        count++;
    }
    (void)address;
    return count;
}

uint64_t bench_capstone_detail(const uint8_t *code, size_t size, uint64_t address) {
    if (!capstone_init()) return 0;
    uint64_t count = 0;
    const uint8_t *p = code;
    size_t left = size;
    uint64_t addr = address;
    while (left > 0) {
        if (!cs_disasm_iter(cs, &p, &left, &addr, csi)) { p++; left--; addr++; }
        count++;
    }
    return count;
}
