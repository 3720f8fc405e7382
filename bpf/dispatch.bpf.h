/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Syscall capture without tracefs: one tp_btf program on the raw sys_enter
 * tracepoint and one on sys_exit, dispatching on the syscall number.
 *
 * Classic per-syscall tracepoints (tracepoint/syscalls/sys_enter_openat)
 * are found by id in tracefs, which a DaemonSet without CAP_SYS_ADMIN can
 * neither mount nor rely on; tp_btf attaches by BTF id with CAP_BPF and
 * CAP_PERFMON alone. Either way every syscall of the host takes the
 * kernel's tracing slow path; the dispatcher adds one BPF program run.
 *
 * Fast path: a syscall the sensor does not watch costs one bit test in
 * sys_any_enter or sys_any_exit (.rodata) and returns. A watched number is
 * tail-called into its handler, the program enter_<name> or exit_<name>
 * that the loader put at that number's slot in sys_enter_calls /
 * sys_exit_calls (internal/runtime/syscalls*.go holds the numbers per
 * architecture, from golang.org/x/sys/unix). A handler reads its
 * arguments from the pt_regs the tracepoint passes, with direct BTF loads.
 * New capture slots in by adding a handler pair and a table row; the
 * dispatcher does not change.
 *
 * Measured choices: tp_btf rather than raw_tp (an empty pair of either
 * costs the same per syscall, and tp_btf reads pt_regs with plain loads
 * where raw_tp needs a helper call per register); tail calls rather than
 * one program with the handlers inline (together they take over 4M
 * verifier steps, four times the limit of one program).
 *
 * 32-bit syscalls on a 64-bit kernel (a 32-bit binary, or int 0x80 from a
 * 64-bit one) have their own numbers and argument registers: slots
 * SYS_COMPAT_BASE and up hold the compat numbers, the thread's TS_COMPAT
 * status picks the half, and handlers read the compat registers. On x86-64
 * x32 calls (number | __X32_SYSCALL_BIT) use the native registers and,
 * except for a few x32-only numbers in the table, the native numbers.
 *
 * A row may have an exit handler only (the path families, decided at
 * sys_exit from the argument registers); its sys_enter returns on the first
 * bit test, and pays no tail call. The open family, the most frequent
 * watched call, has no handler at all: the sys_exit dispatcher decides it
 * inline (sys_open_call), on the file the call opened.
 *
 * Slot layout: SYS_SLOTS bits; native numbers below SYS_COMPAT_BASE. */
#pragma once

#include "common.h"

#define SYS_COMPAT_BASE 1024
#define SYS_SLOTS 2048
#define X32_SYSCALL_BIT 0x40000000
#define TS_COMPAT_K 0x0002

/* sys_watched_*: slot bits (native and compat halves) of the rows with a
 * handler on that side; sys_any_*: the OR of the two halves, so that the
 * common unwatched call returns on one test before the compat status is
 * read. Set by the loader. */
volatile const __u8 sys_watched_enter[SYS_SLOTS / 8] = {};
volatile const __u8 sys_any_enter[SYS_COMPAT_BASE / 8] = {};
volatile const __u8 sys_watched_exit[SYS_SLOTS / 8] = {};
volatile const __u8 sys_any_exit[SYS_COMPAT_BASE / 8] = {};

/* Tail-call targets by slot. The loader fills them after load and before
 * the dispatchers attach. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, SYS_SLOTS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} sys_enter_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, SYS_SLOTS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} sys_exit_calls SEC(".maps");

/* arm64's pt_regs, for CO-RE: vmlinux.h is generated on x86-64. Only the
 * branch of the running architecture survives relocation; the other one
 * is dead code the verifier never sees. */
struct pt_regs___arm64 {
	__u64 regs[31];
	__u64 orig_x0;
	__s32 syscallno;
} __attribute__((preserve_access_index));

/* in_compat_syscall is the kernel's in_ia32_syscall(): set from entry of a
 * 32-bit syscall until the return to user space, so sys_exit sees it too.
 * Not on arm64 (AArch32 tasks are not handled: their numbers are not in
 * the table, see internal/runtime/syscalls_arm64.go). */
static __always_inline bool in_compat_syscall(void)
{
	struct task_struct *t = bpf_get_current_task_btf();
	if (!bpf_core_field_exists(t->thread_info.status))
		return false;
	return t->thread_info.status & TS_COMPAT_K;
}

/* sys_nr is the syscall number of the current call at sys_exit. */
static __always_inline long sys_nr(struct pt_regs *regs)
{
	if (bpf_core_field_exists(regs->orig_ax))
		return regs->orig_ax;
	struct pt_regs___arm64 *r = (void *)regs;
	if (bpf_core_field_exists(r->syscallno))
		return r->syscallno;
	return -1;
}

