// SPDX-License-Identifier: GPL-2.0-only
#define _GNU_SOURCE
#include "kdbt_sys.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <asm/prctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

int kdbt_sys_ioctl(int fd, unsigned long request, void *arg)
{
	return ioctl(fd, request, arg) < 0 ? -errno : 0;
}

int kdbt_sys_ioctl_raw(int fd, unsigned long request, unsigned long arg)
{
	return ioctl(fd, request, arg) < 0 ? -errno : 0;
}

int kdbt_sys_open_device(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

uint64_t kdbt_sys_get_gs_base(void)
{
	unsigned long base = 0;
	syscall(SYS_arch_prctl, ARCH_GET_GS, &base);
	return base;
}

int kdbt_sys_set_gs_base(uint64_t base)
{
	return syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)base) < 0 ? -errno : 0;
}

long kdbt_sys_read_own_memory(void *dst, uint64_t addr, long n)
{
	long done = 0;

	/* One page at a time: process_vm_readv stops at the first bad iovec only
	 * when the failure is on an iovec boundary. */
	while (done < n) {
		uint64_t a = addr + done;
		long chunk = 4096 - (long)(a & 4095);
		struct iovec local, remote;
		ssize_t got;

		if (chunk > n - done)
			chunk = n - done;
		local.iov_base = (char *)dst + done;
		local.iov_len = chunk;
		remote.iov_base = (void *)a;
		remote.iov_len = chunk;
		got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
		if (got <= 0)
			break;
		done += got;
		if (got < chunk)
			break;
	}
	return done;
}

void *kdbt_sys_map_code_near(long bytes, uint64_t near)
{
	const uint64_t step = 64UL << 20;
	uint64_t base = near & ~(uint64_t)0xFFFFF;

	/* Walk outwards from `near`, below first (heap and stacks grow elsewhere). */
	for (uint64_t d = step; d < (1UL << 30); d += step) {
		for (int side = 0; side < 2; side++) {
			uint64_t hint = side == 0 ? base - d : base + d;
			void *p;

			if (side == 0 && base < d)
				continue;
			p = mmap((void *)hint, bytes, PROT_READ | PROT_WRITE | PROT_EXEC,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
			if (p != MAP_FAILED)
				return p;
		}
	}
	return NULL;
}

long kdbt_sys_xsave_size(void)
{
	unsigned a, b, c, d;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0xD), "c"(0));
	return b;
}

void *kdbt_sys_map_anonymous(long bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void *kdbt_sys_map_anonymous_low(long bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	return p == MAP_FAILED ? kdbt_sys_map_anonymous(bytes) : p;
}

long kdbt_sys_syscall6(long number, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6)
{
	long ret;
	register uint64_t r10 __asm__("r10") = a4;
	register uint64_t r8 __asm__("r8") = a5;
	register uint64_t r9 __asm__("r9") = a6;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(number), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

void kdbt_sys_exit_thread(int code)
{
	for (;;)
		kdbt_sys_syscall6(SYS_exit, (uint64_t)code, 0, 0, 0, 0, 0);
}

void kdbt_sys_exit_group(int code)
{
	for (;;)
		kdbt_sys_syscall6(SYS_exit_group, (uint64_t)code, 0, 0, 0, 0, 0);
}

/* rdi flags, rsi stack, rdx parent_tid, rcx child_tid, r8 tls, r9 context,
 * 8(%rsp) resume. rbx and r12 carry context and resume into the child. */
__asm__(
	".text\n"
	".globl kdbt_sys_clone_thread\n"
	".type kdbt_sys_clone_thread, @function\n"
	"kdbt_sys_clone_thread:\n"
	"	push %rbx\n"
	"	push %r12\n"
	"	mov %r9, %rbx\n"
	"	mov 24(%rsp), %r12\n"
	"	mov %rcx, %r10\n"
	"	mov $56, %eax\n"
	"	syscall\n"
	"	test %rax, %rax\n"
	"	jz 1f\n"
	"	pop %r12\n"
	"	pop %rbx\n"
	"	ret\n"
	"1:\n"
	"	mov $158, %eax\n"
	"	mov $0x1001, %edi\n"
	"	mov %rbx, %rsi\n"
	"	syscall\n"
	"	jmp *%r12\n");

__asm__(
	".text\n"
	".globl kdbt_sys_enter_handler\n"
	".type kdbt_sys_enter_handler, @function\n"
	"kdbt_sys_enter_handler:\n"
	"	mov %rdi, %rsp\n"
	"	mov %rsi, %rdi\n"
	"	mov %rdx, %rsi\n"
	"	mov %rcx, %rdx\n"
	"	xor %eax, %eax\n"
	"	jmp *%r8\n"
	".globl kdbt_sys_restorer\n"
	"kdbt_sys_restorer:\n"
	"	mov $15, %eax\n"
	"	syscall\n"
	"	ud2\n"
	".globl kdbt_sys_sigreturn\n"
	".type kdbt_sys_sigreturn, @function\n"
	"kdbt_sys_sigreturn:\n"
	"	mov %rdi, %rsp\n"
	"	mov $15, %eax\n"
	"	syscall\n"
	"	ud2\n");

extern char kdbt_sys_restorer[];
void *kdbt_sys_restorer_address(void)
{
	return kdbt_sys_restorer;
}
