// SPDX-License-Identifier: GPL-2.0-only
/*
 * Seeded heap bugs for heapcheck's tests and demo: one trigger per bug class,
 * plus a correct use that must not be reported; and a deep recursion for
 * stackguard (`depth` levels). Write a trigger's name to
 * /sys/module/kdbt_heapbugs/parameters/trigger.
 *
 * The read and write bugs touch memory the allocator does not use (slack after
 * an object, a freed object's first bytes, away from its free pointer): natively
 * they go unnoticed and do no harm. The bad frees would corrupt the allocator,
 * so they run only while heapcheck is attached (kdbt_heapcheck_active), which
 * keeps them from the allocator; otherwise the write fails with EPERM.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/slab.h>
#include <linux/string.h>

bool kdbt_heapcheck_active(void);

static struct kmem_cache *bugs_cache;
/* Results go here so that the compiler keeps every access. */
static volatile u64 sink;

/* Use after free, read: 4 bytes at offset 12 of a freed 96-byte object. */
static noinline void uaf_read(void)
{
	u8 *p = kmalloc(96, GFP_KERNEL);

	if (!p)
		return;
	memset(p, 0x5a, 96);
	kfree(p);
	sink = READ_ONCE(*(u32 *)(p + 12)); /* UAF-READ */
}

/* Use after free, write: 8 bytes at offset 16 of a freed 96-byte object. */
static noinline void uaf_write(void)
{
	u8 *p = kmalloc(96, GFP_KERNEL);

	if (!p)
		return;
	kfree(p);
	WRITE_ONCE(*(u64 *)(p + 16), 0x1234); /* UAF-WRITE */
}

/* Out of bounds to the right: the byte just past a 100-byte object. */
static noinline void oob_right_read(void)
{
	u8 *p = kmalloc(100, GFP_KERNEL);

	if (!p)
		return;
	sink = READ_ONCE(p[100]); /* OOB-RIGHT-READ */
	kfree(p);
}

/* Out of bounds to the right, write: 2 bytes at offset 104 of a 100-byte object. */
static noinline void oob_right_write(void)
{
	u8 *p = kmalloc(100, GFP_KERNEL);

	if (!p)
		return;
	WRITE_ONCE(*(u16 *)(p + 104), 0x77); /* OOB-RIGHT-WRITE */
	kfree(p);
}

/* Out of bounds to the left: the byte before a 100-byte object whose slab
 * neighbour below is also one of ours (slots are handed out in random order,
 * so pick the pair closest together). */
static noinline void oob_left_read(void)
{
	u8 *objects[16];
	u8 *p = NULL;
	unsigned long best = ~0UL;
	int i, j;

	for (i = 0; i < ARRAY_SIZE(objects); i++)
		objects[i] = kmalloc(100, GFP_KERNEL);
	for (i = 0; i < ARRAY_SIZE(objects); i++)
		for (j = 0; j < ARRAY_SIZE(objects); j++)
			if (objects[i] && objects[j] && objects[i] > objects[j] &&
			    objects[i] - objects[j] < best) {
				best = objects[i] - objects[j];
				p = objects[i];
			}
	if (p)
		sink = READ_ONCE(p[-1]); /* OOB-LEFT-READ */
	for (i = 0; i < ARRAY_SIZE(objects); i++)
		kfree(objects[i]);
}

/* Double free. */
static noinline void double_free(void)
{
	u8 *p = kmalloc(64, GFP_KERNEL);

	kfree(p);
	kfree(p); /* DOUBLE-FREE */
}

/* Invalid free: a pointer 8 bytes into an object. */
static noinline void invalid_free(void)
{
	u8 *p = kmalloc(64, GFP_KERNEL);

	if (!p)
		return;
	kfree(p + 8); /* INVALID-FREE */
	kfree(p);
}

/* Use after free through a kmem_cache object: 8 bytes at offset 8. */
static noinline void cache_uaf(void)
{
	u8 *o = kmem_cache_alloc(bugs_cache, GFP_KERNEL);

	if (!o)
		return;
	kmem_cache_free(bugs_cache, o);
	sink = READ_ONCE(*(u64 *)(o + 8)); /* CACHE-UAF */
}

/* Sizes the compiler cannot know, and pointers whose object it cannot see, so
 * that memset and memcpy run as the kernel's rep string functions and
 * FORTIFY_SOURCE leaves the checking to heapcheck. */
static volatile size_t rep_extra = 8;

/* Out of bounds through a rep string (memset): 8 bytes past a 100-byte object. */
static noinline void memset_oob(void)
{
	u8 *p = kmalloc(100, GFP_KERNEL), *q = p;

	if (!p)
		return;
	OPTIMIZER_HIDE_VAR(q);
	memset(q, 0, 100 + rep_extra); /* MEMSET-OOB */
	kfree(p);
}

