// SPDX-License-Identifier: GPL-2.0-only
/*
 * qprof: a QEMU (7.2) TCG plugin that counts guest instructions by guest
 * virtual PC, at translation-block (TB) granularity, so that the instruction
 * count of a kernel benchmark run under `-icount` can be broken down by
 * symbol (tools/qemu-profile/report.py).
 *
 *   qemu-system-x86_64 ... -plugin /path/profile.so,out=/tmp/prof.txt
 *
 * Each translated TB gets an inline 64-bit add on its own counter (no helper
 * call: the guest runs almost at plain TCG speed). At exit the counters are
 * written as lines `vaddr_hex n_insns exec_count`, one per distinct
 * (vaddr, n_insns): QEMU can translate the same PC more than once, e.g. with a
 * shorter block when the -icount budget runs out, and those are merged.
 *
 * Counting window: a guest that executes the magic no-op
 *   nopl 0x53525051(%rax,%rax,1)   (0f 1f 84 00 51 50 52 53, "QPRS")
 * opens a window and
 *   nopl 0x45525051(%rax,%rax,1)   (0f 1f 84 00 51 50 52 45, "QPRE")
 * closes it (qprof-mark.c does this from user space; they are ordinary
 * no-ops on real hardware). If any window was opened, only instructions
 * executed inside windows are reported; otherwise everything since boot.
 *
 * Precision: a TB is counted whole when it starts executing, so a TB left
 * early by an exception (e.g. a page fault) over-counts by its tail; each TB
 * is attributed to its start PC. The inline add is not atomic: counts are
 * exact with one vCPU or -icount (one TCG thread), approximate with MTTCG.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu-plugin-api.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

struct tb_ent {
	uint64_t count;     /* inline-incremented by the guest: must not move */
	uint64_t vaddr;
	uint64_t snap;      /* count when the current window opened */
	uint64_t acc;       /* executions inside closed windows */
	uint32_t n_insns;
	struct tb_ent *next; /* hash chain */
	struct tb_ent *all;  /* list of every entry, for snapshots and output */
};

#define MAGIC_START 0x53525051u /* "QPRS" */
#define MAGIC_END   0x45525051u /* "QPRE" */

static const char *out_path = "qprof.txt";

/*
 * Translation can run concurrently on several vCPU threads (MTTCG), and the
 * window callbacks walk the table: one lock for the table and window state.
 * Never taken on the hot path (the inline add).
 */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct tb_ent **buckets;
static size_t n_buckets, n_ents;
static struct tb_ent *all_ents;
static int window_open;
static unsigned int n_windows;

static size_t hash(uint64_t vaddr, uint32_t n)
{
	uint64_t h = (vaddr ^ ((uint64_t)n << 48)) * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 20);
}

static void grow(void)
{
	size_t nb = n_buckets ? n_buckets * 2 : 1u << 16;
	struct tb_ent **b = calloc(nb, sizeof(*b));

	if (!b) {
		perror("qprof: calloc");
		abort();
	}
	for (struct tb_ent *e = all_ents; e; e = e->all) {
		size_t i = hash(e->vaddr, e->n_insns) & (nb - 1);

		e->next = b[i];
		b[i] = e;
	}
	free(buckets);
	buckets = b;
	n_buckets = nb;
}

/* Entry for (vaddr, n), created if new. Called with lock held. */
static struct tb_ent *lookup(uint64_t vaddr, uint32_t n)
{
	size_t i;
	struct tb_ent *e;

	if (n_ents >= n_buckets)
		grow();
	i = hash(vaddr, n) & (n_buckets - 1);
	for (e = buckets[i]; e; e = e->next)
		if (e->vaddr == vaddr && e->n_insns == n)
			return e;
	e = calloc(1, sizeof(*e));
	if (!e) {
		perror("qprof: calloc");
		abort();
	}
	e->vaddr = vaddr;
	e->n_insns = n;
	/*
	 * snap stays 0 even inside an open window: a new entry has counted
	 * nothing yet, so everything it counts belongs to the window.
	 */
	e->next = buckets[i];
	buckets[i] = e;
	e->all = all_ents;
	all_ents = e;
	n_ents++;
	return e;
}

