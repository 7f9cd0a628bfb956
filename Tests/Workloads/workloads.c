// SPDX-License-Identifier: GPL-2.0-only
#define _GNU_SOURCE
#include "workloads.h"
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static uint64_t next_random(uint64_t *s)
{
	/* xorshift64*: deterministic inputs for both runs */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

long kw_sum(long n)
{
	long s = 0;
	for (long i = 0; i < n; i++)
		s += i ^ (s >> 3);
	return s;
}

long kw_fib(long n)
{
	return n < 2 ? n : kw_fib(n - 1) + kw_fib(n - 2);
}

static int compare_ints(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

long kw_qsort(long n, long seed)
{
	uint64_t s = (uint64_t)seed | 1;
	int *v = malloc(n * sizeof *v);
	if (!v)
		return -1;
	for (long i = 0; i < n; i++)
		v[i] = (int)next_random(&s);
	qsort(v, n, sizeof *v, compare_ints);
	long h = (long)hash_bytes((const uint8_t *)v, n * sizeof *v);
	for (long i = 1; i < n; i++)
		if (v[i - 1] > v[i])
			h = -2;
	free(v);
	return h;
}

/* SHA-256 (FIPS 180-4). */
static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const uint8_t *p)
{
	uint32_t w[64];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
	for (int i = 0; i < 64; i++) {
		uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
		uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
		hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
	}
	h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

long kw_sha256(long n, long seed)
{
	uint64_t s = (uint64_t)seed | 1;
	uint32_t h[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
			  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
	uint8_t block[64];
	long done = 0;
	/* Whole blocks of pseudo-random data, then FIPS padding. */
	while (done + 64 <= n) {
		for (int i = 0; i < 64; i += 8) {
			uint64_t r = next_random(&s);
			memcpy(block + i, &r, 8);
		}
		sha256_block(h, block);
		done += 64;
	}
	memset(block, 0, 64);
	block[0] = 0x80;
	uint64_t bits = (uint64_t)done * 8;
	for (int i = 0; i < 8; i++)
		block[63 - i] = (uint8_t)(bits >> (8 * i));
	sha256_block(h, block);
	return (long)((uint64_t)h[0] << 32 | h[1]);
}

long kw_interpret(long steps)
{
	/* A tiny stack machine; the program counts, branches and calls. */
	static const uint8_t program[] = { 0, 1, 2, 3, 4, 5, 6, 7, 2, 3, 1, 0, 5, 4, 6, 7 };
	long acc = 1, x = 7, stack[16] = { 0 }, sp = 0;
	unsigned pc = 0;
	for (long i = 0; i < steps; i++) {
		switch (program[pc++ & 15]) {
		case 0: acc += x; break;
		case 1: acc ^= acc << 7; break;
		case 2: x = x * 3 + 1; break;
		case 3: stack[sp++ & 15] = acc; break;
		case 4: acc -= stack[--sp & 15]; break;
		case 5: if (acc & 1) pc += 3; break;
		case 6: x ^= acc >> 11; break;
		case 7: acc = (acc >> 1) | (acc << 63); break;
		}
	}
	return acc ^ x;
}

static jmp_buf jump_target;

static long descend(long depth)
{
	if (depth == 0)
		longjmp(jump_target, 7);
	return descend(depth - 1) + 1;
}

long kw_longjmp(long depth, long rounds)
{
	volatile long total = 0;
	for (volatile long r = 0; r < rounds; r++) {
		int v = setjmp(jump_target);
		if (v == 0)
			total += descend(depth);
		else
			total += v + r;
	}
	return total;
}

long kw_strings(long n)
{
	char *a = malloc(n + 64), *b = malloc(n + 64);
	if (!a || !b)
		return -1;
	for (long i = 0; i < n; i++)
		a[i] = (char)('a' + i % 26);
	a[n] = 0;
	long h = 0;
	for (int k = 0; k < 20; k++) {
		memcpy(b + k, a, n + 1);
		h += (long)strlen(b + k);
		h += memcmp(a, b + k, n) == 0;
		h += strchr(b + k, 'z') - (b + k);
		h += (long)(memchr(b + k, 'q', n) ? 1 : 0);
		memset(b + k, 'x', n / 2);
		h += strcmp(a, b + k) > 0;
		h += strrchr(b + k, 'a') - (b + k);  /* an offset: pointers differ between runs */
	}
	h = (long)hash_bytes((const uint8_t *)b, n) ^ h;
	free(a);
	free(b);
	return h;
}

long kw_zlib(long n, long seed)
{
	uint64_t s = (uint64_t)seed | 1;
	uint8_t *in = malloc(n), *packed, *out = malloc(n);
	uLongf packed_len = compressBound(n), out_len = n;
	packed = malloc(packed_len);
	if (!in || !packed || !out)
		return -1;
	/* Compressible input: random words from a small vocabulary. */
	for (long i = 0; i < n; i++)
		in[i] = (uint8_t)("kdbt translates the kernel "[next_random(&s) % 27]);
	int err = compress2(packed, &packed_len, in, n, 6);
	if (err != Z_OK)
		return err;
	err = uncompress(out, &out_len, packed, packed_len);
	if (err != Z_OK)
		return err;
	long h = (long)(hash_bytes(out, out_len) ^ packed_len);
	if (out_len != (uLongf)n || memcmp(in, out, n) != 0)
		h = -3;
	free(in);
	free(packed);
	free(out);
	return h;
}

static long op_add(long a, long b) { return a + b; }
static long op_xor(long a, long b) { return a ^ b; }
static long op_mul(long a, long b) { return a * (b | 1); }
static long op_sub(long a, long b) { return a - b; }

long kw_indirect(long n)
{
	long (*volatile ops[4])(long, long) = { op_add, op_xor, op_mul, op_sub };
	long acc = 3;
	for (long i = 0; i < n; i++)
		acc = ops[(i ^ acc) & 3](acc, i);
	return acc;
}

long kw_debug_memcpy(long n, long offset)
{
	static char src[4096], dst[4096];
	for (int i = 0; i < 4096; i++) { src[i] = (char)i; dst[i] = 0; }
	memcpy(dst + offset, src + 3, n);
	return (long)hash_bytes((const uint8_t *)dst, 4096);
}
long kw_debug_strlen(long n)
{
	static char s[4096];
	memset(s, 'a', 4095);
	s[n] = 0;
	long r = (long)strlen(s);
	s[n] = 'a';
	return r;
}

#include <signal.h>
#include <time.h>
#include <unistd.h>

static volatile long alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

long kw_alarm_storm(long n, long seed)
{
	/* A timer aimed at this thread only (SIGEV_THREAD_ID): the test process has
	 * other threads, and a process-wide SIGALRM could land in one of them after
	 * the handler is gone. The handler stays installed afterwards for the same
	 * reason. */
	struct sigaction sa;
	struct sigevent ev;
	timer_t timer;
	struct itimerspec every = { { 0, 100000 }, { 0, 100000 } };
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_THREAD_ID;
	ev.sigev_signo = SIGALRM;
	ev._sigev_un._tid = gettid();
	if (timer_create(CLOCK_MONOTONIC, &ev, &timer) != 0)
		return -2;
	alarms = 0;
	timer_settime(timer, 0, &every, NULL);
	long r = kw_sha256(n, seed);
	timer_delete(timer);
	/* The result must not depend on the signals; report that some arrived. */
	return alarms > 0 ? r : -1;
}

/* Function wrapping: one function reached by a direct call, an indirect call and a
 * tail jump (kw_tail_add doubles b and jumps), plus the recursive kw_fib. */
__attribute__((noinline)) long kw_wrapped_add(long a, long b)
{
	__asm__ volatile("" ::: "memory");
	return a + b;
}

long kw_tail_add(long a, long b);
__asm__(
	".text\n"
	".globl kw_tail_add\n"
	".type kw_tail_add, @function\n"
	"kw_tail_add:\n"
	"	add %rsi, %rsi\n"
	"	jmp kw_wrapped_add\n");

static long (*volatile kw_add_pointer)(long, long) = kw_wrapped_add;

long kw_wrap_driver(long n, long unused)
{
	(void)unused;
	long total = 0;
	for (long i = 0; i < n; i++) {
		total += kw_wrapped_add(i, 1);
		total += kw_add_pointer(i, 2);
		total += kw_tail_add(i, 3);
	}
	return total;
}