/* Use after free through a rep string (memcpy): 512 bytes read from a freed
 * 1000-byte object. */
static noinline void memcpy_uaf(void)
{
	u8 *p = kmalloc(1000, GFP_KERNEL), *q = p;
	u8 buf[512];

	if (!p)
		return;
	kfree(p);
	OPTIMIZER_HIDE_VAR(q);
	memcpy(buf, q, 64 * rep_extra); /* MEMCPY-UAF */
	sink = buf[0];
}

/* Correct use of everything above: nothing may be reported. */
static noinline void correct(void)
{
	u8 *p = kmalloc(100, GFP_KERNEL), *q;
	u8 *o = kmem_cache_alloc(bugs_cache, GFP_KERNEL);
	size_t size;
	int i;

	if (p) {
		memset(p, 1, 100);
		for (i = 0; i < 100; i++)
			sink += p[i];
		/* ksize() may say more than was asked for; with FORTIFY_SOURCE only
		 * the requested bytes may be used (that is kmalloc_size_roundup's job). */
		size = ksize(p);
		sink += size >= 100;
		q = krealloc(p, 300, GFP_KERNEL);
		if (q) {
			memset(q + 100, 3, 200);
			sink += q[299];
			p = q;
		}
		kfree(p);
	}
	p = kzalloc(5000, GFP_KERNEL);
	if (p) {
		sink += p[4999];
		kfree(p);
	}
	p = kmalloc(20000, GFP_KERNEL); /* page-backed */
	if (p) {
		memset(p, 4, 20000);
		kfree(p);
	}
	if (o) {
		memset(o, 5, 80);
		kmem_cache_free(bugs_cache, o);
	}
}

/* stackguard's seeded case: a recursion as deep as `depth`, each level with a
 * 256-byte frame, deep enough to cross a threshold without overflowing. */
static unsigned int depth = 44;
module_param(depth, uint, 0644);
MODULE_PARM_DESC(depth, "levels of the deep-recursion trigger (each about 300 bytes of stack)");

static noinline u64 deep_recursion(unsigned int level)
{
	volatile u8 frame[256];

	frame[level % sizeof(frame)] = level;
	if (level == 0)
		return frame[0];
	return deep_recursion(level - 1) + frame[level % sizeof(frame)]; /* DEEP-RECURSION */
}

static noinline void stack_recursion(void)
{
	/* At most 48 levels: about 14 KiB, still inside a 16 KiB stack. */
	sink = deep_recursion(min(depth, 48U));
}

static const struct {
	const char *name;
	void (*run)(void);
	bool bad_free;
} triggers[] = {
	{ "uaf-read", uaf_read, false },
	{ "uaf-write", uaf_write, false },
	{ "oob-right-read", oob_right_read, false },
	{ "oob-right-write", oob_right_write, false },
	{ "oob-left-read", oob_left_read, false },
	{ "double-free", double_free, true },
	{ "invalid-free", invalid_free, true },
	{ "cache-uaf", cache_uaf, false },
	{ "memset-oob", memset_oob, false },
	{ "memcpy-uaf", memcpy_uaf, false },
	{ "correct", correct, false },
	{ "deep-recursion", stack_recursion, false },
};

static int trigger_set(const char *value, const struct kernel_param *kp)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(triggers); i++) {
		if (!sysfs_streq(value, triggers[i].name))
			continue;
		if (triggers[i].bad_free && !kdbt_heapcheck_active())
			return -EPERM;
		triggers[i].run();
		return 0;
	}
	return -EINVAL;
}

static const struct kernel_param_ops trigger_ops = {
	.set = trigger_set,
};
module_param_cb(trigger, &trigger_ops, NULL, 0200);
MODULE_PARM_DESC(trigger, "run a seeded bug: uaf-read uaf-write oob-right-read oob-right-write "
		 "oob-left-read double-free invalid-free cache-uaf memset-oob memcpy-uaf correct deep-recursion");

static int __init heapbugs_init(void)
{
	/* A usercopy region keeps SLUB from merging it with another 80-byte cache,
	 * so that reports name it. */
	bugs_cache = kmem_cache_create_usercopy("kdbt_heapbugs_obj", 80, 0, 0, 0, 80, NULL);
	return bugs_cache ? 0 : -ENOMEM;
}

static void __exit heapbugs_exit(void)
{
	kmem_cache_destroy(bugs_cache);
}

module_init(heapbugs_init);
module_exit(heapbugs_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdbt: seeded heap bugs for heapcheck's tests");
