// SPDX-License-Identifier: GPL-2.0-only
#ifndef KDBT_PRELOAD_H
#define KDBT_PRELOAD_H
/// Defined in Swift (KdbtPreload): sets up the host, returns the takeover routine
/// or NULL.
void *kdbt_preload_start(void);
#endif
