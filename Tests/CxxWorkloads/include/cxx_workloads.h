// SPDX-License-Identifier: GPL-2.0-only
// C++ code with a C interface, for the translator tests.
#ifndef KDBT_CXX_WORKLOADS_H
#define KDBT_CXX_WORKLOADS_H
#ifdef __cplusplus
extern "C" {
#endif
/// Throws from `depth` frames deep and catches, `rounds` times; frames in between
/// run destructors. Returns a checksum of what was caught and destroyed.
long kw_cxx_exceptions(long depth, long rounds);
#ifdef __cplusplus
}
#endif
#endif
