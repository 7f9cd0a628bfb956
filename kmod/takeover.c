// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel takeover, the C side: the IDT copy, loading it and the syscall entry MSR
 * on every CPU (and the native ones back), per-CPU dispatcher stacks, the
 * translator lock, and the facts the Engine asks about (symbols, kdbt's own text,
 * PTI). The decisions and the stubs are in Swift
 * (Sources/Engine/Kernel/KernelTakeover.swift).
 */
#include <linux/extable.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/spinlock.h>
#include <linux/vmalloc.h>
#include <asm/cpufeature.h>
#include <asm/debugreg.h>
#include <asm/desc.h>
#include <asm/msr.h>
#include <asm/unaligned.h>
#include <linux/uaccess.h>

#include "kdbt_shim.h"

#define KDBT_DISPATCHER_STACK_BYTES (16UL << 10)

static unsigned long (*symbol_lookup)(const char *name);
static gate_desc *idt_copy;
static struct desc_ptr native_idt;
static u64 native_lstar;
static u64 syscall_stub;
static void *dispatcher_stacks[NR_CPUS];
static DEFINE_RAW_SPINLOCK(translator_lock);

int kdbt_takeover_init(unsigned long (*lookup)(const char *name))
{
	symbol_lookup = lookup;
	return 0;
}

u64 kdbt_host_symbol(const char *name)
{
	return symbol_lookup(name);
}

/* The offset of address in its function, by kallsyms; false when unknown. */
static bool function_offset(u64 address, unsigned long *offset)
{
	static int (*size_offset)(unsigned long addr, unsigned long *size, unsigned long *offset);
	unsigned long size;

	if (!size_offset)
		size_offset = (void *)symbol_lookup("kallsyms_lookup_size_offset");
	return size_offset && size_offset(address, &size, offset);
}

/* Function starts by kallsyms: where a call, not a return, enters kdbt's text. */
int kdbt_host_is_function_start(u64 address)
{
	unsigned long offset;

	return function_offset(address, &offset) && offset == 0;
}

/* Whether the function around address was compiled from C: it begins with the
 * compiler's __fentry__ call (a 5-byte nop while ftrace leaves it alone, or a
 * call to __fentry__ or ftrace's callers). Such a function returns by the psABI:
 * its callers keep nothing in the caller-saved registers or the status flags
 * across the call. Assembly functions, some with their own conventions
 * (__get_user_*, the paravirt callee-save thunks), have no __fentry__ call;
 * notrace C functions neither (they count as assembly). */
