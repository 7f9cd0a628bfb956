// SPDX-License-Identifier: GPL-2.0-only
/*
 * The report ring's kernel side (Sources/Engine/Tools/FindingsRing.swift): its
 * lock, and the last attach's findings kept after detach for `kdbt report`.
 */
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include "kdbt_shim.h"

static DEFINE_RAW_SPINLOCK(findings_lock);
static unsigned long findings_lock_flags;
static void *kept_findings;
static long kept_count;
static u64 kept_dropped;
static bool kept_any;

/* Tools report from clean calls (interrupts off) and the ioctl reads (on). */
void kdbt_findings_lock(void)
{
	unsigned long flags;

	raw_spin_lock_irqsave(&findings_lock, flags);
	findings_lock_flags = flags;
}

void kdbt_findings_unlock(void)
{
	raw_spin_unlock_irqrestore(&findings_lock, findings_lock_flags);
}

/* The records, then their keys (FindingsRing), so that a later attach can take them over. */
void kdbt_findings_keep(const void *records, const void *keys, long count, long record_bytes, u64 dropped)
{
	kvfree(kept_findings);
	kept_findings = NULL;
	kept_count = 0;
	kept_dropped = dropped;
	kept_any = true;
	if (count <= 0)
		return;
	kept_findings = kvmalloc_array(count, record_bytes + sizeof(u64), GFP_KERNEL);
	if (!kept_findings) {
		kept_dropped += count;
		return;
	}
	memcpy(kept_findings, records, count * record_bytes);
	memcpy((u8 *)kept_findings + count * record_bytes, keys, count * sizeof(u64));
	kept_count = count;
}

/* -1: no checking tool ran since the module loaded. */
long kdbt_findings_kept(const void **records, u64 *dropped)
{
	*records = kept_findings;
	*dropped = kept_dropped;
	return kept_any ? kept_count : -1;
}

void kdbt_findings_exit(void)
{
	kvfree(kept_findings);
	kept_findings = NULL;
	kept_count = 0;
}
