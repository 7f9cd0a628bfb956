// SPDX-License-Identifier: GPL-2.0-only
/*
 * heapcheck's kernel services (Sources/Engine/Kernel/KernelHeapCheck.swift):
 * its size-class caches, stacks from the ORC unwinder, task identity, giving
 * quarantined objects back to the allocator, and the direct map's bounds.
 *
 * The caches live as long as the kernel does: objects allocated from them while
 * attached stay valid after detach and are freed natively later, so the caches
 * cannot be destroyed at detach or unload (kmem_cache_destroy would report the
 * objects still in them). Each module load creates its own set, with a name
 * unique to that load.
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/kasan.h>
#include <linux/kfence.h>
/*
 * struct kmem_cache (its name, flags and object size) is in slub_def.h, whose
 * inline helpers want mm/slab.h's struct slab, which headers packages lack.
 * Only those unused helpers see these stand-ins.
 */
struct slab {
	unsigned int objects;
};
static inline void *slab_address(const struct slab *slab)
{
	return NULL;
}
#include <linux/slub_def.h>
#include <linux/sched.h>
#include <linux/random.h>
#include <linux/spinlock.h>
#include <asm/page.h>
#include "kdbt_shim.h"

/* kmalloc's classes (KMALLOC_MIN_SIZE 8 up to two pages), plus one page-pair
 * class: a request gets the class one redzone above it. */
static const unsigned int class_sizes[] = {
	16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192, 16384,
};
static struct kmem_cache *class_caches[ARRAY_SIZE(class_sizes)];
static unsigned long (*symbol_lookup)(const char *name);
/* The flat shadow (Sources/Engine/Tools/HeapCheck.swift, FlatShadow) where it
 * fits; 0 keeps heapcheck's shadow in chunks (tests of that layout). */
static bool heapcheck_flat_shadow = true;
module_param(heapcheck_flat_shadow, bool, 0444);
MODULE_PARM_DESC(heapcheck_flat_shadow, "heapcheck: shadow memory in one flat area where it fits (default 1)");
static DEFINE_RAW_SPINLOCK(heapcheck_lock);
static unsigned long heapcheck_lock_flags;
static bool heapcheck_active;

/* Whether heapcheck is attached: the seeded-bug test module refuses to free
 * twice or wrongly unless someone is there to keep the allocator out of it. */
bool kdbt_heapcheck_active(void)
{
	return READ_ONCE(heapcheck_active);
}
EXPORT_SYMBOL_GPL(kdbt_heapcheck_active);

void kdbt_hc_set_active(int active)
{
	WRITE_ONCE(heapcheck_active, active != 0);
}

int kdbt_heapcheck_init(unsigned long (*lookup)(const char *name))
{
	symbol_lookup = lookup;
	return 0;
}

/* Creates the classes on first use (process context, from attach). */
int kdbt_hc_classes(u64 *sizes, u64 *caches, int capacity)
{
	static u32 load_id;
	char name[40];
	int i;

	if (!load_id)
		load_id = get_random_u32() | 1;
	for (i = 0; i < ARRAY_SIZE(class_sizes) && i < capacity; i++) {
		unsigned int size = class_sizes[i];
		/* Power-of-two classes are aligned to their size, as kmalloc's are. */
		unsigned int align = is_power_of_2(size) ? min_t(unsigned int, size, PAGE_SIZE) : 32;

		if (!class_caches[i]) {
			snprintf(name, sizeof(name), "kdbt-hc-%u-%08x", size, load_id);
			/* usersize covers the object: hardened usercopy accepts copies
			 * to and from it, as for kmalloc's caches (never merged either). */
			class_caches[i] = kmem_cache_create_usercopy(name, size, align, 0, 0, size, NULL);
			if (!class_caches[i])
				return i;
		}
		sizes[i] = size;
		caches[i] = (u64)class_caches[i];
	}
	return i;
}

/* The stack at (pc, sp, bp), by the walk stackguard uses (stackguard.c), with
 * the stack words its result depends on (see there). */
int kdbt_hc_capture_stack(u64 pc, u64 sp, u64 bp, u64 *frames, int capacity, u64 *reads, int *nreads)
{
	return kdbt_sg_capture_stack(pc, sp, bp, frames, capacity, reads, nreads);
}

/* The %gs: offset of the running task's pointer, and a task_struct's size
 * (the compiled part: architectures append their FPU state to it). */
s64 kdbt_hc_current_task_slot(void)
{
	return (s64)(unsigned long)&current_task;
}

s64 kdbt_hc_task_struct_bytes(void)
{
	return sizeof(struct task_struct);
}

u32 kdbt_hc_current_task(u32 *pid, u8 *comm)
{
	*pid = task_pid_nr(current);
	memcpy(comm, current->comm, min_t(size_t, TASK_COMM_LEN, 16));
	return raw_smp_processor_id();
}

/* Called natively from heapcheck's hooks: these calls are not wrapped. */
void kdbt_hc_release(u64 cache, u64 pointer)
{
	if (cache)
		kmem_cache_free((struct kmem_cache *)cache, (void *)pointer);
	else
		kfree((void *)pointer);
}

/* The object size of a named cache, per allocation (no name copied); 0 for a
 * SLAB_TYPESAFE_BY_RCU cache, whose objects may be read after their free. */
u64 kdbt_hc_cache_object_size(u64 cache)
{
	struct kmem_cache *s = (struct kmem_cache *)cache;

	return s->flags & SLAB_TYPESAFE_BY_RCU ? 0 : s->object_size;
}

int kdbt_hc_describe_cache(u64 cache, u8 *name, u64 *object_size)
{
	struct kmem_cache *s = (struct kmem_cache *)cache;

	strscpy(name, s->name, 32);
	*object_size = s->object_size;
	return !(s->flags & SLAB_TYPESAFE_BY_RCU);
}

/* Hooks run with interrupts off; the ioctl paths do not: irqsave for both. */
void kdbt_hc_lock(void)
{
	unsigned long flags;

	raw_spin_lock_irqsave(&heapcheck_lock, flags);
	heapcheck_lock_flags = flags;
}

void kdbt_hc_unlock(void)
{
	raw_spin_unlock_irqrestore(&heapcheck_lock, heapcheck_lock_flags);
}

u64 kdbt_hc_direct_map_base(void)
{
	return PAGE_OFFSET;
}

/* max_pfn is not exported; kallsyms has it. */
u64 kdbt_hc_direct_map_pages(void)
{
	unsigned long *max = (unsigned long *)symbol_lookup("max_pfn");

	return max ? *max : 0;
}

/* Bytes of the page allocation kmalloc_large makes for `size`. */
u64 kdbt_hc_page_bytes(u64 size)
{
	return PAGE_SIZE << get_order(size);
}

/* Whether heapcheck may take a flat shadow (the module parameter). */
int kdbt_hc_flat_shadow_allowed(void)
{
	return heapcheck_flat_shadow;
}

/* Which shadow layout this attach took, in the kernel log. */
void kdbt_hc_report_shadow(u64 flat_bytes)
{
	if (flat_bytes)
		pr_info("kdbt: heapcheck shadow: flat, %llu MiB\n", flat_bytes >> 20);
	else
		pr_info("kdbt: heapcheck shadow: chunked\n");
}
