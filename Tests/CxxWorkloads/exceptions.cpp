// SPDX-License-Identifier: GPL-2.0-only
//
// C++ exception unwinding through translated frames: the unwinder walks the stack
// by return addresses and looks them up in .eh_frame, so translated code must leave
// native return addresses on the stack (it does: calls push native addresses).
#include "cxx_workloads.h"
#include <stdexcept>
#include <string>

namespace {
long destroyed = 0;

struct Guard {
	long value;
	explicit Guard(long v) : value(v) {}
	~Guard() { destroyed += value; }
};

long descend(long depth, long round)
{
	Guard guard(depth + round);
	if (depth == 0)
		throw std::runtime_error("bottom " + std::to_string(round));
	return descend(depth - 1, round) + 1;
}
} // namespace

extern "C" long kw_cxx_exceptions(long depth, long rounds)
{
	long caught = 0;
	destroyed = 0;
	for (long r = 0; r < rounds; r++) {
		try {
			caught += descend(depth, r);
		} catch (const std::runtime_error &e) {
			caught += static_cast<long>(std::string(e.what()).size()) * (r + 1);
		}
	}
	return caught * 1000003 + destroyed;
}
