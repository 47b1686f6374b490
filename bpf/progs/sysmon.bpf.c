// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Syscall monitoring of containers (docs/isolation.md): every syscall a task
 * enters is counted by number into its container's slot of tg_sys_counts,
 * when the task's cgroup has a tg_sys_cgroup entry. The agent gives each
 * monitored container's cgroup, and every cgroup below it, such an entry in
 * cgroup local storage, so the filter is a few loads from the task's own
 * cgroup (measured: 4-5 ns less per syscall than a hash lookup by cgroup
 * id): tasks of other cgroups (the host, unmonitored containers) pay for
 * that and nothing else.
 *
 * A syscall the container's isolation scope denies (tg_sys_scope) is
 * reported on tg_sys_ring and, in enforce mode, kills the process: SIGKILL
 * sent from the tracepoint is pending before the syscall runs, so the
 * process never returns to user space. The syscall itself still runs (a
 * tracepoint cannot skip it); seccomp profiles are what prevent one.
 *
 * A file a monitored task opened under one of its scope's sensitive path
 * prefixes is caught on the way out of the open syscalls, by the path the
 * kernel resolved (relative paths, symbolic links, /proc/self/root and
 * file handles included): reported, and in enforce mode the process is
 * killed before it returns to user space with the descriptor. Per-syscall
 * tracepoints (syscalls/sys_exit_*), attached only while a scope has
 * sensitive paths: a syscall without one costs little more, unlike a
 * second raw tracepoint on every syscall's exit.
 *
 * Execs of monitored tasks are reported with the file and the arguments.
 *
 * raw_tp rather than tp_btf: the same hooks, and BPF_PROG_TEST_RUN drives
 * them (tests feed the context: args[1] of sys_enter is the number).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "abi.h"
#include "btf_anchor.h"
#include "event_budget.h"

#define SIGKILL 9

/* A resolved path is built backwards from the end of RESOLVE_LEN bytes; a
 * name (at most 255 bytes) fits above any offset below it, so the verifier
 * sees every write in bounds. Components and mount crossings walked at most:
 * a deeper path is not matched. */
#define RESOLVE_LEN 1024
#define RESOLVE_DEPTH 64
#define NAME_MAX 255

char LICENSE[] SEC("license") = "Dual BSD/GPL";

TG_BTF_ANCHOR(enum tg_sys_limits, tg_sys_limits);
TG_BTF_ANCHOR(enum tg_sys_scope_flag, tg_sys_scope_flag);
TG_BTF_ANCHOR(enum tg_sys_event_type, tg_sys_event_type);
TG_BTF_ANCHOR(enum tg_sys_action, tg_sys_action);
TG_BTF_ANCHOR(enum tg_sev_stat, tg_sev_stat);
/* Only a ring record, never a map key or value: anchored for BTF. */
TG_BTF_ANCHOR(struct tg_sys_event *, tg_sys_event);

struct {
	__uint(type, BPF_MAP_TYPE_CGRP_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int); /* a cgroup directory's fd, from user space */
	__type(value, struct tg_sys_ref);
} tg_sys_cgroup SEC(".maps");

/* The current task's entry, NULL when its cgroup is not monitored. */
static __always_inline struct tg_sys_ref *current_ref(void)
{
	struct task_struct *task = bpf_get_current_task_btf();

	return bpf_cgrp_storage_get(&tg_sys_cgroup, task->cgroups->dfl_cgrp, 0, 0);
}

