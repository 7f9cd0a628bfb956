// SPDX-License-Identifier: GPL-2.0-only
// ioctl(2) is variadic, so Swift cannot call it directly: a fixed-arity wrapper.
#ifndef KDBT_SYS_H
#define KDBT_SYS_H
#include <stdint.h>

/// ioctl(fd, request, arg) with a pointer argument. Returns 0 or -errno.
int kdbt_sys_ioctl(int fd, unsigned long request, void *arg);
/// ioctl with an integer argument (used to pass raw, possibly bad, addresses).
int kdbt_sys_ioctl_raw(int fd, unsigned long request, unsigned long arg);
/// open(path, O_RDWR | O_CLOEXEC). Returns fd or -errno.
int kdbt_sys_open_device(const char *path);
#endif
