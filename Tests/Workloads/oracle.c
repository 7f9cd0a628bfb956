// SPDX-License-Identifier: GPL-2.0-only
//
// The independent instruction count for inscount: run a function natively in a
// forked child and single-step it with ptrace, counting retired instructions.
#define _GNU_SOURCE
#include "workloads.h"
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <asm/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* kw_marked_call(fn, a, b, stack_top): on the stack ending at stack_top (16-byte
 * aligned), int3; call *fn; kw_marked_end: int3. fn starts with rsp = stack_top - 8.
 * The tracer counts single steps from the first trap up to kw_marked_end. */
long kw_marked_call(long (*fn)(long, long), long a, long b, void *stack_top);
extern char kw_marked_end[];
__asm__(
	".text\n"
	".globl kw_marked_call\n"
	".type kw_marked_call, @function\n"
	"kw_marked_call:\n"
	"	push %rbp\n"
	"	mov %rsp, %rbp\n"
	"	mov %rdi, %rax\n"
	"	mov %rsi, %rdi\n"
	"	mov %rdx, %rsi\n"
	"	mov %rcx, %rsp\n"
	"	int3\n"
	"	call *%rax\n"
	".globl kw_marked_end\n"
	"kw_marked_end:\n"
	"	int3\n"
	"	mov %rbp, %rsp\n"
	"	pop %rbp\n"
	"	ret\n");

/* kw_enter_at(enter, stack_top): calls the in-process runner's enter routine with
 * rsp placed so that the translated function starts with rsp = stack_top - 8, as
 * the native run does (enter builds the application frame 4 KiB below its caller,
 * 16-byte aligned). Paths through glibc can depend on stack alignment. */
uint64_t kw_enter_at(uint64_t (*enter)(void), void *stack_top);
__asm__(
	".text\n"
	".globl kw_enter_at\n"
	".type kw_enter_at, @function\n"
	"kw_enter_at:\n"
	"	push %rbp\n"
	"	mov %rsp, %rbp\n"
	"	lea 4112(%rsi), %rsp\n"
	"	call *%rdi\n"
	"	mov %rbp, %rsp\n"
	"	pop %rbp\n"
	"	ret\n");

/* The stack both runs use: same address in the parent and its forked children. */
static void *oracle_stack_top(void)
{
	static char *stack;
	const size_t bytes = 1 << 20;
	if (!stack) {
		stack = mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (stack == MAP_FAILED)
			return 0;
	}
	return stack + bytes - 8192;
}

long kw_ptrace_count(long (*fn)(long, long), long a, long b, long *result)
{
	void *stack_top = oracle_stack_top();
	if (!stack_top)
		return -1;
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	pid_t child = fork();
	if (child < 0)
		return -1;
	if (child == 0) {
		close(fds[0]);
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		raise(SIGSTOP);
		long r = kw_marked_call(fn, a, b, stack_top);
		if (write(fds[1], &r, sizeof r) != sizeof r)
			_exit(2);
		_exit(0);
	}
	close(fds[1]);
	int status;
	long steps = -1;
	struct user_regs_struct regs;
	if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status))
		goto out;
	/* Run to the first int3. */
	ptrace(PTRACE_CONT, child, 0, 0);
	if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status) || WSTOPSIG(status) != SIGTRAP)
		goto out;
	steps = 0;
	for (;;) {
		ptrace(PTRACE_GETREGS, child, 0, &regs);
		uint64_t before = regs.rip;
		if (before == (uint64_t)kw_marked_end)
			break;
		if (ptrace(PTRACE_SINGLESTEP, child, 0, 0) != 0 || waitpid(child, &status, 0) != child
		    || !WIFSTOPPED(status)) {
			steps = -1;
			goto out;
		}
		if (WSTOPSIG(status) != SIGTRAP) {
			/* A signal of the workload's own: deliver it on the next step. */
			steps = -1;
			goto out;
		}
		ptrace(PTRACE_GETREGS, child, 0, &regs);
		/* A rep-prefixed string instruction traps after every iteration with rip
		 * unchanged: it retires once, when rip moves on. */
		if (regs.rip != before)
			steps++;
	}
	/* The first step was the trampoline's call. Skip the second int3. */
	steps -= 1;
	regs.rip += 1;
	ptrace(PTRACE_SETREGS, child, 0, &regs);
	ptrace(PTRACE_CONT, child, 0, 0);
	if (read(fds[0], result, sizeof *result) != sizeof *result)
		steps = -1;
out:
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	close(fds[0]);
	return steps;
}

static long oracle_warm_up(long a, long b)
{
	return a + b;
}

long kw_count_pair(long (*fn)(long, long), long a, long b, uint64_t gs_base, uint64_t (*enter)(void),
		   const uint64_t *counter, long *native_result, long *translated_result, long *translated_count)
{
	/* One single-threaded child does both runs: it forks the ptrace-counted native
	 * run and waits for it (no allocation in between), then runs the translated
	 * call itself. Both therefore start from the same heap, on a stack at the same
	 * address, and no other thread of the test process can change them between. */
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	pid_t child = fork();
	if (child < 0)
		return -1;
	if (child == 0) {
		long out[4];
		close(fds[0]);
		/* A process's first traced child retires a few more instructions in glibc
		 * than later ones (seen on qsort and the string functions: +1 to +56);
		 * a small warm-up run makes the counted runs alike. */
		long warm;
		if (kw_ptrace_count(oracle_warm_up, 1, 0, &warm) < 0)
			_exit(2);
		out[0] = kw_ptrace_count(fn, a, b, &out[1]);
		int inner[2];
		if (pipe(inner) != 0)
			_exit(2);
		pid_t g2 = fork();
		if (g2 == 0) {
			long r[2];
			syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)gs_base);
			r[0] = (long)kw_enter_at(enter, oracle_stack_top());
			r[1] = (long)*counter;
			if (write(inner[1], r, sizeof r) != sizeof r)
				_exit(2);
			_exit(0);
		}
		if (read(inner[0], &out[2], 2 * sizeof(long)) != 2 * sizeof(long))
			_exit(2);
		if (write(fds[1], out, sizeof out) != sizeof out)
			_exit(2);
		_exit(0);
	}
	close(fds[1]);
	long in[4];
	long oracle = -1;
	if (read(fds[0], in, sizeof in) == sizeof in) {
		oracle = in[0];
		*native_result = in[1];
		*translated_result = in[2];
		*translated_count = in[3];
	}
	int status;
	waitpid(child, &status, 0);
	close(fds[0]);
	return oracle;
}
