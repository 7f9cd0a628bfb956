// SPDX-License-Identifier: GPL-2.0-only
/*
 * stackguard's kernel services (Sources/Engine/Tools/StackGuard.swift): which
 * stack a stack pointer is on, by the kernel's own get_stack_info (not exported:
 * found through kallsyms), the call chain with each frame's stack pointer, by
 * the ORC unwinder, the frame a function has built at a code address, from the
 * ORC tables, and heapcheck's allocation stacks, by a memoized walk of the same
 * tables.
 */
#include <linux/module.h>
#include <linux/objtool.h>
#include <linux/sched.h>
#include <asm/orc_types.h>
#include <asm/stacktrace.h>
#include <asm/unwind.h>
#include "kdbt_shim.h"

static int (*stack_info_of)(unsigned long *stack, struct task_struct *task, struct stack_info *info,
			    unsigned long *visit_mask);
/* vmlinux's text and ORC tables (section bounds), and the module lookup, none
 * exported: found through kallsyms. */
static unsigned long text_start, text_end;
static int *orc_ip_start, *orc_ip_stop;
static struct orc_entry *orc_start;
static struct module *(*module_of)(unsigned long address);

int kdbt_stackguard_init(unsigned long (*lookup)(const char *name))
{
	stack_info_of = (void *)lookup("get_stack_info");
	orc_ip_start = (int *)lookup("__start_orc_unwind_ip");
	orc_ip_stop = (int *)lookup("__stop_orc_unwind_ip");
	orc_start = (struct orc_entry *)lookup("__start_orc_unwind");
	text_start = lookup("_stext");
	text_end = lookup("_etext");
	module_of = (void *)lookup("__module_address");
	if (!orc_ip_start || !orc_ip_stop || !orc_start || orc_ip_stop <= orc_ip_start || !text_start)
		orc_ip_start = orc_ip_stop = NULL;
	return 0;
}

/* The entry covering ip in a sorted table of self-relative addresses: the last
 * one at or below ip. */
static struct orc_entry *orc_search(int *ips, struct orc_entry *entries, unsigned int count, unsigned long ip)
{
	unsigned int low = 0, high = count;

	if (!count || (unsigned long)ips + *ips > ip)
		return NULL;
	while (high - low > 1) {
		unsigned int mid = low + (high - low) / 2;

		if ((unsigned long)&ips[mid] + ips[mid] <= ip)
			low = mid;
		else
			high = mid;
	}
	return &entries[low];
}

/* The ORC entry covering pc: vmlinux's tables, or its module's. */
static struct orc_entry *orc_entry_at(unsigned long pc)
{
	struct orc_entry *orc = NULL;
	struct module *mod;

	if (orc_ip_start && pc >= text_start && pc < text_end) {
		orc = orc_search(orc_ip_start, orc_start, orc_ip_stop - orc_ip_start, pc);
	} else if (module_of) {
		preempt_disable();
		mod = module_of(pc);
		if (mod && mod->arch.orc_unwind_ip && mod->arch.orc_unwind)
			orc = orc_search(mod->arch.orc_unwind_ip, mod->arch.orc_unwind, mod->arch.num_orcs, pc);
		preempt_enable();
	}
	return orc;
}

/* Bytes the function at pc has pushed or allocated since its entry (its return
 * address not counted), when ORC says its frame is a plain stack-pointer-based
 * one; -1 otherwise (unknown code, frame-pointer or register frames). */
int kdbt_sg_frame_bytes(u64 pc)
{
	struct orc_entry *orc = orc_entry_at(pc);

	if (!orc || orc->end || orc->type != UNWIND_HINT_TYPE_CALL || orc->sp_reg != ORC_REG_SP || orc->sp_offset < 8)
		return -1;
	return orc->sp_offset - 8;
}

/* An ORC entry packed for the memo below: sp_offset (bits 0-15), bp_offset
 * (16-31), bp_reg (32-35), sp_reg (36-39), type (40-41), end (42), found (43). */
#define RULE_FOUND (1ull << 43)
#define RULE_END (1ull << 42)
#define RULE_TYPE(r) ((unsigned int)((r) >> 40) & 3)
#define RULE_SP_REG(r) ((unsigned int)((r) >> 36) & 15)
#define RULE_BP_REG(r) ((unsigned int)((r) >> 32) & 15)
#define RULE_BP_OFFSET(r) ((s16)((r) >> 16))
#define RULE_SP_OFFSET(r) ((s16)(r))
#define RULE_BITS 44

