// SPDX-License-Identifier: GPL-2.0-only
//
// elfutils' libdw and libdwfl (libdw-dev) for the Symbolizer. Swift calls libdw
// directly; the one C function exists because libdwfl keeps a pointer to its
// callbacks for the handle's lifetime, which a static C table gives for free.

#ifndef CLIBDW_H
#define CLIBDW_H

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>

/// Opens `path` (vmlinux or a .ko, possibly compressed) with libdwfl's offline
/// reporting: a relocatable file's sections get distinct addresses and its DWARF
/// is relocated. Returns NULL with the reason in dwfl_errmsg(-1) on failure;
/// otherwise the caller owns the handle (dwfl_end) and *module is its only module.
Dwfl *clibdw_report_offline(const char *name, const char *path, Dwfl_Module **module);

#endif