static void window_cb(unsigned int vcpu_index, void *userdata)
{
	int open = userdata != NULL;

	(void)vcpu_index;
	pthread_mutex_lock(&lock);
	if (open && !window_open) {
		for (struct tb_ent *e = all_ents; e; e = e->all)
			e->snap = e->count;
		window_open = 1;
		n_windows++;
	} else if (!open && window_open) {
		for (struct tb_ent *e = all_ents; e; e = e->all)
			e->acc += e->count - e->snap;
		window_open = 0;
	}
	pthread_mutex_unlock(&lock);
}

/* Is insn one of the 8-byte window no-ops? Returns MAGIC_* or 0. */
static uint32_t magic_of(const struct qemu_plugin_insn *insn)
{
	const uint8_t *p;
	uint32_t m;

	if (qemu_plugin_insn_size(insn) != 8)
		return 0;
	p = qemu_plugin_insn_data(insn);
	if (p[0] != 0x0f || p[1] != 0x1f || p[2] != 0x84 || p[3] != 0x00)
		return 0;
	memcpy(&m, p + 4, 4);
	return m == MAGIC_START || m == MAGIC_END ? m : 0;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t n = qemu_plugin_tb_n_insns(tb);
	struct tb_ent *e;

	(void)id;
	pthread_mutex_lock(&lock);
	e = lookup(qemu_plugin_tb_vaddr(tb), (uint32_t)n);
	pthread_mutex_unlock(&lock);
	qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
						 &e->count, 1);

	for (size_t i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		uint32_t m = magic_of(insn);

		if (m)
			qemu_plugin_register_vcpu_insn_exec_cb(
				insn, window_cb, QEMU_PLUGIN_CB_NO_REGS,
				m == MAGIC_START ? (void *)1 : NULL);
	}
}

static void at_exit(qemu_plugin_id_t id, void *userdata)
{
	FILE *f;
	uint64_t total = 0, lines = 0;

	(void)id;
	(void)userdata;
	pthread_mutex_lock(&lock);
	if (window_open) /* a window still open at exit ends here */
		for (struct tb_ent *e = all_ents; e; e = e->all)
			e->acc += e->count - e->snap;
	f = fopen(out_path, "w");
	if (!f) {
		perror(out_path);
		pthread_mutex_unlock(&lock);
		return;
	}
	fprintf(f, "# qprof: vaddr n_insns exec_count; %s\n",
		n_windows ? "counting windows only" : "whole run");
	fprintf(f, "# windows %u\n", n_windows);
	for (struct tb_ent *e = all_ents; e; e = e->all) {
		uint64_t c = n_windows ? e->acc : e->count;

		if (!c)
			continue;
		fprintf(f, "%" PRIx64 " %" PRIu32 " %" PRIu64 "\n",
			e->vaddr, e->n_insns, c);
		total += c * e->n_insns;
		lines++;
	}
	if (fclose(f))
		perror(out_path);
	fprintf(stderr,
		"qprof: %" PRIu64 " instructions in %" PRIu64
		" TBs (%u window(s)) -> %s\n",
		total, lines, n_windows, out_path);
	pthread_mutex_unlock(&lock);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
					   const qemu_info_t *info,
					   int argc, char **argv)
{
	(void)info;
	for (int i = 0; i < argc; i++) {
		/* argv strings live as long as the plugin: no copy needed */
		if (!strncmp(argv[i], "out=", 4) && argv[i][4]) {
			out_path = argv[i] + 4;
		} else {
			fprintf(stderr, "qprof: unknown argument '%s' (want out=PATH)\n",
				argv[i]);
			return -1;
		}
	}
	pthread_mutex_lock(&lock);
	grow();
	pthread_mutex_unlock(&lock);
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
