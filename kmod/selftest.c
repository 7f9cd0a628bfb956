// SPDX-License-Identifier: GPL-2.0-only
/*
 * Translation self-test, the kernel side: built-in workloads (real kernel code:
 * lib/sort.c, vsnprintf, crc32, the slab allocator), and the host services the
 * Engine's translator needs in the kernel: executable memory within rel32 reach of
 * kernel text, reading code, the per-CPU translator context reached through %gs,
 * a dispatcher stack, preemption control. The flow is in Swift
 * (Sources/Engine/Kernel/KernelSelfTest.swift); requests are serialized by the
 * shim's mutex, so the state below has one user at a time.
 */
#include <linux/crc32.h>
#include <linux/kernel.h>
#include <linux/moduleloader.h>
#include <linux/percpu.h>
#include <linux/preempt.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <asm/cpufeature.h>
#include <asm/pgtable_types.h>

#include "kdbt_shim.h"

/* The translator context of each CPU; emitted code reaches it as %gs:offset. */
struct kdbt_context_area {
	u8 bytes[KDBT_CONTEXT_BYTES];
} __aligned(64);
static DEFINE_PER_CPU(struct kdbt_context_area, kdbt_context);

#define KDBT_SELFTEST_POOL_BYTES (8L << 20)
#define KDBT_CODE_POOL_MAX (256L << 20)
#define KDBT_DISPATCHER_STACK_BYTES (16UL << 10)
#define KDBT_SORT_MAX 4096

static void *(*vmalloc_range)(unsigned long size, unsigned long align, unsigned long start,
			      unsigned long end, gfp_t gfp_mask, pgprot_t prot, unsigned long vm_flags,
			      int node, const void *caller);
static u8 *code_pool;
static size_t code_pool_used;
static size_t code_pool_bytes;
static u8 *dispatcher_stack;
static u32 *sort_buffer;

int kdbt_selftest_init(unsigned long (*lookup)(const char *name))
{
	vmalloc_range = (void *)lookup("__vmalloc_node_range");
	if (!vmalloc_range) {
		pr_err("kdbt: __vmalloc_node_range not found in kallsyms\n");
		return -ENOENT;
	}
	return 0;
}

/*
 * Executable memory in the module area: within rel32 reach of kernel and module
 * text, so copied branches and RIP-relative operands keep their encoding
 * (LINUX-ENTRY.md section 5). Allocated up front: translation happens with
 * preemption or interrupts off, where vmalloc may not sleep. One pool at a time
 * (the self-test and attach exclude each other).
 */
long kdbt_host_code_pool_create(long bytes)
{
	if (code_pool || bytes <= 0 || bytes > KDBT_CODE_POOL_MAX)
		return -EINVAL;
	code_pool = vmalloc_range(bytes, PAGE_SIZE, MODULES_VADDR, MODULES_END, GFP_KERNEL, PAGE_KERNEL_EXEC,
				  VM_FLUSH_RESET_PERMS, NUMA_NO_NODE, __builtin_return_address(0));
	if (!code_pool)
		return -ENOMEM;
	code_pool_bytes = bytes;
	code_pool_used = 0;
	return 0;
}

/* Zeroed data memory in the module area, where code addresses it absolutely
 * (disp32): heapcheck's flat shadow. NULL when memory is short (no OOM kill:
 * heapcheck then keeps its shadow in chunks). */
void *kdbt_host_module_data_alloc(long bytes)
{
	if (bytes <= 0)
		return NULL;
	return vmalloc_range(bytes, PAGE_SIZE, MODULES_VADDR, MODULES_END,
			     GFP_KERNEL | __GFP_ZERO | __GFP_NORETRY | __GFP_NOWARN, PAGE_KERNEL, 0,
			     NUMA_NO_NODE, __builtin_return_address(0));
}

void kdbt_host_module_data_free(void *p)
{
	vfree(p);
}

void kdbt_host_code_pool_destroy(void)
{
	vfree(code_pool); /* VM_FLUSH_RESET_PERMS: permissions reset, TLB flushed */
	code_pool = NULL;
	code_pool_bytes = 0;
}

u64 kdbt_host_code_pool_base(void)
{
	return (u64)code_pool;
}

long kdbt_host_code_pool_bytes(void)
{
	return code_pool_bytes;
}

long kdbt_host_selftest_begin(void)
{
	long err = kdbt_host_code_pool_create(KDBT_SELFTEST_POOL_BYTES);

	if (err)
		return err;
	dispatcher_stack = kzalloc(KDBT_DISPATCHER_STACK_BYTES, GFP_KERNEL);
	sort_buffer = kmalloc_array(KDBT_SORT_MAX, sizeof(u32), GFP_KERNEL);
	if (!dispatcher_stack || !sort_buffer) {
		kdbt_host_selftest_end();
		return -ENOMEM;
	}
	return 0;
}

void kdbt_host_selftest_end(void)
{
	kdbt_host_code_pool_destroy();
	kfree(dispatcher_stack);
	kfree(sort_buffer);
	dispatcher_stack = NULL;
	sort_buffer = NULL;
}

void *kdbt_host_code_alloc(long bytes, u64 near)
{
	size_t aligned = ALIGN((size_t)bytes, 64);
	void *p;

	(void)near; /* the whole pool is within reach of all kernel text */
	if (bytes <= 0 || !code_pool || aligned > code_pool_bytes - code_pool_used)
		return NULL;
	p = code_pool + code_pool_used;
	code_pool_used += aligned;
	return p;
}

