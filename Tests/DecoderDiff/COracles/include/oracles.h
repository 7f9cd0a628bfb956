// SPDX-License-Identifier: GPL-2.0-only
//
// Zydis and Capstone behind one normalized result, for the differential test and the
// benchmark. Register names are lowercase strings (st(0) becomes st0), branch targets
// are absolute, and only fs/gs segment overrides are reported (the others do nothing
// in 64-bit mode).
#ifndef KDBT_ORACLES_H
#define KDBT_ORACLES_H
#include <stddef.h>
#include <stdint.h>

enum { ORACLE_OP_NONE = 0, ORACLE_OP_REG, ORACLE_OP_MEM, ORACLE_OP_IMM, ORACLE_OP_REL, ORACLE_OP_PTR };

/// Control-flow kinds shared by kdbt and both oracles.
enum {
    ORACLE_CF_NONE = 0, ORACLE_CF_JMP, ORACLE_CF_JMP_INDIRECT, ORACLE_CF_CALL, ORACLE_CF_CALL_INDIRECT,
    ORACLE_CF_JCC, ORACLE_CF_RET, ORACLE_CF_IRET, ORACLE_CF_SYSCALL, ORACLE_CF_SYSRET, ORACLE_CF_INTERRUPT
};

typedef struct {
    int type;            // ORACLE_OP_*
    const char *reg;     // ORACLE_OP_REG
    const char *seg;     // "fs", "gs" or ""
    const char *base;    // "" when none
    const char *index;   // "" when none
    int scale;
    int64_t disp;
    int64_t imm;         // immediate, or absolute branch target (ORACLE_OP_REL)
    int size;            // bits
    int access;          // 1 read, 2 write
    int agen;            // address computation only (lea, mib): no memory access
} oracle_op;

typedef struct {
    int length;
    const char *mnemonic;
    int count;           // visible operands (Zydis: the EVEX write mask left out)
    oracle_op ops[8];
    int cf;              // ORACLE_CF_*
    int hiddenMemory;    // Zydis: the instruction has hidden memory operands (string instructions)
    char text[96];       // the oracle's own disassembly
} oracle_insn;

/// 1 when the oracle decodes `buf`, else 0. `full`: operands too (Zydis only).
int oracle_zydis(const uint8_t *buf, size_t len, uint64_t address, oracle_insn *out, int full);
int oracle_capstone(const uint8_t *buf, size_t len, uint64_t address, oracle_insn *out);

/// Benchmark loops: linear sweep over `code` (1-byte resync), returns instructions decoded.
uint64_t bench_zydis_full(const uint8_t *code, size_t size, uint64_t address);
uint64_t bench_zydis_length(const uint8_t *code, size_t size, uint64_t address);
uint64_t bench_capstone_detail(const uint8_t *code, size_t size, uint64_t address);
#endif
