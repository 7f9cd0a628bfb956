// SPDX-License-Identifier: GPL-2.0-only
//
// A standalone CPU-bound program for `make bench` (user-mode part): runs one of the
// translator tests' workloads (Tests/Workloads) at a size that takes 1-3 s natively,
// and prints its result so every run can be checked against the native one.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "workloads.h"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s sha256|qsort|zlib|interpret SIZE\n", argv[0]);
		return 64;
	}
	long n = atol(argv[2]), r;
	if (strcmp(argv[1], "sha256") == 0)
		r = kw_sha256(n, 7);
	else if (strcmp(argv[1], "qsort") == 0)
		r = kw_qsort(n, 42);
	else if (strcmp(argv[1], "zlib") == 0)
		r = kw_zlib(n, 3);
	else if (strcmp(argv[1], "interpret") == 0)
		r = kw_interpret(n);
	else {
		fprintf(stderr, "unknown workload %s\n", argv[1]);
		return 64;
	}
	printf("%s %ld: %ld\n", argv[1], n, r);
	return 0;
}