/* Monotonic while a slot belongs to one container; the agent zeroes a slot
 * before giving it to another. One value per slot, so a syscall costs one
 * lookup and touches one cache line of this CPU's copy. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_MAX_SYS_SLOTS);
	__type(key, __u32);
	__type(value, struct tg_sys_counts);
} tg_sys_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_MAX_SYS_SCOPES);
	__type(key, __u32);
	__type(value, struct tg_sys_scope);
} tg_sys_scope SEC(".maps");

/* 1 MiB: about 1,200 records waiting for the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} tg_sys_ring SEC(".maps");

/* enum tg_sev_stat: what became of the events the programs had to send. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_SEV_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tg_sys_stats SEC(".maps");

/* Sensitive path prefixes by scope (struct tg_sys_path_key). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, TG_MAX_SYS_PREFIXES);
	__type(key, struct tg_sys_path_key);
	__type(value, struct tg_sys_path_rule);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} tg_sys_paths SEC(".maps");

/* Kernel-private: room for the lookup key (too big for the stack beside the rest). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tg_sys_path_key);
} tg_sys_path_scratch SEC(".maps");

struct resolve_buf {
	char b[RESOLVE_LEN + NAME_MAX + 1];
};

/* Kernel-private: where a resolved path is built. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct resolve_buf);
} tg_sys_resolve SEC(".maps");

/* A scope's events per second and CPU (event_budget.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_MAX_SYS_SCOPES);
	__type(key, __u32);
	__type(value, struct event_budget);
} tg_sys_budget SEC(".maps");

#define sys_stat(s) event_stat(&tg_sys_stats, (s))
/* A task looping on a denied syscall in audit mode cannot fill the ring. */
#define sys_budget(scope) event_budget(&tg_sys_budget, &tg_sys_stats, (scope), TG_SYS_EVENTS_PER_SEC)

/* A record with the task's identity filled in; NULL when the ring is full (counted). */
static __always_inline struct tg_sys_event *sys_event(__u32 type, const struct tg_sys_ref *ref)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct tg_sys_event *e = bpf_ringbuf_reserve(&tg_sys_ring, sizeof(*e), 0);
	__u64 id = bpf_get_current_pid_tgid();

	if (!e) {
		sys_stat(TG_SEV_LOST);
		return NULL;
	}
	e->at_ns = bpf_ktime_get_tai_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->type = type;
	e->nr = 0;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->slot = ref->slot;
	e->scope = ref->scope;
	e->action = TG_SYS_ACT_REPORTED;
	e->args_len = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->path[0] = 0;
	e->args[0] = 0;
	return e;
}

/* A walk from an open file's dentry up to the task's root (bpf_loop state). */
struct walk {
	struct dentry *d, *root_d;
	struct vfsmount *vm, *root_m;
	struct mount *m; /* the mount vm is part of */
	__u32 pos;       /* where the path built so far starts */
	int end;         /* 1: at the root; -1: too long */
};

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

/* The struct mount a vfsmount is part of (container_of; the cast lets the verifier read it directly). */
static __always_inline struct mount *real_mount(struct vfsmount *vm)
{
	return bpf_rdonly_cast((void *)((unsigned long)vm - bpf_core_field_offset(struct mount, mnt)), bpf_core_type_id_kernel(struct mount));
}

/* One step up: a component prepended, or a mount crossed. Direct loads
 * through BTF pointers (a fault reads as zero) instead of probe reads,
 * except for the name's bytes: the walk cost half as much. */
static long walk_step(__u32 i, struct walk *w)
{
	struct dentry *d = w->d, *parent;
	struct resolve_buf *rb;
	__u32 zero = 0, len, pos = w->pos;

	if (d == w->root_d && w->vm == w->root_m)
		goto root;
	if (d == w->vm->mnt_root) {
		struct mount *m = w->m, *up = m->mnt_parent;

		if (up == m)
			goto root; /* the top of a mount tree outside the task's root */
		w->d = m->mnt_mountpoint;
		w->m = bpf_rdonly_cast(up, bpf_core_type_id_kernel(struct mount));
		w->vm = &w->m->mnt;
		return 0;
	}
	parent = d->d_parent;
	if (parent == d)
		goto root;
	len = d->d_name.len;
	rb = bpf_map_lookup_elem(&tg_sys_resolve, &zero);
	/* A read that faulted (zero) leaves the path unknown rather than cut short. */
	if (!rb || !parent || len > NAME_MAX || len + 1 > pos) {
		w->end = -1;
		return 1;
	}
	pos -= len;
	bpf_probe_read_kernel(&rb->b[pos & (RESOLVE_LEN - 1)], len & NAME_MAX, d->d_name.name);
	pos--;
	rb->b[pos & (RESOLVE_LEN - 1)] = '/';
	w->pos = pos;
	w->d = parent;
	return 0;
root:
	w->end = 1;
	return 1;
}

