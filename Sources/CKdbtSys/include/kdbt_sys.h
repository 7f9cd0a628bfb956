// SPDX-License-Identifier: GPL-2.0-only
// ioctl(2) is variadic, so Swift cannot call it directly: a fixed-arity wrapper.
#ifndef KDBT_SYS_H
#define KDBT_SYS_H
#include <stdint.h>

/// ioctl(fd, request, arg) with a pointer argument. Returns 0 or -errno.
int kdbt_sys_ioctl(int fd, unsigned long request, void *arg);
/// ioctl with an integer argument (used to pass raw, possibly bad, addresses).
int kdbt_sys_ioctl_raw(int fd, unsigned long request, unsigned long arg);
/// open(path, O_RDWR | O_CLOEXEC). Returns fd or -errno.
int kdbt_sys_open_device(const char *path);
/// The calling thread's GS base (arch_prctl ARCH_GET_GS / ARCH_SET_GS).
uint64_t kdbt_sys_get_gs_base(void);
int kdbt_sys_set_gs_base(uint64_t base);
/// Copies up to n bytes of this process's memory at addr without faulting
/// (process_vm_readv on itself); returns the bytes copied before the first
/// unreadable page.
long kdbt_sys_read_own_memory(void *dst, uint64_t addr, long n);
/// RWX anonymous memory of `bytes` at an address within +-1 GiB of `near`, or NULL.
void *kdbt_sys_map_code_near(long bytes, uint64_t near);
/// Bytes XSAVE writes for the features the OS enabled (CPUID 0xD, ECX=0: EBX).
long kdbt_sys_xsave_size(void);
/// Anonymous read-write memory, or NULL.
void *kdbt_sys_map_anonymous(long bytes);
/// Zeroed read-write memory in the low 2 GiB when there is room (MAP_32BIT), so
/// emitted code can address it with an absolute disp32; elsewhere otherwise.
void *kdbt_sys_map_anonymous_low(long bytes);
/// Raw system calls that must not go through libc's wrappers (which may run
/// thread-exit handlers or touch errno).
long kdbt_sys_syscall6(long number, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6);
__attribute__((noreturn)) void kdbt_sys_exit_thread(int code);
__attribute__((noreturn)) void kdbt_sys_exit_group(int code);
/// clone(flags, stack, parent_tid, child_tid, tls): in the child, sets the GS base
/// to `context` and jumps to `resume` (a translator routine that loads the
/// application state from the context). Returns the child's tid or -errno.
long kdbt_sys_clone_thread(uint64_t flags, uint64_t stack, uint64_t parent_tid, uint64_t child_tid,
			   uint64_t tls, uint64_t context, uint64_t resume);
/// Jumps to `entry` (a translated signal handler) with rsp = frame (the kernel's
/// rt_sigframe, return address first) and the handler's three arguments.
__attribute__((noreturn)) void kdbt_sys_enter_handler(uint64_t frame, long sig, void *info, void *uc, uint64_t entry);
/// A signal restorer (mov $15, %eax; syscall) for the host's own handlers.
void *kdbt_sys_restorer_address(void);
/// rt_sigreturn with rsp = `ucontext` (as after the handler's ret).
__attribute__((noreturn)) void kdbt_sys_sigreturn(uint64_t ucontext);
#endif
