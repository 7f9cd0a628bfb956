// SPDX-License-Identifier: GPL-2.0-only
/*
 * kdbt-guest-workload [ROUNDS]: a kernel-heavy mix whose output depends only on
 * what the kernel computed, so a run under `kdbt attach` must print exactly what
 * a native run prints: tmpfs file operations, fork/exit, fork/exec, pipes,
 * signals, mmap/munmap with page faults, and system calls that fail with EFAULT
 * on bad user pointers (exception-table fixups).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t mix(uint64_t h, uint64_t v)
{
	return (h ^ v) * 0x100000001b3ull;
}

static uint64_t files(int rounds)
{
	char name[64], back[64], buf[4096];
	uint64_t h = 1469598103934665603ull;
	for (int i = 0; i < rounds; i++) {
		snprintf(name, sizeof name, "/tmp/kdbt-wl-%d-%d", (int)getpid(), i);
		int fd = open(name, O_CREAT | O_TRUNC | O_RDWR, 0600);
		if (fd < 0)
			return 0;
		for (int j = 0; j < (int)sizeof buf; j++)
			buf[j] = (char)(i * 31 + j);
		for (int k = 0; k < 4; k++)
			if (write(fd, buf, sizeof buf) != sizeof buf)
				return 1;
		struct stat st;
		fstat(fd, &st);
		h = mix(h, (uint64_t)st.st_size);
		lseek(fd, 1000, SEEK_SET);
		ssize_t n = read(fd, buf, sizeof buf);
		h = mix(h, (uint64_t)n);
		for (int j = 0; j < n; j++)
			h = mix(h, (uint8_t)buf[j]);
		close(fd);
		snprintf(back, sizeof back, "%s.renamed", name);
		rename(name, back);
		h = mix(h, (uint64_t)(access(back, R_OK) == 0));
		unlink(back);
	}
	return h;
}

static uint64_t forks(int rounds)
{
	uint64_t sum = 0;
	for (int i = 0; i < rounds; i++) {
		pid_t p = fork();
		if (p == 0)
			_exit(i & 63);
		int st = 0;
		waitpid(p, &st, 0);
		sum += WEXITSTATUS(st);
	}
	return sum;
}

static uint64_t execs(int rounds)
{
	uint64_t ok = 0;
	for (int i = 0; i < rounds; i++) {
		pid_t p = fork();
		if (p == 0) {
			execl("/bin/sh", "sh", "-c", "exit 3", (char *)0);
			_exit(127);
		}
		int st = 0;
		waitpid(p, &st, 0);
		ok += WEXITSTATUS(st) == 3;
	}
	return ok;
}

static uint64_t pipes(int rounds)
{
	int fds[2];
	if (pipe(fds))
		return 0;
	pid_t p = fork();
	if (p == 0) {
		close(fds[0]);
		char buf[8192];
		for (int i = 0; i < rounds; i++) {
			memset(buf, i, sizeof buf);
			if (write(fds[1], buf, sizeof buf) != sizeof buf)
				_exit(1);
		}
		_exit(0);
	}
	close(fds[1]);
	uint64_t h = 0, total = 0;
	char buf[3000];
	ssize_t n;
	while ((n = read(fds[0], buf, sizeof buf)) > 0) {
		total += (uint64_t)n;
		for (ssize_t j = 0; j < n; j++)
			h += (uint8_t)buf[j];
	}
	close(fds[0]);
	waitpid(p, 0, 0);
	return total * 1000003 + h;
}

static volatile sig_atomic_t caught;
static void on_signal(int s)
{
	(void)s;
	caught++;
}

static uint64_t signals(int rounds)
{
	signal(SIGUSR1, on_signal);
	caught = 0;
	for (int i = 0; i < rounds; i++)
		kill(getpid(), SIGUSR1);
	return (uint64_t)caught;
}

static uint64_t maps(int rounds)
{
	uint64_t h = 0;
	long page = sysconf(_SC_PAGESIZE);
	for (int i = 0; i < rounds; i++) {
		size_t bytes = (size_t)page * (1 + i % 16);
		uint8_t *p = mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return 0;
		for (size_t o = 0; o < bytes; o += (size_t)page)
			p[o] = (uint8_t)(o / (size_t)page + i);
		for (size_t o = 0; o < bytes; o += (size_t)page)
			h += p[o];
		munmap(p, bytes);
	}
	return h;
}

/* Bad user pointers: the kernel's uaccess faults, its exception table fixes them
 * up, and the call returns EFAULT. */
static uint64_t efaults(int rounds)
{
	uint64_t n = 0;
	int fd = open("/proc/self/stat", O_RDONLY);
	int zero = open("/dev/zero", O_RDONLY);
	for (int i = 0; i < rounds; i++) {
		n += read(zero, (void *)16, 64) < 0 && errno == EFAULT;
		n += write(1, (void *)(uintptr_t)0xdead0000, 8) < 0 && errno == EFAULT;
		n += stat((const char *)1, (struct stat *)8) < 0 && errno == EFAULT;
		n += pread(fd, (void *)0x1000, 16, 0) < 0 && errno == EFAULT;
	}
	close(fd);
	close(zero);
	return n;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 50;
	printf("files %llu\n", (unsigned long long)files(rounds));
	printf("fork %llu\n", (unsigned long long)forks(rounds));
	printf("exec %llu\n", (unsigned long long)execs(rounds / 5 + 1));
	printf("pipe %llu\n", (unsigned long long)pipes(rounds * 4));
	printf("signals %llu\n", (unsigned long long)signals(rounds * 10));
	printf("mmap %llu\n", (unsigned long long)maps(rounds * 2));
	printf("efault %llu\n", (unsigned long long)efaults(rounds));
	return 0;
}
