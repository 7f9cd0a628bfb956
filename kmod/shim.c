// SPDX-License-Identifier: GPL-2.0-only
/*
 * kdbt kernel shim: the thin C side of kdbt.ko.
 *
 * It registers /dev/kdbt, checks privilege, serializes requests and provides the
 * kernel services the Engine (Embedded Swift, engine.o) asks for: user-memory
 * copies, arenas, time, CPU count. Everything about requests is decided in Swift.
 */
#include <linux/atomic.h>
#include <linux/capability.h>
#include <linux/cpumask.h>
#include <linux/fs.h>
#include <linux/kprobes.h>
#include <linux/ktime.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "kdbt_shim.h"

#ifndef KDBT_BUILD_ID
#error "KDBT_BUILD_ID must be set by the build (see Makefile)"
#endif

/* Arenas are bounded so a bad size from a bug cannot exhaust memory. */
#define KDBT_MAX_ARENA_BYTES (256UL << 20)

static atomic64_t live_allocations = ATOMIC64_INIT(0);
static atomic64_t live_bytes = ATOMIC64_INIT(0);
static u64 load_time_ns;
static void *engine;
/* Requests change Engine state; one at a time. Never taken in atomic context. */
static DEFINE_MUTEX(engine_lock);

/*
 * Kernel functions the module needs but the kernel does not export, found at load
 * through kallsyms_lookup_name, itself found with a kprobe (it is unexported since
 * 5.7; DRK does the same, see LINUX-ENTRY.md section 5).
 */
static unsigned long (*lookup_name)(const char *name);
static int (*kernel_text_address_fn)(unsigned long addr);

static int find_kernel_symbols(void)
{
	struct kprobe kp = { .symbol_name = "kallsyms_lookup_name" };
	int err = register_kprobe(&kp);

	if (err) {
		pr_err("kdbt: cannot find kallsyms_lookup_name through a kprobe (%d); "
		       "kdbt needs CONFIG_KPROBES\n", err);
		return err;
	}
	lookup_name = (void *)kp.addr;
	unregister_kprobe(&kp);
	kernel_text_address_fn = (void *)lookup_name("kernel_text_address");
	if (!kernel_text_address_fn) {
		pr_err("kdbt: kernel_text_address not found in kallsyms\n");
		return -ENOENT;
	}
	return 0;
}

/* Each arena carries its size in front so frees can be counted exactly. */
struct arena_header {
	size_t bytes;
	size_t pad; /* keeps the arena 16-byte aligned */
};

void *kdbt_host_arena_alloc(long bytes)
{
	struct arena_header *h;

	if (bytes <= 0 || bytes > KDBT_MAX_ARENA_BYTES)
		return NULL;
	h = kvzalloc(sizeof(*h) + bytes, GFP_KERNEL);
	if (!h)
		return NULL;
	h->bytes = bytes;
	atomic64_inc(&live_allocations);
	atomic64_add(bytes, &live_bytes);
	return h + 1;
}

void kdbt_host_arena_free(void *block)
{
	struct arena_header *h;

	if (!block)
		return;
	h = (struct arena_header *)block - 1;
	atomic64_dec(&live_allocations);
	atomic64_sub(h->bytes, &live_bytes);
	kvfree(h);
}

u64 kdbt_host_live_allocations(void)
{
	return atomic64_read(&live_allocations);
}

u64 kdbt_host_live_bytes(void)
{
	return atomic64_read(&live_bytes);
}

int kdbt_host_copy_from_user(void *dst, u64 src, long n)
{
	if (n < 0 || n > PAGE_SIZE)
		return -EINVAL;
	return copy_from_user(dst, u64_to_user_ptr(src), n) ? -EFAULT : 0;
}

int kdbt_host_copy_to_user(u64 dst, const void *src, long n)
{
	if (n < 0 || n > PAGE_SIZE)
		return -EINVAL;
	return copy_to_user(u64_to_user_ptr(dst), src, n) ? -EFAULT : 0;
}

int kdbt_host_check_zeroed_user(u64 addr, long n)
{
	if (n < 0 || n > PAGE_SIZE)
		return -EINVAL;
	return check_zeroed_user(u64_to_user_ptr(addr), n);
}

/*
 * Reads live kernel text. Every page of the range must be text the kernel knows
 * (core, init while present, modules, trampolines); the copy itself cannot fault.
 */
int kdbt_host_read_kernel_text(void *dst, u64 addr, long n)
{
	u64 page;

	if (n <= 0 || n > PAGE_SIZE || addr + n < addr)
		return -EINVAL;
	for (page = addr & PAGE_MASK; page < addr + n; page += PAGE_SIZE) {
		if (!kernel_text_address_fn(max(page, addr)))
			return -EFAULT;
	}
	if (!kernel_text_address_fn(addr + n - 1))
		return -EFAULT;
	return copy_from_kernel_nofault(dst, (const void *)addr, n) ? -EFAULT : 0;
}

u64 kdbt_host_ns_since_load(void)
{
	return ktime_get_ns() - load_time_ns;
}

u32 kdbt_host_online_cpus(void)
{
	return num_online_cpus();
}

u64 kdbt_host_build_id(void)
{
	return KDBT_BUILD_ID;
}

static long kdbt_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	long ret;

	/* The device is 0600, but an inherited or passed fd must not bypass this. */
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	mutex_lock(&engine_lock);
	ret = kdbt_engine_ioctl(engine, cmd, arg);
	mutex_unlock(&engine_lock);
	return ret;
}

static const struct file_operations kdbt_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = kdbt_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice kdbt_device = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "kdbt",
	.fops = &kdbt_fops,
	.mode = 0600,
};

static int __init kdbt_init(void)
{
	int err;

	load_time_ns = ktime_get_ns();
	err = find_kernel_symbols();
	if (err)
		return err;
	err = kdbt_selftest_init(lookup_name);
	if (err)
		return err;
	err = kdbt_takeover_init(lookup_name);
	if (err)
		return err;
	err = kdbt_heapcheck_init(lookup_name);
	if (err)
		return err;
	err = kdbt_stackguard_init(lookup_name);
	if (err)
		return err;
	engine = kdbt_engine_create();
	if (!engine)
		return -ENOMEM;
	err = misc_register(&kdbt_device);
	if (err) {
		kdbt_engine_destroy(engine);
		return err;
	}
	pr_info("kdbt: loaded, build %016llx, /dev/kdbt ready\n",
		(unsigned long long)KDBT_BUILD_ID);
	return 0;
}

static void __exit kdbt_exit(void)
{
	/* Unloaded while attached: this function was called from translated code
	 * and returns through kdbt's return page (see kdbt_host_return_page). */
	bool returning_through_page = kdbt_return_page_in_use();

	/* No ioctl can be running: misc_deregister waits for none, but the module
	 * reference held by every open file keeps us from being unloaded before. */
	misc_deregister(&kdbt_device);
	kdbt_engine_destroy(engine);
	engine = NULL;
	kdbt_findings_exit();
	kdbt_return_page_free(returning_through_page);
	pr_info("kdbt: unloaded, live allocations %lld (%lld bytes)\n",
		(long long)atomic64_read(&live_allocations),
		(long long)atomic64_read(&live_bytes));
}

module_init(kdbt_init);
module_exit(kdbt_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdbt: dynamic binary translation of the running kernel");