int kdbt_host_c_function_at(u64 address)
{
	static unsigned long fentry, ftrace_caller, ftrace_regs_caller;
	static const u8 nop5[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
	unsigned long offset, start, target;
	u8 first[5];

	if (!fentry) {
		fentry = symbol_lookup("__fentry__");
		ftrace_caller = symbol_lookup("ftrace_caller");
		ftrace_regs_caller = symbol_lookup("ftrace_regs_caller");
	}
	if (!function_offset(address, &offset))
		return 0;
	start = address - offset;
	if (copy_from_kernel_nofault(first, (void *)start, sizeof(first)))
		return 0;
	if (!memcmp(first, nop5, sizeof(nop5)))
		return 1;
	if (first[0] != 0xe8)
		return 0;
	target = start + 5 + (long)get_unaligned((s32 *)(first + 1));
	return target && (target == fentry || target == ftrace_caller || target == ftrace_regs_caller);
}

/* Whether a fault at address continues at an exception-table fixup (vmlinux's
 * table or a module's). */
int kdbt_host_has_fault_fixup(u64 address)
{
	static const struct exception_table_entry *(*search)(unsigned long address);

	if (!search)
		search = (void *)symbol_lookup("search_exception_tables");
	return search && search(address);
}

int kdbt_host_pti_enabled(void)
{
	return boot_cpu_has(X86_FEATURE_PTI);
}

/* kdbt's own text: it runs natively, never from the cache it manages. */
u64 kdbt_host_module_text_start(void)
{
	return (u64)THIS_MODULE->core_layout.base;
}

u64 kdbt_host_module_text_end(void)
{
	return (u64)THIS_MODULE->core_layout.base + THIS_MODULE->core_layout.text_size;
}

/* A copy of the live IDT (one page, 256 gates) for the Engine to redirect. */
void *kdbt_host_idt_copy(void)
{
	store_idt(&native_idt);
	if (native_idt.size != 256 * sizeof(gate_desc) - 1)
		return NULL;
	idt_copy = (gate_desc *)get_zeroed_page(GFP_KERNEL);
	if (!idt_copy)
		return NULL;
	memcpy(idt_copy, (void *)native_idt.address, PAGE_SIZE);
	rdmsrl(MSR_LSTAR, native_lstar);
	return idt_copy;
}

u64 kdbt_host_read_lstar(void)
{
	u64 lstar;

	rdmsrl(MSR_LSTAR, lstar);
	return lstar;
}

long kdbt_host_dispatcher_stacks_create(void)
{
	int cpu;

	for_each_possible_cpu(cpu) {
		dispatcher_stacks[cpu] = kzalloc_node(KDBT_DISPATCHER_STACK_BYTES, GFP_KERNEL, cpu_to_node(cpu));
		if (!dispatcher_stacks[cpu])
			return -ENOMEM;
	}
	return 0;
}

u64 kdbt_host_dispatcher_stack_top(u32 cpu)
{
	return (u64)dispatcher_stacks[cpu] + KDBT_DISPATCHER_STACK_BYTES;
}

int kdbt_host_cpu_possible(u32 cpu)
{
	return cpu < nr_cpu_ids && cpu_possible(cpu);
}

u32 kdbt_host_cpu_ids(void)
{
	return nr_cpu_ids;
}

/* Module text appears or goes away: translations of its addresses are stale. */
static int module_changed(struct notifier_block *nb, unsigned long state, void *data)
{
	struct module *mod = data;

	/* Code appears where freed code may have been translated. */
	if (state == MODULE_STATE_COMING) {
		kdbt_engine_module_changed((u64)mod->core_layout.base, mod->core_layout.size);
		kdbt_engine_module_changed((u64)mod->init_layout.base, mod->init_layout.size);
	}
	return NOTIFY_DONE;
}

static struct notifier_block module_notifier = { .notifier_call = module_changed };
static bool module_notifier_registered;

static void load_takeover(void *unused)
{
	struct desc_ptr ours = { .size = 256 * sizeof(gate_desc) - 1, .address = (unsigned long)idt_copy };

	native_load_idt(&ours);
	wrmsrl(MSR_LSTAR, syscall_stub);
}

static void load_native(void *unused)
{
	native_load_idt(&native_idt);
	wrmsrl(MSR_LSTAR, native_lstar);
}

/* On every CPU, with interrupts off there: our IDT and syscall entry. */
void kdbt_host_load_takeover(u64 stub)
{
	syscall_stub = stub;
	module_notifier_registered = register_module_notifier(&module_notifier) == 0;
	on_each_cpu(load_takeover, NULL, 1);
}

/*
 * On every CPU: the native IDT and syscall entry. The IPI arrives through our IDT,
 * so when the function runs there, that CPU has left the code cache (its
 * interrupted state was handed back at a native boundary).
 */
void kdbt_host_load_native(void)
{
	if (module_notifier_registered)
		unregister_module_notifier(&module_notifier);
	module_notifier_registered = false;
	on_each_cpu(load_native, NULL, 1);
}

/* Releases what attach allocated; safe on a partial attach. */
void kdbt_host_takeover_free(void)
{
	int cpu;

	for_each_possible_cpu(cpu) {
		kfree(dispatcher_stacks[cpu]);
		dispatcher_stacks[cpu] = NULL;
	}
	if (idt_copy)
		free_page((unsigned long)idt_copy);
	idt_copy = NULL;
	kdbt_host_code_pool_destroy();
}

/* Taken with interrupts off (dispatcher, trap handler): a raw spinlock. */
void kdbt_host_translator_lock(void)
{
	raw_spin_lock(&translator_lock);
}

void kdbt_host_translator_unlock(void)
{
	raw_spin_unlock(&translator_lock);
}

/* From code that may run with interrupts on (notifiers, detach): an interrupt
 * on this CPU would enter the dispatcher and spin on the lock we hold. */
unsigned long kdbt_host_translator_lock_irqsave(void)
{
	unsigned long flags;

	raw_spin_lock_irqsave(&translator_lock, flags);
	return flags;
}

void kdbt_host_translator_unlock_irqrestore(unsigned long flags)
{
	raw_spin_unlock_irqrestore(&translator_lock, flags);
}

/* A single step we consumed: clear DR6 as the kernel's #DB handler would. */
void kdbt_host_clear_dr6(void)
{
	set_debugreg(DR6_RESERVED, 6);
}

u64 kdbt_host_ktime_ns(void)
{
	return ktime_get_ns();
}


u64 kdbt_host_kernel_cs(void)
{
	return __KERNEL_CS;
}

u64 kdbt_host_kernel_ss(void)
{
	return __KERNEL_DS;
}

