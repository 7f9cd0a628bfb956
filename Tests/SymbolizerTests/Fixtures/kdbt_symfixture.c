// SPDX-License-Identifier: GPL-2.0-only
//
// The Symbolizer tests' module: built with Kbuild at test time against the installed
// kernel headers (Debian's config has CONFIG_DEBUG_INFO), never loaded. The tests find
// lines by the FX_* markers, so code may move; keep each marker on its statement.

#include <linux/module.h>

static int fx_sink;

static __always_inline int fx_inner(int x)
{
	WRITE_ONCE(fx_sink, x * 3); /* FX_INNER_LINE */
	return READ_ONCE(fx_sink);
}

/* GCC's line table starts a function at its opening brace. */
noinline int fx_outer(int x)
{ /* FX_OUTER_ENTRY */
	int r = fx_inner(x + 1); /* FX_OUTER_CALL */

	return r + 7;
}
EXPORT_SYMBOL(fx_outer);

static __always_inline int fx_leaf(int x)
{
	WRITE_ONCE(fx_sink, x ^ 0x5a); /* FX_LEAF_LINE */
	return READ_ONCE(fx_sink);
}

static __always_inline int fx_middle(int x)
{
	return fx_leaf(x * 5) + 1; /* FX_MIDDLE_CALL */
}

noinline int fx_deep(int x)
{
	return fx_middle(x - 2) * 11; /* FX_DEEP_CALL */
}
EXPORT_SYMBOL(fx_deep);

static int __init fx_init(void)
{
	return fx_outer(0) + fx_deep(0) == -1; /* FX_INIT_LINE */
}

static void __exit fx_exit(void)
{
}

module_init(fx_init);
module_exit(fx_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdbt Symbolizer test fixture (never loaded)");
