// SPDX-License-Identifier: GPL-2.0-only
//
// The independent instruction count for inscount: run a function natively in a
// forked child and single-step it with ptrace, counting retired instructions.
#define _GNU_SOURCE
#include "workloads.h"
#include <signal.h>
#include <stdint.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <asm/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* kw_marked_call(fn, a, b): int3; call *fn; kw_marked_end: int3. The tracer counts
 * single steps from the first trap up to kw_marked_end. */
long kw_marked_call(long (*fn)(long, long), long a, long b);
extern char kw_marked_end[];
__asm__(
	".text\n"
	".globl kw_marked_call\n"
	".type kw_marked_call, @function\n"
	"kw_marked_call:\n"
	"	push %rbx\n"
	"	mov %rdi, %rax\n"
	"	mov %rsi, %rdi\n"
	"	mov %rdx, %rsi\n"
	"	int3\n"
	"	call *%rax\n"
	".globl kw_marked_end\n"
	"kw_marked_end:\n"
	"	int3\n"
	"	pop %rbx\n"
	"	ret\n");

long kw_ptrace_count(long (*fn)(long, long), long a, long b, long *result)
{
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
		long r = kw_marked_call(fn, a, b);
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

long kw_count_pair(long (*fn)(long, long), long a, long b, uint64_t gs_base, uint64_t (*enter)(void),
		   const uint64_t *counter, long *native_result, long *translated_result, long *translated_count)
{
	/* One single-threaded child does both runs: it forks the ptrace-counted native
	 * run and waits for it (no allocation in between), then runs the translated
	 * call itself. Both therefore start from the same heap, and no other thread of
	 * the test process can change it between them. */
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	pid_t child = fork();
	if (child < 0)
		return -1;
	if (child == 0) {
		long out[4];
		close(fds[0]);
		out[0] = kw_ptrace_count(fn, a, b, &out[1]);
		syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)gs_base);
		out[2] = (long)enter();
		out[3] = (long)*counter;
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