/* sys_slot returns the dispatch slot of syscall nr, or -1 when the sensor
 * has no handler for it on the side whose bitmaps are any and watched. */
static __always_inline int sys_slot(long nr, const volatile __u8 *any, const volatile __u8 *watched)
{
	__u64 n = (__u64)nr & ~(__u64)X32_SYSCALL_BIT;
	if (n >= SYS_COMPAT_BASE)
		return -1;
	if (!(any[n >> 3] & (1 << (n & 7))))
		return -1;
	if (in_compat_syscall())
		n += SYS_COMPAT_BASE;
	if (!(watched[(n >> 3) & (SYS_SLOTS / 8 - 1)] & (1 << (n & 7))))
		return -1;
	return n;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(kestrel_sys_enter, struct pt_regs *regs, long id)
{
	int slot = sys_slot(id, sys_any_enter, sys_watched_enter);
	if (slot >= 0)
		bpf_tail_call(ctx, &sys_enter_calls, slot);
	return 0;
}

/* sys_open_call: open_call + 1 at the slots of the open family, whose
 * sys_exit is decided here inline (open_exit, open.bpf.h) instead of in a
 * tail-called handler: the open family is the most frequent watched call,
 * and a tail call costs it ~20 ns (measured). Set by the loader. */
volatile const __u8 sys_open_call[SYS_SLOTS] = {};

static __always_inline void open_exit(void *ctx, struct pt_regs *regs, long ret, __u16 call);

SEC("tp_btf/sys_exit")
int BPF_PROG(kestrel_sys_exit, struct pt_regs *regs, long ret)
{
	int slot = sys_slot(sys_nr(regs), sys_any_exit, sys_watched_exit);
	if (slot < 0)
		return 0;
	__u8 oc = sys_open_call[slot & (SYS_SLOTS - 1)];
	if (oc) {
		open_exit(ctx, regs, ret, oc - 1);
		return 0;
	}
	bpf_tail_call(ctx, &sys_exit_calls, slot);
	return 0;
}

/* The arguments of the current syscall, read from pt_regs: native or
 * compat registers. Still valid at sys_exit (only the return register has
 * changed), which is what lets an exit handler rebuild a call whose
 * sys_enter never ran. */
struct sys_args {
	__u64 a[6];
	bool compat;
};

static __always_inline void sys_args_get(struct pt_regs *regs, struct sys_args *a)
{
	a->compat = in_compat_syscall();
	if (bpf_core_field_exists(regs->di)) {
		if (a->compat) { /* i386: ebx, ecx, edx, esi, edi, ebp */
			a->a[0] = (__u32)regs->bx;
			a->a[1] = (__u32)regs->cx;
			a->a[2] = (__u32)regs->dx;
			a->a[3] = (__u32)regs->si;
			a->a[4] = (__u32)regs->di;
			a->a[5] = (__u32)regs->bp;
		} else {
			a->a[0] = regs->di;
			a->a[1] = regs->si;
			a->a[2] = regs->dx;
			a->a[3] = regs->r10;
			a->a[4] = regs->r8;
			a->a[5] = regs->r9;
		}
		return;
	}
	struct pt_regs___arm64 *r = (void *)regs;
	if (bpf_core_field_exists(r->orig_x0)) {
		a->a[0] = r->orig_x0; /* x0 holds the return value at sys_exit */
		a->a[1] = r->regs[1];
		a->a[2] = r->regs[2];
		a->a[3] = r->regs[3];
		a->a[4] = r->regs[4];
		a->a[5] = r->regs[5];
		return;
	}
	__builtin_memset(a->a, 0, sizeof(a->a));
}

/* Handler definitions: SYS_ENTER(name) and SYS_EXIT(name) open the bodies
 * of the tail-call targets for the table rows named name. regs and id (the
 * syscall number) or ret (its result) are in scope. */
#define SYS_ENTER(name) \
	SEC("tp_btf/sys_enter") int BPF_PROG(enter_##name, struct pt_regs *regs, long id)
#define SYS_EXIT(name) \
	SEC("tp_btf/sys_exit") int BPF_PROG(exit_##name, struct pt_regs *regs, long ret)

#define KS_EPERM 1
#define KS_EACCES 13
#define KS_ENOSYS 38

/* refused_errno: the results of a call that seccomp, a tracer or an LSM
 * stopped before it ran (the errnos seccomp profiles return). */
static __always_inline bool refused_errno(long ret)
{
	return ret == -KS_EPERM || ret == -KS_EACCES || ret == -KS_ENOSYS;
}
