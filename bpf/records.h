/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Record layouts for exec, fork, exit and open. Every record starts with
 * struct rec_hdr (common.h); the layout here is a contract with
 * internal/runtime/decode.go, which checks every length before it trusts it.
 *
 * Variable-length records are sent only up to the end of what they hold:
 * the exec record packs its strings one after the other, and the open
 * record packs its two paths back to back, so that a record costs the ring
 * buffer the bytes of its strings and not their maximum. */
#pragma once

#include "common.h"

#define PATH_SLOT 1024 /* resolved paths (exe, cwd, open path) */
#define RAW_SLOT 512   /* path as passed to the syscall */
#define ARGS_SLOT 1024 /* argv block, NUL-separated */

/* Flags of an exec record. */
#define EXEC_F_TTY (1 << 0)
#define EXEC_F_ARGS_TRUNC (1 << 1)
#define EXEC_F_ENV_TRUNC (1 << 2) /* the environment was not all looked at, or a kept entry was cut or left out */
#define EXEC_F_EXE_TRUNC (1 << 3)
#define EXEC_F_CWD_TRUNC (1 << 4)

/* Namespace slots, in event.Namespaces order. */
enum ns_slot { NS_MNT, NS_PID, NS_NET, NS_USER, NS_UTS, NS_IPC, NS_CGROUP, NS_MAX };

/* The environment is filtered in the kernel: only the entries whose name
 * the loader put in the capture table (internal/runtime/env.go) are sent,
 * each as a 16-bit header (its length, with ENV_CUT when the entry was cut:
 * at ENV_ENTRY_MAX - 1 bytes, or shorter where the table says that user
 * space keeps less; see process.bpf.h) followed by the bytes of
 * "NAME=VALUE", without a NUL. At most ENV_KEPT_MAX bytes of entries. */
#define ENV_KEPT_MAX 4096
#define ENV_ENTRY_MAX 2048
#define ENV_CUT 0x8000

/* The strings of an exec record, packed in data[]: the exe path and its NUL,
 * the cwd and its NUL, args_len bytes of the argv block, env_len bytes of
 * kept environment entries. The record is sent up to the end of the last. */
#define EXEC_DATA (PATH_SLOT + PATH_SLOT + ARGS_SLOT + ENV_KEPT_MAX)

struct exec_rec {
	struct rec_hdr h;
	__u32 ppid;        /* real_parent tgid */
	__u32 flags;       /* EXEC_F_* */
	__u64 cap_eff;
	__u64 cap_prm;
	__u64 start_ns;    /* group leader start, boot ns */
	__u32 ns[NS_MAX];
	__u16 exe_len;     /* bytes of the exe path, without its NUL */
	__u16 cwd_len;     /* bytes of the cwd, without its NUL */
	__u16 args_len;    /* bytes of the argv block */
	__u16 env_len;     /* bytes of the kept environment entries */
	char data[EXEC_DATA];
};

struct fork_rec {
	struct rec_hdr h; /* the parent (current task) */
	__u32 child_tgid;
	__u32 parent_tgid;
	__u64 child_start_ns;
	__u64 child_cgroup_id; /* differs from h.cgroup_id under clone3(CLONE_INTO_CGROUP) */
};

struct exit_rec {
	struct rec_hdr h;
	__u32 exit_code; /* wait status: code << 8 | signal */
	__u32 _pad;
	__u64 start_ns;
};

/* A cgroup record: the id of a cgroup v2 directory (its kernfs node id, what
 * bpf_get_current_cgroup_id returns) and its path from the root of the
 * hierarchy, whatever cgroup namespace the sensor runs in. Sent when a cgroup
 * is created or removed, and before an exec or fork record whose cgroup the
 * cgroup_known map does not hold (cgroup.bpf.h). */
#define CGROUP_PATH_SLOT 1024

enum cgroup_op {
	CGROUP_MKDIR = 1,  /* cgroup_mkdir */
	CGROUP_RMDIR = 2,  /* cgroup_rmdir: path_len is 0 */
	CGROUP_ATTACH = 3, /* cgroup_attach_task into a cgroup not yet known */
	CGROUP_TASK = 4,   /* read from a task's cgroup at exec or fork */
};

