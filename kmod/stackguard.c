// SPDX-License-Identifier: GPL-2.0-only
/*
 * stackguard's kernel services (Sources/Engine/Tools/StackGuard.swift): which
 * stack a stack pointer is on, by the kernel's own get_stack_info (not exported:
 * found through kallsyms), the call chain with each frame's stack pointer, by
 * the ORC unwinder, and the frame a function has built at a code address, from
 * the ORC tables.
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

/* Bytes the function at pc has pushed or allocated since its entry (its return
 * address not counted), when ORC says its frame is a plain stack-pointer-based
 * one; -1 otherwise (unknown code, frame-pointer or register frames). */
int kdbt_sg_frame_bytes(u64 pc)
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
	if (!orc || orc->end || orc->type != UNWIND_HINT_TYPE_CALL || orc->sp_reg != ORC_REG_SP || orc->sp_offset < 8)
		return -1;
	return orc->sp_offset - 8;
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
