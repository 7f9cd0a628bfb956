// SPDX-License-Identifier: GPL-2.0-only
/*
 * kdbt-guest-bench [SCALE [NAME]]: kernel-heavy microbenchmarks for `make bench`, run in
 * the guest natively and attached: prints one line per benchmark, "NAME NS_PER_OP".
 * Each benchmark is sized by SCALE so that it takes about 0.2 s natively under QEMU TCG
 * (shorter runs are at the mercy of a single host hiccup).
 * Every benchmark first runs a tenth of its iterations untimed: the steady state is
 * measured, not the first translation of each path (by kdbt, and by QEMU of both
 * the kernel and kdbt's code cache).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

/* Only the benchmark named by argv[2], when given. */
static const char *only;

#define BENCH(name, n, body)                                                    \
	if (!only || !strcmp(only, name))                                       \
	do {                                                                    \
		for (long i = 0; i < (long)((n) / 10); i++) {                           \
			body;                                                   \
		}                                                               \
		double t0 = now();                                              \
		for (long i = 0; i < (long)(n); i++) {                                \
			body;                                                   \
		}                                                               \
		printf("%-14s %10.0f\n", name, (now() - t0) / (double)(n));     \
		fflush(stdout);                                                 \
	} while (0)

int main(int argc, char **argv)
{
	double scale = argc > 1 ? atof(argv[1]) : 1;
	only = argc > 2 ? argv[2] : NULL;
	char buf[4096];
	memset(buf, 'x', sizeof buf);
	int null = open("/dev/null", O_RDWR);
	int zero = open("/dev/zero", O_RDONLY);
	int fds[2];
	if (pipe(fds))
		return 1;

	BENCH("getpid", 200000 * scale, syscall(SYS_getpid));
	BENCH("read-zero", 100000 * scale, if (read(zero, buf, 64) != 64) return 1);
	BENCH("write-null", 100000 * scale, if (write(null, buf, 64) != 64) return 1);
	BENCH("pipe-rw", 20000 * scale, {
		if (write(fds[1], buf, 512) != 512 || read(fds[0], buf, 512) != 512)
			return 1;
	});
	BENCH("open-close", 6000 * scale, close(open("/etc/passwd", O_RDONLY)));
	BENCH("mmap-munmap", 1000 * scale, {
		char *p = mmap(0, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		p[0] = 1;
		p[32768] = 2;
		munmap(p, 65536);
	});
	BENCH("fork-exit", 60 * scale, {
		pid_t p = fork();
		if (p == 0)
			_exit(0);
		waitpid(p, 0, 0);
	});
	BENCH("tmpfs-file", 300 * scale, {
		char name[64];
		snprintf(name, sizeof name, "/tmp/kdbt-bench-%ld", i & 15);
		int fd = open(name, O_CREAT | O_TRUNC | O_RDWR, 0600);
		for (int k = 0; k < 4; k++)
			if (write(fd, buf, sizeof buf) != sizeof buf)
				return 1;
		lseek(fd, 0, SEEK_SET);
		while (read(fd, buf, sizeof buf) > 0)
			;
		close(fd);
		unlink(name);
	});
	return 0;
}
