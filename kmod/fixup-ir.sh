#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Makes Swift's LLVM IR acceptable to the kernel (see ../shared/KERNEL-SWIFT.md):
# - every attribute group gets the kernel's hardening (return thunks, retpolines,
#   SLS) and loses SSE/x87 (no FPU state in the kernel outside kernel_fpu_begin);
#   clang flags do not reach IR input, function attributes win;
# - private functions become internal so objtool sees a symbol for each;
# - external functions are dso_local (in this module or the kernel, both within
#   the kernel code model's reach): a function's address then loads with a plain
#   relocation, not through a GOT entry, which the module loader does not know.
# stdin: IR from swiftc -emit-ir; stdout: fixed IR.
set -eu
features='"target-features"="-sse,-sse2,-mmx,-x87,-avx,+soft-float,+retpoline-indirect-calls,+retpoline-indirect-branches,+retpoline-external-thunk,+harden-sls-ret,+harden-sls-ijmp"'
sed -E \
	-e '/^attributes #[0-9]+ = \{/ {
		s/"target-features"="[^"]*"//
		s/\}$/fn_ret_thunk_extern '"$(printf '%s' "$features" | sed 's/[&/\]/\\&/g')"' }/
	}' \
	-e 's/^define private /define internal /' \
	-e '/^declare [^@]*@llvm\./!s/^declare /declare dso_local /'
