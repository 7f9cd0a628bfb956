// SPDX-License-Identifier: GPL-2.0-only
/*
 * qprof-mark start|stop: run in the guest to open or close a counting window
 * of the qprof QEMU plugin (profile.c). Each executes one magic 8-byte no-op
 * that the plugin recognizes at translation time; on real hardware (or
 * without the plugin) it does nothing.
 */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "start")) {
		__asm__ volatile(".byte 0x0f, 0x1f, 0x84, 0x00, 0x51, 0x50, 0x52, 0x53" ::: "memory");
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "stop")) {
		__asm__ volatile(".byte 0x0f, 0x1f, 0x84, 0x00, 0x51, 0x50, 0x52, 0x45" ::: "memory");
		return 0;
	}
	fprintf(stderr, "usage: qprof-mark start|stop\n");
	return 2;
}