/*
 * The path of an open file as the task sees it (up to its root, crossing
 * mounts), written backwards into tg_sys_resolve ending at RESOLVE_LEN;
 * returns where it starts, or -1 when it is deeper than RESOLVE_DEPTH or
 * longer than RESOLVE_LEN. What d_path() does, which tracepoints may not
 * call.
 */
static __always_inline int resolve(struct task_struct *task, struct file *file, struct resolve_buf *rb)
{
	struct walk w = {
		.d = file->f_path.dentry,
		.vm = file->f_path.mnt,
		.root_d = task->fs->root.dentry,
		.root_m = task->fs->root.mnt,
		.pos = RESOLVE_LEN,
	};

	w.m = real_mount(w.vm);
	bpf_loop(RESOLVE_DEPTH, walk_step, &w, 0);
	if (w.end != 1 || w.pos > RESOLVE_LEN)
		return -1;
	if (w.pos == RESOLVE_LEN)
		rb->b[--w.pos & (RESOLVE_LEN - 1)] = '/'; /* the root itself */
	return w.pos;
}

/* The record of a syscalls/sys_exit_* tracepoint (its format file). */
struct sys_exit_args {
	__u64 common;
	int nr;
	long ret;
};

/*
 * A file opened under one of the scope's sensitive prefixes (by its
 * resolved path): reported, and in enforce mode the process is killed.
 */
static __always_inline int check_opened(struct sys_exit_args *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct tg_sys_path_rule *rule;
	struct tg_sys_path_key *k;
	struct tg_sys_scope *scope;
	struct resolve_buf *rb;
	struct tg_sys_event *e;
	struct tg_sys_ref *ref;
	struct file **fds;
	struct file *file;
	long fd = ctx->ret;
	__u32 zero = 0, n, sz;
	int pos;

	if (fd < 0)
		return 0;
	ref = current_ref();
	if (!ref || !ref->scope)
		return 0;
	scope = bpf_map_lookup_elem(&tg_sys_scope, &ref->scope);
	if (!scope || !(scope->flags & TG_SYS_PATHS))
		return 0;
	if (fd >= task->files->fdt->max_fds)
		return 0;
	fds = task->files->fdt->fd;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return 0; /* closed by another thread already */
	file = bpf_rdonly_cast(file, bpf_core_type_id_kernel(struct file));
	rb = bpf_map_lookup_elem(&tg_sys_resolve, &zero);
	k = bpf_map_lookup_elem(&tg_sys_path_scratch, &zero);
	if (!rb || !k)
		return 0;
	pos = resolve(task, file, rb);
	if (pos < 0 || pos >= RESOLVE_LEN)
		return 0;
	n = RESOLVE_LEN - pos;
	/* A prefix is shorter than the key's room: the path's first bytes decide. */
	sz = n < TG_SYS_PREFIX_LEN ? n : TG_SYS_PREFIX_LEN;
	if (bpf_probe_read_kernel(k->path, sz, &rb->b[pos & (RESOLVE_LEN - 1)]))
		return 0;
	k->scope = ref->scope;
	k->prefixlen = (4 + sz) * 8;
	rule = bpf_map_lookup_elem(&tg_sys_paths, k);
	if (!rule)
		return 0;
	if (rule->flags & TG_SYS_ENFORCE)
		bpf_send_signal(SIGKILL);
	if (!sys_budget(ref->scope))
		return 0;
	e = sys_event(TG_SYSEV_FILE, ref);
	if (!e)
		return 0;
	e->nr = ctx->nr;
	e->action = rule->flags & TG_SYS_ENFORCE ? TG_SYS_ACT_KILLED : TG_SYS_ACT_REPORTED;
	sz = n < TG_SYS_PATH_LEN - 1 ? n : TG_SYS_PATH_LEN - 1;
	bpf_probe_read_kernel(e->path, sz, &rb->b[pos & (RESOLVE_LEN - 1)]);
	e->path[sz & (TG_SYS_PATH_LEN - 1)] = 0;
	bpf_ringbuf_submit(e, 0);
	sys_stat(TG_SEV_SENT);
	return 0;
}

