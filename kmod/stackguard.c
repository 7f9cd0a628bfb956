// SPDX-License-Identifier: GPL-2.0-only
/*
 * stackguard's kernel services (Sources/Engine/Tools/StackGuard.swift): which
 * stack a stack pointer is on, by the kernel's own get_stack_info (not exported:
 * found through kallsyms), and the call chain with each frame's stack pointer,
 * by the ORC unwinder.
 */
#include <linux/sched.h>
#include <asm/stacktrace.h>
#include <asm/unwind.h>
#include "kdbt_shim.h"

static int (*stack_info_of)(unsigned long *stack, struct task_struct *task, struct stack_info *info,
			    unsigned long *visit_mask);

int kdbt_stackguard_init(unsigned long (*lookup)(const char *name))
{
	stack_info_of = (void *)lookup("get_stack_info");
	return 0;
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