/* Copies up to n bytes of code at addr; returns how many were readable. */
long kdbt_host_read_code(void *dst, u64 addr, long n)
{
	long done = 0;

	while (done < n) {
		u64 at = addr + done;
		long chunk = min_t(long, n - done, PAGE_SIZE - (at & (PAGE_SIZE - 1)));

		if (copy_from_kernel_nofault((u8 *)dst + done, (const void *)at, chunk))
			break;
		done += chunk;
	}
	return done;
}

long kdbt_host_context_bytes(void)
{
	return KDBT_CONTEXT_BYTES;
}

long kdbt_host_context_gs_offset(void)
{
	return (long)&kdbt_context;
}

void *kdbt_host_this_cpu_context(void)
{
	return this_cpu_ptr(&kdbt_context);
}

void *kdbt_host_cpu_context(u32 cpu)
{
	return per_cpu_ptr(&kdbt_context, cpu);
}

u64 kdbt_host_selftest_stack_top(void)
{
	return (u64)dispatcher_stack + KDBT_DISPATCHER_STACK_BYTES;
}

void kdbt_host_preempt_disable(void)
{
	preempt_disable();
}

void kdbt_host_preempt_enable(void)
{
	preempt_enable();
}

u32 kdbt_host_cpu(void)
{
	return smp_processor_id();
}

/* ---- the workloads ---- */

static noinline long selftest_fib(long n)
{
	return n < 2 ? n : selftest_fib(n - 1) + selftest_fib(n - 2);
}

static int compare_u32(const void *a, const void *b)
{
	u32 x = *(const u32 *)a, y = *(const u32 *)b;

	return x < y ? -1 : x > y;
}

static long selftest_sort(long n)
{
	u32 seed = 12345;
	u64 hash = 0;
	long i;

	for (i = 0; i < n; i++) {
		seed = seed * 1103515245 + 12345;
		sort_buffer[i] = seed >> 3;
	}
	sort(sort_buffer, n, sizeof(u32), compare_u32, NULL);
	for (i = 0; i < n; i++)
		hash = hash * 31 + sort_buffer[i];
	for (i = 1; i < n; i++)
		if (sort_buffer[i - 1] > sort_buffer[i])
			return -1;
	return (long)hash;
}

static long selftest_strings(long n)
{
	char text[64], copy[64];
	u32 crc = 0;
	long i, total = 0;

	for (i = 0; i < n; i++) {
		int len = snprintf(text, sizeof(text), "%ld-%s-%llx-%5d", i, "kdbt", (u64)i * 2654435761u,
				   (int)(i % 1000));

		memcpy(copy, text, len + 1);
		total += strlen(copy) + (strcmp(copy, text) == 0);
		crc = crc32_le(crc, copy, len);
	}
	return total * 1000003 + crc;
}

static long selftest_interpret(long steps)
{
	static const u8 program[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 1, 3, 0, 2, 6, 4, 5, 7 };
	u64 acc = 1, x = 7;
	long pc = 0, i;

	for (i = 0; i < steps; i++) {
		switch (program[pc & 15]) {
		case 0: acc += x; break;
		case 1: acc ^= acc << 7; break;
		case 2: x = x * 3 + 1; break;
		case 3: acc ^= acc >> 11; break;
		case 4: x ^= acc; break;
		case 5: acc = acc * 0x9E3779B97F4A7C15ull; break;
		case 6: x += pc; break;
		case 7: acc -= x; break;
		}
		pc++;
	}
	return (long)(acc ^ x);
}

static long selftest_slab(long n)
{
	long i, total = 0;

	for (i = 0; i < n; i++) {
		size_t size = 8 + (i * 37) % 2000;
		u8 *p = kmalloc(size, GFP_ATOMIC);

		if (!p)
			return -1;
		memset(p, (int)i, size);
		total += p[size - 1] + ksize(p) / 8;
		kfree(p);
	}
	return total;
}

/* The function the self-test translates: everything it calls runs translated. */
static noinline long selftest_call(long workload, long argument)
{
	switch (workload) {
	case 1: return selftest_fib(argument);
	case 2: return selftest_sort(argument);
	case 3: return selftest_strings(argument);
	case 4: return selftest_interpret(argument);
	case 5: return selftest_slab(argument);
	}
	return -1;
}

long kdbt_host_selftest_native(long workload, long argument)
{
	long r;

	preempt_disable(); /* as in the translated run: GFP_ATOMIC paths alike */
	r = selftest_call(workload, argument);
	preempt_enable();
	return r;
}

u64 kdbt_host_selftest_entry(void)
{
	return (u64)selftest_call;
}

/*
 * One executable page that outlives every attach: the routine through which
 * kdbt's own functions, called from translated code, return (the Engine writes
 * it). It must not live in the code pool, which detach frees while the detach
 * ioctl is still on its way back.
 */
static void *return_page;

void *kdbt_host_return_page(void)
{
	if (!return_page)
		return_page = vmalloc_range(PAGE_SIZE, PAGE_SIZE, MODULES_VADDR, MODULES_END, GFP_KERNEL,
					    PAGE_KERNEL_EXEC, VM_FLUSH_RESET_PERMS, NUMA_NO_NODE,
					    __builtin_return_address(0));
	return return_page;
}

/*
 * Whether kdbt's functions return through the page now: then the caller of the
 * function asking (the module's exit, run by rmmod while attached) returns
 * through it too, and it must stay.
 */
bool kdbt_return_page_in_use(void)
{
	return return_page && READ_ONCE(*(u64 *)return_page) != 0;
}

/* At unload. `in_use` (sampled on entry to the exit function): left allocated,
 * one page, because the exit function itself will return through it. */
void kdbt_return_page_free(bool in_use)
{
	if (!in_use)
		vfree(return_page);
	return_page = NULL;
}