static u64 orc_rule(unsigned long pc)
{
	struct orc_entry *orc = orc_entry_at(pc);

	if (!orc)
		return 0;
	return RULE_FOUND | (orc->end ? RULE_END : 0) | (u64)orc->type << 40 | (u64)orc->sp_reg << 36 |
	       (u64)orc->bp_reg << 32 | (u64)(u16)orc->bp_offset << 16 | (u16)orc->sp_offset;
}

/* vmlinux's rules by code address, direct-mapped on the address's low bits; the
 * word also holds the address's bits up to 31 (vmlinux's text lies in one 4 GiB
 * window), so a racing writer on another CPU cannot pair an address with
 * another's rule. Modules' rules are not kept: their text comes and goes. */
#define ORC_MEMO_BITS 12
static u64 orc_memo[1 << ORC_MEMO_BITS];

static u64 orc_rule_memo(unsigned long pc)
{
	u64 *slot, v, key = (pc & 0xffffffffull) >> ORC_MEMO_BITS << RULE_BITS;

	if (pc < text_start || pc >= text_end)
		return orc_rule(pc);
	slot = &orc_memo[pc & ((1 << ORC_MEMO_BITS) - 1)];
	v = READ_ONCE(*slot);
	if (v && (v & ~((1ull << RULE_BITS) - 1)) == key)
		return v & ((1ull << RULE_BITS) - 1);
	v = orc_rule(pc);
	WRITE_ONCE(*slot, key | v);
	return v;
}

/* Each stack word the walk's result depends on goes into reads (when not NULL;
 * at most *nreads of them, *nreads then the count, or -1 when they did not
 * fit), and STACK_READ_BP stands for the bp the walk started with, when it used
 * it: the same words and bp mean the same walk (heapcheck's memo of whole
 * stacks). */
#define STACK_READ_BP 1

static void note_read(u64 *reads, int *nreads, int max, u64 address)
{
	if (!reads || *nreads < 0)
		return;
	if (*nreads >= max)
		*nreads = -1;
	else
		reads[(*nreads)++] = address;
}

/* The call chain by ORC's rules alone, for what allocation stacks nearly always
 * are: calls from frames based on the stack or frame pointer, on one stack,
 * ending at the entry from user mode or at the end of a kernel thread's stack.
 * The chain the kernel's unwinder gives (kdbt_sg_capture_frames), at a memo
 * lookup per frame instead of a table search and its checks; -1 where a frame
 * needs the kernel's unwinder (a stack switch, an interrupted kernel context). */
static int orc_capture_frames(u64 pc, u64 sp, u64 bp, u64 *frames, int capacity, u64 *reads, int *nreads)
{
	struct stack_info info = {};
	unsigned long ip = pc, low, high;
	bool exact = true; /* ip is where execution is, not a return address */
	/* Where bp's value came from (the register, or a stack word): noted as
	 * read only when a frame's address is computed from it, since functions
	 * save bp as any callee-saved register, holding anything. */
	u64 bp_source = STACK_READ_BP;
	int max_reads = nreads ? *nreads : 0;
	int n = 0;

	if (nreads)
		*nreads = 0;

	/* Allocations run on the task's stack nearly always: its bounds without a
	 * call to get_stack_info. */
	low = (unsigned long)task_stack_page(current);
	high = low + THREAD_SIZE;
	if (sp < low || sp >= high) {
		if (!stack_info_of || stack_info_of((unsigned long *)sp, current, &info, NULL))
			return -1;
		low = (unsigned long)info.begin;
		high = (unsigned long)info.end;
	}
	frames[n++] = pc;
	while (n < capacity) {
		/* A return address may be the first byte after a call at a function's
		 * end: its caller's rule is the call's. */
		u64 rule = orc_rule_memo(exact ? ip : ip - 1);
		unsigned long cfa, saved_bp;

		if (!(rule & RULE_FOUND))
			return -1;
		if (rule & RULE_END)
			break;
		if (RULE_SP_REG(rule) == ORC_REG_SP)
			cfa = sp + RULE_SP_OFFSET(rule);
		else if (RULE_SP_REG(rule) == ORC_REG_BP) {
			if (bp_source) {
				note_read(reads, nreads, max_reads, bp_source);
				bp_source = 0; /* noted */
			}
			cfa = bp + RULE_SP_OFFSET(rule);
		} else
			return -1;
		if (RULE_TYPE(rule) == UNWIND_HINT_TYPE_REGS) {
			struct pt_regs *regs = (struct pt_regs *)cfa;

			if (cfa < low || cfa + sizeof(*regs) > high)
				return -1;
			note_read(reads, nreads, max_reads, (u64)&regs->cs);
			if (!user_mode(regs))
				return -1;
			break; /* the entry from user mode: the kernel's chain ends here */
		}
		if (RULE_TYPE(rule) != UNWIND_HINT_TYPE_CALL || cfa < low + 8 || cfa > high)
			return -1;
		if (RULE_BP_REG(rule) == ORC_REG_PREV_SP) {
			saved_bp = cfa + RULE_BP_OFFSET(rule);
			if (saved_bp < low || saved_bp + 8 > high)
				return -1;
			bp = *(unsigned long *)saved_bp;
			bp_source = saved_bp;
		} else if (RULE_BP_REG(rule) != ORC_REG_UNDEFINED) {
			return -1;
		}
		ip = *(unsigned long *)(cfa - 8);
		note_read(reads, nreads, max_reads, cfa - 8);
		sp = cfa;
		exact = false;
		frames[n++] = ip;
	}
	return n;
}

