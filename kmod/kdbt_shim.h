/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The interface between the C shim and the Engine (Embedded Swift).
 * Engine entry points are @_cdecl functions in Sources/Engine/Kernel/KernelHost.swift;
 * host services are declared there with @_extern(c) and defined in shim.c.
 * Keep both sides in step: the signatures are checked only by the linker.
 */
#ifndef KDBT_SHIM_H
#define KDBT_SHIM_H
#include <linux/types.h>

/* Engine entry points (Swift). */
void *kdbt_engine_create(void);
void kdbt_engine_destroy(void *engine);
long kdbt_engine_ioctl(void *engine, u32 number, u64 argument);
void kdbt_engine_module_changed(u64 start, u64 bytes);

/* Host services (C), called by the Engine. Sizes are `long` (Swift Int). */
void *kdbt_host_arena_alloc(long bytes);
void kdbt_host_arena_free(void *block);
u64 kdbt_host_live_allocations(void);
u64 kdbt_host_live_bytes(void);
int kdbt_host_copy_from_user(void *dst, u64 src, long n);
int kdbt_host_copy_to_user(u64 dst, const void *src, long n);
int kdbt_host_check_zeroed_user(u64 addr, long n);
int kdbt_host_read_kernel_text(void *dst, u64 addr, long n);
u64 kdbt_host_ns_since_load(void);
u32 kdbt_host_online_cpus(void);
u64 kdbt_host_build_id(void);

/* Translation in the kernel (selftest.c). */
#define KDBT_CONTEXT_BYTES 1024 /* ContextField.size; the Engine checks */
int kdbt_selftest_init(unsigned long (*lookup)(const char *name));
long kdbt_host_selftest_begin(void);
void kdbt_host_selftest_end(void);
long kdbt_host_code_pool_create(long bytes);
void kdbt_host_code_pool_destroy(void);
u64 kdbt_host_code_pool_base(void);
long kdbt_host_code_pool_bytes(void);
void *kdbt_host_code_alloc(long bytes, u64 near);
void *kdbt_host_module_data_alloc(long bytes);
int kdbt_hc_flat_shadow_allowed(void);
void kdbt_hc_report_shadow(u64 flat_bytes);
void kdbt_host_module_data_free(void *p);
void *kdbt_host_cpu_context(u32 cpu);
long kdbt_host_read_code(void *dst, u64 addr, long n);
long kdbt_host_context_gs_offset(void);
long kdbt_host_context_bytes(void);
void *kdbt_host_this_cpu_context(void);
u64 kdbt_host_selftest_stack_top(void);
void kdbt_host_preempt_disable(void);
void kdbt_host_preempt_enable(void);
u32 kdbt_host_cpu(void);
long kdbt_host_selftest_native(long workload, long argument);
u64 kdbt_host_selftest_entry(void);

/* Kernel takeover (takeover.c). */
int kdbt_takeover_init(unsigned long (*lookup)(const char *name));
u64 kdbt_host_symbol(const char *name);
int kdbt_host_pti_enabled(void);
u64 kdbt_host_module_text_start(void);
u64 kdbt_host_module_text_end(void);
void *kdbt_host_idt_copy(void);
u64 kdbt_host_read_lstar(void);
long kdbt_host_dispatcher_stacks_create(void);
u64 kdbt_host_dispatcher_stack_top(u32 cpu);
int kdbt_host_cpu_possible(u32 cpu);
u32 kdbt_host_cpu_ids(void);
void kdbt_host_load_takeover(u64 stub);
void kdbt_host_load_native(void);
void kdbt_host_takeover_free(void);
void kdbt_host_translator_lock(void);
void kdbt_host_translator_unlock(void);
unsigned long kdbt_host_translator_lock_irqsave(void);
void kdbt_host_translator_unlock_irqrestore(unsigned long flags);
void kdbt_host_clear_dr6(void);
u64 kdbt_host_ktime_ns(void);
u64 kdbt_host_kernel_cs(void);
u64 kdbt_host_kernel_ss(void);
void *kdbt_host_return_page(void);
int kdbt_host_is_function_start(u64 address);
int kdbt_host_has_fault_fixup(u64 address);
int kdbt_host_c_function_at(u64 address);
bool kdbt_return_page_in_use(void);
void kdbt_return_page_free(bool in_use);

/* heapcheck (heapcheck.c). */
int kdbt_heapcheck_init(unsigned long (*lookup)(const char *name));
int kdbt_hc_classes(u64 *sizes, u64 *caches, int capacity);
int kdbt_hc_capture_stack(u64 pc, u64 sp, u64 bp, u64 *frames, int capacity, u64 *reads, int *nreads);
s64 kdbt_hc_current_task_slot(void);
s64 kdbt_hc_task_struct_bytes(void);
u32 kdbt_hc_current_task(u32 *pid, u8 *comm);
void kdbt_hc_release(u64 cache, u64 pointer);
int kdbt_hc_describe_cache(u64 cache, u8 *name, u64 *object_size);
u64 kdbt_hc_cache_object_size(u64 cache);
void kdbt_hc_lock(void);
void kdbt_hc_unlock(void);
u64 kdbt_hc_direct_map_base(void);
u64 kdbt_hc_direct_map_pages(void);
u64 kdbt_hc_page_bytes(u64 size);
void kdbt_hc_set_active(int active);

/* stackguard (stackguard.c). */
int kdbt_stackguard_init(unsigned long (*lookup)(const char *name));
u32 kdbt_sg_classify(u64 sp, u64 *base, u64 *size);
int kdbt_sg_capture_frames(u64 pc, u64 sp, u64 bp, u64 *frames, u64 *sps, int capacity);
int kdbt_sg_capture_stack(u64 pc, u64 sp, u64 bp, u64 *frames, int capacity, u64 *reads, int *nreads);
int kdbt_sg_frame_bytes(u64 pc);

/* The report ring (findings.c). */
void kdbt_findings_lock(void);
void kdbt_findings_unlock(void);
void kdbt_findings_keep(const void *records, const void *keys, long count, long record_bytes, u64 dropped);
long kdbt_findings_kept(const void **records, u64 *dropped);
void kdbt_findings_exit(void);

/* memory.c: what engine.o's memcpy, memmove and memset calls become. */
void *kdbt_memcpy(void *dest, const void *src, size_t n);
void *kdbt_memmove(void *dest, const void *src, size_t n);
void *kdbt_memset(void *dest, int c, size_t n);
#endif
