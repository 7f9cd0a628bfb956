// SPDX-License-Identifier: GPL-2.0-only
//
// The offline callbacks are eu-addr2line's: standard separate-debuginfo search
// (.gnu_debuglink, /usr/lib/debug/.build-id) and section layout for ET_REL files.

#include "clibdw.h"

#include <stddef.h>

static char *debuginfo_path;

static const Dwfl_Callbacks offline_callbacks = {
	.find_elf = dwfl_build_id_find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.section_address = dwfl_offline_section_address,
	.debuginfo_path = &debuginfo_path,
};

Dwfl *clibdw_report_offline(const char *name, const char *path, Dwfl_Module **module)
{
	Dwfl *dwfl = dwfl_begin(&offline_callbacks);

	*module = NULL;
	if (dwfl == NULL)
		return NULL;
	dwfl_report_begin(dwfl);
	*module = dwfl_report_offline(dwfl, name, path, -1);
	if (*module == NULL || dwfl_report_end(dwfl, NULL, NULL) != 0) {
		dwfl_end(dwfl);
		*module = NULL;
		return NULL;
	}
	return dwfl;
}
