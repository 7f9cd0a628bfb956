// SPDX-License-Identifier: GPL-2.0-only
// Real C code run natively and under the translator; each returns a value that
// summarizes its whole computation, so native and translated runs can be compared.
#ifndef KDBT_WORKLOADS_H
#define KDBT_WORKLOADS_H
#include <stddef.h>
#include <stdint.h>

long kw_sum(long n);
long kw_fib(long n);
/// Sorts n pseudo-random ints with qsort and a comparator callback; returns a hash.
long kw_qsort(long n, long seed);
/// SHA-256 of n pseudo-random bytes; returns the first 8 digest bytes.
long kw_sha256(long n, long seed);
/// A bytecode interpreter (switch with a jump table) running `steps` steps.
long kw_interpret(long steps);
/// setjmp/longjmp from `depth` frames deep, `rounds` times.
long kw_longjmp(long depth, long rounds);
/// glibc's (vectorized) string functions on buffers of n bytes.
long kw_strings(long n);
/// zlib compress + uncompress of n bytes; returns a hash of the round trip, or a
/// negative zlib error.
long kw_zlib(long n, long seed);
/// Calls through a table of function pointers (indirect calls, returns).
long kw_indirect(long n);

/// Function wrapping targets: kw_wrapped_add(a, b) = a + b, reached from
/// kw_wrap_driver(n, _) by n direct calls (b = 1), n indirect calls (b = 2) and n
/// tail jumps through kw_tail_add (b = 3 doubled to 6).
long kw_wrapped_add(long a, long b);
long kw_tail_add(long a, long b);
long kw_wrap_driver(long n, long unused);

long kw_debug_memcpy(long n, long offset); long kw_debug_strlen(long n);
/// Runs fn(a, b) natively in a forked child under ptrace single-stepping; returns
/// the number of instructions fn executed (its final ret included), or -1. The
/// child's result goes to *result.
long kw_ptrace_count(long (*fn)(long, long), long a, long b, long *result);
/// kw_sha256(n, seed) under a 10 kHz SIGALRM storm (a timer aimed at the calling
/// thread); -1 if no signal arrived.
long kw_alarm_storm(long n, long seed);
/// Both halves of the inscount check in one single-threaded child: the ptrace
/// count of fn(a, b) natively, then the prepared translated call; returns the
/// oracle's count (or -1) and fills the results and the translated count.
long kw_count_pair(long (*fn)(long, long), long a, long b, uint64_t gs_base, uint64_t (*enter)(void),
		   const uint64_t *counter, long *native_result, long *translated_result, long *translated_count);
#endif
