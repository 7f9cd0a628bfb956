# SPDX-License-Identifier: GPL-2.0-only
#
# kdbt's entry points. On a fresh Debian machine, `make demo` and `make check` install
# what they need (apt) and build everything.
#
#   make demo                 boot the guest, load the module, show what kdbt does
#   make check                every test: swift test, the kernel build, guest tests
#   make kmod                 build kmod/kdbt.ko (warnings are fatal)
#   make vm-run SCRIPT=F [VMFILES=DIR]   run a script as root in the guest
#   make decoder-diff         the decoder against Zydis and Capstone on the whole corpus
#   make fuzz [FUZZ_CASES=N] [SEED=S]    random bytes into the decoder next to guard pages
#   make bench                decoder speed (kdbt vs Zydis vs Capstone), user-mode and
#                             kernel overhead ratios (ICOUNT=1: instruction counts)
#
# KVER/KDIR pick the guest kernel (default: newest /boot/vmlinuz-* with headers).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# Recursive (=) so they are evaluated after `deps` has installed the headers.
KVER = $(shell scripts/kver)
KDIR = /lib/modules/$(KVER)/build
# Identifies the module's sources; reported by `kdbt version`.
BUILD_ID = $(shell cat $$(find Sources/Protocol Sources/Engine kmod -name '*.swift' -o -name '*.c' \
	-o -name '*.h' -o -name Kbuild -o -name '*.sh' | sort) | sha256sum | cut -c1-16)
SWIFT_BUILD = swift build
# The guest kernel as an ELF file, extracted from its bzImage (decoder corpus, disasm test).
VMLINUX = build/vmlinux
GUEST_BINARIES = .build/debug/kdbt .build/debug/kdbt-guest-client .build/debug/kdbt-guest-workload
# Programs put into the guest next to kdbt (each with its libraries).
GUEST_EXTRA = --extra-bin .build/debug/kdbt-guest-client --extra-bin .build/debug/kdbt-guest-workload \
	--extra-bin $(shell command -v stress-ng)

.PHONY: all deps build kmod test unit-test guest-test check demo vm-run clean bench-user bench-kernel
.PHONY: decoder-tools decoder-diff decoder-slice fuzz bench bench-decoder

all: build kmod

deps:
	@scripts/ensure-deps

build: deps
	$(SWIFT_BUILD) --product kdbt
	$(SWIFT_BUILD) --product kdbt-preload
	$(SWIFT_BUILD) --product kdbt-guest-client
	$(SWIFT_BUILD) --product kdbt-inscount-oracle
	$(SWIFT_BUILD) --product kdbt-guest-workload

# Any modpost or objtool warning fails the build: the log is checked after Kbuild.
kmod: deps
	@mkdir -p build
	$(MAKE) -C $(KDIR) M=$(CURDIR)/kmod KDBT_BUILD_ID=0x$(BUILD_ID) modules 2>&1 | tee build/kmod.log
	$(MAKE) -C $(KDIR) M=$(CURDIR)/Tests/HeapBugs KBUILD_EXTRA_SYMBOLS=$(CURDIR)/kmod/Module.symvers \
		modules 2>&1 | tee -a build/kmod.log
	@if grep -inE 'warning|objtool:' build/kmod.log; then \
		echo "make kmod: the kernel build printed warnings (above); they are fatal" >&2; exit 1; fi

# The user-mode tests run the built kdbt and libkdbt-preload.so.
unit-test: build
	swift test

guest-test: build kmod $(VMLINUX)
	scripts/guest-tests

test check: unit-test kmod guest-test decoder-slice

# On the host first (no module can load here: the CLI says so and exits 2), then in
# the guest as a new user would.
demo: build kmod
	@echo "# on the host: kdbt status"; .build/debug/kdbt status || echo "(exit status $$?)"
	VM_TIMEOUT=$${VM_TIMEOUT:-900} scripts/vm-run $(GUEST_EXTRA) scripts/demo-guest.sh

