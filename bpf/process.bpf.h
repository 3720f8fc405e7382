/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Process lifecycle: exec, fork (processes, not threads) and exit (the last
 * thread of a group). tp_btf gives typed task pointers with no tracefs.
 * Exec and fork first send the task's cgroup path when it is not yet known
 * (cgroup.bpf.h), so that user space never has to guess its container. */
#pragma once

#include "path.h"
#include "cgroup.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_rec);
} exec_scratch SEC(".maps");

static __always_inline __u32 read_user_block(char *dst, __u32 max, unsigned long start, unsigned long end, bool *trunc)
{
	__u64 len = end > start ? end - start : 0;
	*trunc = false;
	if (len > max) {
		len = max;
		*trunc = true;
	}
	if (len == 0)
		return 0;
	if (bpf_probe_read_user(dst, len, (void *)start) < 0)
		return 0;
	return len;
}

static __always_inline __u32 pid_ns_inum(struct task_struct *t)
{
	struct pid *p = BPF_CORE_READ(t, thread_pid);
	unsigned int level = BPF_CORE_READ(p, level);
	return BPF_CORE_READ(p, numbers[level].ns, ns.inum);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(kestrel_exec, struct task_struct *t, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 zero = 0;
	bool trunc;

	if (is_self())
		return 0;
	learn_task_cgroup(t);
	struct exec_rec *r = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!r)
		return 0;
	fill_hdr(&r->h, REC_EXEC, 0);
	r->flags = 0;
	r->ppid = BPF_CORE_READ(t, real_parent, tgid);
	r->cap_eff = BPF_CORE_READ(t, cred, cap_effective.val);
	r->cap_prm = BPF_CORE_READ(t, cred, cap_permitted.val);
	r->start_ns = BPF_CORE_READ(t, group_leader, start_boottime);
	r->ns[NS_MNT] = BPF_CORE_READ(t, nsproxy, mnt_ns, ns.inum);
	r->ns[NS_PID] = pid_ns_inum(t);
	r->ns[NS_NET] = BPF_CORE_READ(t, nsproxy, net_ns, ns.inum);
	r->ns[NS_USER] = BPF_CORE_READ(t, cred, user_ns, ns.inum);
	r->ns[NS_UTS] = BPF_CORE_READ(t, nsproxy, uts_ns, ns.inum);
	r->ns[NS_IPC] = BPF_CORE_READ(t, nsproxy, ipc_ns, ns.inum);
	r->ns[NS_CGROUP] = BPF_CORE_READ(t, nsproxy, cgroup_ns, ns.inum);
	if (BPF_CORE_READ(t, signal, tty))
		r->flags |= EXEC_F_TTY;

	struct path exe = BPF_CORE_READ(bprm, file, f_path);
	r->exe_len = resolve_path(&exe, r->exe, &trunc);
	if (trunc)
		r->flags |= EXEC_F_EXE_TRUNC;
	struct path pwd = BPF_CORE_READ(t, fs, pwd);
	r->cwd_len = resolve_path(&pwd, r->cwd, &trunc);
	if (trunc)
		r->flags |= EXEC_F_CWD_TRUNC;

	struct mm_struct *mm = BPF_CORE_READ(t, mm);
	r->args_len = read_user_block(r->args, ARGS_SLOT, BPF_CORE_READ(mm, arg_start), BPF_CORE_READ(mm, arg_end), &trunc);
	if (trunc)
		r->flags |= EXEC_F_ARGS_TRUNC;
	__u32 envl = read_user_block(r->env, ENV_SLOT, BPF_CORE_READ(mm, env_start), BPF_CORE_READ(mm, env_end), &trunc);
	if (trunc)
		r->flags |= EXEC_F_ENV_TRUNC;
	if (envl > ENV_SLOT)
		envl = ENV_SLOT;
	r->env_len = envl;

	__u32 size = offsetof(struct exec_rec, env) + envl;
	if (size > sizeof(*r))
		size = sizeof(*r);
	r->h.size = size;
	emit_record(r, size, CLASS_BULK);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(kestrel_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 tgid = BPF_CORE_READ(child, tgid);
	if (BPF_CORE_READ(child, pid) != tgid) /* a thread */
		return 0;
	/* The sensor's own forks are reported: they cannot feed back. */
	learn_task_cgroup(child);
	struct fork_rec rec, *r = &rec;
	fill_hdr(&r->h, REC_FORK, sizeof(*r));
	r->child_tgid = tgid;
	r->parent_tgid = BPF_CORE_READ(parent, tgid);
	r->child_start_ns = BPF_CORE_READ(child, start_boottime);
	r->child_cgroup_id = BPF_CORE_READ(child, cgroups, dfl_cgrp, kn, id);
	emit_record(r, sizeof(*r), CLASS_BULK);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(kestrel_exit, struct task_struct *t, bool group_dead)
{
	if (!group_dead) /* other threads live on */
		return 0;
	if (is_self())
		return 0;
	struct exit_rec rec, *r = &rec;
	fill_hdr(&r->h, REC_EXIT, sizeof(*r));
	__u32 code = BPF_CORE_READ(t, exit_code);
	struct signal_struct *sig = BPF_CORE_READ(t, signal);
	if (BPF_CORE_READ(sig, flags) & 0x00000004 /* SIGNAL_GROUP_EXIT */)
		code = BPF_CORE_READ(sig, group_exit_code);
	r->exit_code = code;
	r->_pad = 0;
	r->start_ns = BPF_CORE_READ(t, group_leader, start_boottime);
	emit_record(r, sizeof(*r), CLASS_BULK);
	return 0;
}