/* StackKind in Sources/Protocol/Findings.swift. */
enum { KIND_UNKNOWN, KIND_TASK, KIND_IRQ, KIND_EXCEPTION, KIND_ENTRY, KIND_SOFTIRQ };

u32 kdbt_sg_classify(u64 sp, u64 *base, u64 *size)
{
	struct stack_info info = {};

	*base = 0;
	*size = 0;
	if (!stack_info_of || stack_info_of((unsigned long *)sp, current, &info, NULL))
		return KIND_UNKNOWN;
	*base = (u64)info.begin;
	*size = (u64)info.end - (u64)info.begin;
	switch (info.type) {
	case STACK_TYPE_TASK:
		return KIND_TASK;
	case STACK_TYPE_IRQ:
		return KIND_IRQ;
	case STACK_TYPE_SOFTIRQ:
		return KIND_SOFTIRQ;
	case STACK_TYPE_ENTRY:
		return KIND_ENTRY;
	default:
		return info.type >= STACK_TYPE_EXCEPTION ? KIND_EXCEPTION : KIND_UNKNOWN;
	}
}

/* The call chain as the ORC unwinder walks it (translated code keeps native
 * return addresses on the stack, so this is the native chain): frames[0] = pc,
 * sps[0] = sp; then each caller's return address and, when sps is not NULL, the
 * stack pointer in that caller once the callee has returned. */
int kdbt_sg_capture_frames(u64 pc, u64 sp, u64 bp, u64 *frames, u64 *sps, int capacity)
{
	struct unwind_state state;
	struct pt_regs regs = {};
	int n = 0;

	if (capacity <= 0)
		return 0;
	frames[n] = pc;
	if (sps)
		sps[n] = sp;
	n++;
	regs.ip = pc;
	regs.sp = sp;
	regs.bp = bp;
	regs.cs = __KERNEL_CS;
	regs.ss = __KERNEL_DS;
	for (unwind_start(&state, current, &regs, NULL); !unwind_done(&state) && n < capacity;
	     unwind_next_frame(&state)) {
		unsigned long address = unwind_get_return_address(&state);

		if (!address)
			break;
		frames[n] = address;
		if (sps)
			sps[n] = state.sp;
		n++;
	}
	return n;
}

/* Stacks for heapcheck's records: the memoized ORC walk, or the kernel's
 * unwinder where that cannot follow (no reads then: *nreads -1). reads and
 * nreads as for orc_capture_frames, or NULL. */
int kdbt_sg_capture_stack(u64 pc, u64 sp, u64 bp, u64 *frames, int capacity, u64 *reads, int *nreads)
{
	int n;

	if (capacity <= 0) {
		if (nreads)
			*nreads = -1;
		return 0;
	}
	n = orc_capture_frames(pc, sp, bp, frames, capacity, reads, nreads);
	if (n >= 0)
		return n;
	if (nreads)
		*nreads = -1;
	return kdbt_sg_capture_frames(pc, sp, bp, frames, NULL, capacity);
}
