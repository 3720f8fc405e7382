/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Self-protection: every signal generated for one of the sensor's threads.
 *
 * signal_generate fires inside the kernel's one place where a signal is
 * queued (__send_signal_locked), whatever sent it: kill, tkill, tgkill,
 * rt_sigqueueinfo, rt_tgsigqueueinfo, pidfd_send_signal, a process group
 * or kill(-1), the SIGSTOP of a ptrace attach, the OOM killer. It runs in
 * the sender's context, before the signal is delivered, so the record is in
 * the ring buffer before a SIGSTOP takes effect (the reader sees it after
 * SIGCONT); only a SIGKILL leaves the sensor no time to read it.
 *
 * The header's task is the sender. Signals the sensor sends itself (the Go
 * runtime's SIGURG preemption, its timers) and the kernel's SIGCHLD about
 * its own children are not reported. The layout is a contract with
 * internal/runtime/decode_self.go. */
#pragma once

#include "common.h"
#include "dispatch.bpf.h" /* sys_nr, in_compat_syscall */

/* Record type of struct sig_rec (30..39: self-protection). */
#define REC_SIGNAL 30

#define SIGCHLD_K 17

struct sig_rec {
	struct rec_hdr h;     /* the sender: current when the signal was generated */
	__s32 sig;
	__s32 code;           /* si_code: SI_USER 0, SI_KERNEL 0x80, SI_QUEUE -1, SI_TKILL -6, ... */
	__s32 result;         /* TRACE_SIGNAL_*: 0 delivered, 1 ignored, 2 already pending, 3 overflow, 4 info lost */
	__u32 target_tid;     /* the sensor thread it was generated for */
	__s64 sender_syscall; /* syscall the sender was in (+SYS_COMPAT_BASE if 32-bit); -1 when unknown */
	__u32 group;          /* 1: for the whole thread group, 0: for the one thread */
	__u32 _pad;
};

/* Anchor so that BTF describes the record (TestSignalRecordLayout reads it). */
const struct sig_rec *_btf_sig_rec __attribute__((unused));

/* sender_syscall returns the number of the syscall current is in (the
 * dispatcher's sys_nr: x86-64 orig_ax, arm64 syscallno), offset by
 * SYS_COMPAT_BASE for a 32-bit call, as the dispatch table numbers them;
 * -1 where the kernel cannot say (no bpf_task_pt_regs before 5.15: a CO-RE
 * check, so there the branch is dead code and the program still loads). */
static __always_inline __s64 sender_syscall(void)
{
	if (!bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_pt_regs))
		return -1;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	if (!regs)
		return -1;
	long nr = sys_nr(regs);
	if (nr >= 0 && in_compat_syscall())
		nr += SYS_COMPAT_BASE;
	return nr;
}

SEC("tp_btf/signal_generate")
int BPF_PROG(kestrel_signal, int sig, struct kernel_siginfo *info, struct task_struct *task, int group, int result)
{
	if (BPF_CORE_READ(task, tgid) != self_tgid || is_self())
		return 0;
	/* SEND_SIG_NOINFO (0) means SI_USER, SEND_SIG_PRIV (1) SI_KERNEL, as
	 * the tracepoint itself decodes them. */
	__s32 code = 0x80;
	if ((unsigned long)info == 0)
		code = 0;
	else if ((unsigned long)info > 1)
		code = BPF_CORE_READ(info, si_code);
	if (sig == SIGCHLD_K && code > 0) /* CLD_*: the kernel about a child of ours */
		return 0;
	struct sig_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count_drop(DROP_RINGBUF_RESERVE);
		return 0;
	}
	fill_hdr(&r->h, REC_SIGNAL, sizeof(*r));
	r->sig = sig;
	r->code = code;
	r->result = result;
	r->target_tid = BPF_CORE_READ(task, pid);
	r->sender_syscall = sender_syscall();
	r->group = group != 0;
	r->_pad = 0;
	/* Wake the reader now: a stop or a kill may follow at once. */
	bpf_ringbuf_submit(r, BPF_RB_FORCE_WAKEUP);
	return 0;
}
