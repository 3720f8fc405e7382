// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The Kestrel sensor: one translation unit, so that every program shares the
 * one ring buffer, drop counters and self filter of common.h. The loader
 * (internal/runtime) attaches each program from its section name, except the
 * syscall handlers (enter_*, exit_*), which the dispatcher of dispatch.bpf.h
 * tail-calls. No program needs tracefs. */
#include "common.h"
#include "records.h"
#include "dispatch.bpf.h"
#include "process.bpf.h"
#include "open.bpf.h"
#include "syscalls.bpf.h"
#include "io_uring.bpf.h"
#include "self.bpf.h"
#ifndef KESTREL_NO_NET /* lets a capture-only object be built for debugging */
#include "net.bpf.h"
#endif

/* Anchors so that BTF describes every record type, not only those held in
 * maps: internal/runtime checks the decoder's offsets against it. */
const struct fork_rec *_btf_fork_rec __attribute__((unused));
const struct exit_rec *_btf_exit_rec __attribute__((unused));

char LICENSE[] SEC("license") = "Dual BSD/GPL";
