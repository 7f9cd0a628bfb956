// SPDX-License-Identifier: GPL-2.0-only
/*
 * The engine's memcpy, memmove and memset (Kbuild points engine.o's calls here,
 * objcopy --redefine-sym): eight bytes a step. The kernel's own pick rep movsb
 * and rep stosb on CPUs with ERMS, which QEMU steps through a byte at a time,
 * and the engine copies its structs (instructions, operands, blocks) often: a
 * 200-byte copy is 25 steps here, 200 there.
 */
#include <linux/string.h>
#include <linux/types.h>
#include "kdbt_shim.h"

void *kdbt_memcpy(void *dest, const void *src, size_t n)
{
	void *d = dest;
	size_t words = n >> 3, bytes = n & 7;

	asm volatile("rep movsq" : "+D"(d), "+S"(src), "+c"(words) : : "memory");
	asm volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(bytes) : : "memory");
	return dest;
}

/* Forward unless the destination overlaps the source from above: eight-byte
 * moves forward are safe when dest < src (each word is read before anything
 * after it is written). */
void *kdbt_memmove(void *dest, const void *src, size_t n)
{
	if (dest <= src || dest >= src + n)
		return kdbt_memcpy(dest, src, n);
	return memmove(dest, src, n);
}

void *kdbt_memset(void *dest, int c, size_t n)
{
	void *d = dest;
	size_t words = n >> 3, bytes = n & 7;
	u64 pattern = (u8)c * 0x0101010101010101ull;

	asm volatile("rep stosq" : "+D"(d), "+c"(words) : "a"(pattern) : "memory");
	asm volatile("rep stosb" : "+D"(d), "+c"(bytes) : "a"(pattern) : "memory");
	return dest;
}