/* Flags of a cgroup record. */
#define CGROUP_F_TRUNC (1 << 0) /* path too long or too deep: not the full path */

struct cgroup_rec {
	struct rec_hdr h;
	__u64 id;
	__u16 op;       /* enum cgroup_op */
	__u16 flags;    /* CGROUP_F_* */
	__u16 path_len; /* without the NUL; the record is sent up to the NUL */
	__u16 _pad;
	char path[CGROUP_PATH_SLOT];
};

/* Open record flags. */
#define OPEN_F_RAW_TRUNC (1 << 0)
#define OPEN_F_PATH_TRUNC (1 << 1)
#define OPEN_F_PATH_KERNEL (1 << 2)   /* path resolved from the opened file */
#define OPEN_F_PATH_BASE (1 << 3)     /* path is the base dir (cwd/dirfd); join raw */
#define OPEN_F_EXIT_ONLY (1 << 4)     /* no longer set: every open is seen at sys_exit */
#define OPEN_F_COMPAT (1 << 5)        /* a 32-bit compat syscall (int 0x80, 32-bit binary) */
#define OPEN_F_IO_URING (1 << 6)      /* an io_uring request, not a syscall */
#define OPEN_F_PATH_ROOT (1 << 7)     /* path is the caller's root (chroot); join raw */
#define OPEN_F_FIXED_SLOT (1 << 8)    /* io_uring open into a fixed-file slot: no fd */

/* How an open was matched (open_rec.match): by the name the caller passed
 * (the filter of open.bpf.h, the only way for a failed open), or by what
 * the kernel opened, whatever name reached it. */
#define MATCH_NAME (1 << 0)   /* the path as passed matched the name filter */
#define MATCH_MODEL (1 << 1)  /* the inode is a known model file (dev, ino) */
#define MATCH_KNOB (1 << 2)   /* a kernel knob by filesystem and dentry name: knob id */
#define MATCH_DEVICE (1 << 3) /* a block device, or kernel memory, by i_rdev */
#define MATCH_NSFS (1 << 4)   /* a namespace file of a namespace the caller is not in */
#define MATCH_LAYOUT (1 << 5) /* a model store blob by dentry names (blobs/sha256-...) */
#define MATCH_CALL (1 << 6)   /* the call itself is reported (open_by_handle_at) */

/* Syscall ids of an open record. */
enum open_call { CALL_OPEN = 0, CALL_OPENAT = 1, CALL_OPENAT2 = 2, CALL_CREAT = 3, CALL_OPEN_BY_HANDLE = 4 };

/* The record carries the raw path and the resolved path back to back in
 * data: raw_len bytes and a NUL, then path_len bytes and a NUL; it is sent
 * up to the end of the path, so a short path costs the ring few bytes. */
struct open_rec {
	struct rec_hdr h;
	__s32 result;   /* fd or -errno */
	__u32 flags;    /* open flags */
	__u32 mode;     /* mode argument */
	__s32 dirfd;    /* dirfd, or the mount fd of open_by_handle_at */
	__u64 ino;
	__u64 size;     /* i_size, valid with OPEN_F_PATH_KERNEL */
	__u32 dev;      /* i_sb->s_dev */
	__u32 rdev;     /* i_rdev of a device node */
	__u16 call;     /* enum open_call */
	__u16 rflags;   /* OPEN_F_* */
	__u16 raw_len;
	__u16 path_len;
	__u16 imode;    /* i_mode of the opened inode (file type and permissions) */
	__u8 match;     /* MATCH_* */
	__u8 knob;      /* knob id with MATCH_KNOB (internal/runtime/identity.go) */
	__u32 repeats;  /* like opens not reported since the previous report */
	__u32 target;   /* a /proc/<pid> knob: the host pid the entry belongs to */
	char data[RAW_SLOT * 2 + PATH_SLOT];
};
