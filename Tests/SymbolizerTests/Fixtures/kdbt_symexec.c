// SPDX-License-Identifier: GPL-2.0-only
//
// A stand-in for a debug vmlinux: an ET_EXEC with DWARF (gcc -g -O2 -no-pie), since
// no vmlinux with debug information is installed. Lines are found by the EX_* markers.

static volatile int ex_sink;

static inline __attribute__((always_inline)) int ex_inner(int x)
{
	ex_sink = x * 3; /* EX_INNER_LINE */
	return ex_sink;
}

__attribute__((noinline)) int ex_outer(int x)
{
	return ex_inner(x + 1) + 7; /* EX_OUTER_CALL */
}

int main(int argc, char **argv)
{
	(void)argv;
	return ex_outer(argc);
}
