// SPDX-License-Identifier: GPL-2.0-only
//
// The moment `kdbt user` takes a program over: this constructor runs while the
// dynamic loader initializes the preloaded libkdbt-preload.so, before the
// program's own initializers and its entry point. Calling the takeover routine
// returns from it translated: everything after (the rest of the loader, _start,
// main, exit) runs from the code cache.
#include "kdbt_preload.h"

__attribute__((constructor)) static void kdbt_preload_constructor(void)
{
	void (*takeover)(void) = (void (*)(void))kdbt_preload_start();
	if (takeover)
		takeover();
}