vm-run: build kmod
	@test -n "$(SCRIPT)" || { echo "usage: make vm-run SCRIPT=FILE [VMFILES=DIR]" >&2; exit 64; }
	scripts/vm-run $(if $(VMFILES),--vmfiles $(VMFILES)) $(GUEST_EXTRA) $(SCRIPT)

clean:
	-$(MAKE) -C $(KDIR) M=$(CURDIR)/kmod clean
	-$(MAKE) -C $(KDIR) M=$(CURDIR)/Tests/HeapBugs clean
	rm -rf build .build

# ---- decoder: differential test (Zydis, Capstone), round trip, fuzzing, benchmark
MODULES_DIR = /lib/modules/$(KVER)/kernel
LIBC = /lib/x86_64-linux-gnu/libc.so.6
LIBSWIFTCORE = $(dir $(shell command -v swift))../lib/swift/linux/libswiftCore.so
DECODER_DIFF = .build/release/decoder-diff
FUZZ_CASES ?= 5000000
SEED ?= 1

decoder-tools: deps
	$(SWIFT_BUILD) -c release --product decoder-diff
	$(SWIFT_BUILD) -c release --product DecoderBench

# The ELF vmlinux out of the guest kernel's bzImage.
$(VMLINUX):
	@mkdir -p build
	python3 tools/x86/extract-vmlinux.py /boot/vmlinuz-$(KVER) $@

# Whole corpus: vmlinux, every module, libc, libswiftCore (a few minutes).
decoder-diff: decoder-tools $(VMLINUX)
	@find $(MODULES_DIR) -name '*.ko' | sort > build/decoder-corpus.txt
	@echo "$(VMLINUX)" >> build/decoder-corpus.txt
	@echo "$(LIBC)" >> build/decoder-corpus.txt
	@echo "$(LIBSWIFTCORE)" >> build/decoder-corpus.txt
	$(DECODER_DIFF) --check --files-from build/decoder-corpus.txt --classes-to build/decoder-diff-classes.txt

# The slice `make check` runs: every 16th module and libc, plus a short fuzz run.
decoder-slice: decoder-tools
	@mkdir -p build
	@find $(MODULES_DIR) -name '*.ko' | sort | awk 'NR % 16 == 1' > build/decoder-slice.txt
	@echo "$(LIBC)" >> build/decoder-slice.txt
	$(DECODER_DIFF) --check --files-from build/decoder-slice.txt --classes-to build/decoder-slice-classes.txt
	$(DECODER_DIFF) --fuzz 200000 --seed $(SEED)

fuzz: decoder-tools
	@# the guard page must catch a read past the buffer (the self-test dies with exit 1)
	@if $(DECODER_DIFF) --case -1 2>/dev/null; then echo "fuzz: guard-page self-test did not fault" >&2; exit 1; fi
	$(DECODER_DIFF) --fuzz $(FUZZ_CASES) --seed $(SEED)

bench-decoder: decoder-tools $(VMLINUX)
	.build/release/DecoderBench --reps 5 $(VMLINUX)

# User mode: standalone programs natively, under kdbt user (null, inscount),
# valgrind and qemu-user, in one invocation (release build of kdbt).
bench-user: deps
	$(SWIFT_BUILD) -c release --product kdbt
	$(SWIFT_BUILD) -c release --product kdbt-preload
	scripts/bench-user

# Kernel: syscall microbenchmarks and a tmpfs workload in one guest boot, natively
# and attached with each tool (TOOLS, ROUNDS), as ratios; attach/detach latency.
# ICOUNT=1: instruction-count ratios under QEMU -icount, free of host noise.
bench-kernel: build kmod
	$(SWIFT_BUILD) --product kdbt-guest-bench
	scripts/bench-kernel

bench: bench-decoder bench-user bench-kernel