/* The syscalls that open a file by path or handle. */
SEC("tp/syscalls/sys_exit_open")
int tg_sys_exit_open(struct sys_exit_args *ctx) { return check_opened(ctx); }
SEC("tp/syscalls/sys_exit_openat")
int tg_sys_exit_openat(struct sys_exit_args *ctx) { return check_opened(ctx); }
SEC("tp/syscalls/sys_exit_openat2")
int tg_sys_exit_openat2(struct sys_exit_args *ctx) { return check_opened(ctx); }
SEC("tp/syscalls/sys_exit_creat")
int tg_sys_exit_creat(struct sys_exit_args *ctx) { return check_opened(ctx); }
SEC("tp/syscalls/sys_exit_open_by_handle_at")
int tg_sys_exit_open_by_handle_at(struct sys_exit_args *ctx) { return check_opened(ctx); }

SEC("raw_tp/sys_enter")
int tg_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	struct tg_sys_counts *counts;
	struct tg_sys_scope *scope;
	struct tg_sys_event *e;
	struct tg_sys_ref *ref;
	__u32 idx;
	__u64 nr;

	ref = current_ref();
	if (!ref)
		return 0;
	counts = bpf_map_lookup_elem(&tg_sys_counts, &ref->slot);
	if (!counts)
		return 0;
	nr = ctx->args[1];
	if (nr >= TG_SYSCALL_NR)
		nr = TG_SYSCALL_OTHER;
	idx = nr & (TG_SYSCALL_NR - 1);
	/* Per-CPU: no other CPU writes this copy, so a plain add is exact. */
	counts->n[idx]++;

	if (!ref->scope)
		return 0;
	scope = bpf_map_lookup_elem(&tg_sys_scope, &ref->scope);
	if (!scope)
		return 0;
	if (!(scope->deny[(idx / 64) & (TG_SYS_DENY_WORDS - 1)] & (1ULL << (idx % 64))))
		return 0;
	/* The kill does not wait for the event: enforcement never depends on delivery. */
	if (scope->flags & TG_SYS_ENFORCE)
		bpf_send_signal(SIGKILL);
	if (!sys_budget(ref->scope))
		return 0;
	e = sys_event(TG_SYSEV_DENIED, ref);
	if (!e)
		return 0;
	e->nr = nr;
	e->action = scope->flags & TG_SYS_ENFORCE ? TG_SYS_ACT_KILLED : TG_SYS_ACT_REPORTED;
	bpf_ringbuf_submit(e, 0);
	sys_stat(TG_SEV_SENT);
	return 0;
}

/* After a successful exec: args[0] is the task (current), args[2] its struct linux_binprm. */
SEC("raw_tp/sched_process_exec")
int tg_sys_exec(struct bpf_raw_tracepoint_args *ctx)
{
	struct linux_binprm *bprm = (struct linux_binprm *)ctx->args[2];
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	unsigned long arg_start, arg_end;
	struct tg_sys_event *e;
	struct tg_sys_ref *ref;
	const char *filename;
	__u64 len;

	ref = current_ref();
	if (!ref || !sys_budget(ref->scope))
		return 0;
	e = sys_event(TG_SYSEV_EXEC, ref);
	if (!e)
		return 0;
	filename = BPF_CORE_READ(bprm, filename);
	if (bpf_probe_read_kernel_str(e->path, sizeof(e->path), filename) < 0)
		e->path[0] = 0;
	/* The new program's argv, on its stack: NUL-separated strings, cut at TG_SYS_ARGS_LEN. */
	arg_start = BPF_CORE_READ(task, mm, arg_start);
	arg_end = BPF_CORE_READ(task, mm, arg_end);
	len = arg_end > arg_start ? arg_end - arg_start : 0;
	if (len > TG_SYS_ARGS_LEN)
		len = TG_SYS_ARGS_LEN;
	if (len > 0 && len <= TG_SYS_ARGS_LEN && bpf_probe_read_user(e->args, len, (void *)arg_start) == 0)
		e->args_len = len;
	bpf_ringbuf_submit(e, 0);
	sys_stat(TG_SEV_SENT);
	return 0;
}
