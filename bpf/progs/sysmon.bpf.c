// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Syscall monitoring of containers (docs/isolation.md): every syscall a task
 * enters is counted by number into its container's slot of tg_sys_counts,
 * when the task's cgroup is in tg_sys_cgroup. The agent maps each monitored
 * container's cgroup and every cgroup below it, so the filter is one exact
 * hash lookup: tasks of other cgroups (the host, unmonitored containers)
 * pay for that lookup and nothing else.
 *
 * raw_tp rather than tp_btf: the same hook, and BPF_PROG_TEST_RUN drives it
 * (tests feed the context: args[1] is the syscall number).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "abi.h"
#include "btf_anchor.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

TG_BTF_ANCHOR(enum tg_sys_limits, tg_sys_limits);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_MAX_SYS_CGROUPS);
	__type(key, __u64); /* cgroup id */
	__type(value, struct tg_sys_ref);
} tg_sys_cgroup SEC(".maps");

/* Monotonic while a slot belongs to one container; the agent zeroes a slot
 * before giving it to another. One value per slot, so a syscall costs one
 * lookup and touches one cache line of this CPU's copy. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_MAX_SYS_SLOTS);
	__type(key, __u32);
	__type(value, struct tg_sys_counts);
} tg_sys_counts SEC(".maps");

SEC("raw_tp/sys_enter")
int tg_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 cgroup = bpf_get_current_cgroup_id();
	struct tg_sys_counts *counts;
	struct tg_sys_ref *ref;
	__u64 nr;

	ref = bpf_map_lookup_elem(&tg_sys_cgroup, &cgroup);
	if (!ref)
		return 0;
	counts = bpf_map_lookup_elem(&tg_sys_counts, &ref->slot);
	if (!counts)
		return 0;
	nr = ctx->args[1];
	if (nr >= TG_SYSCALL_NR)
		nr = TG_SYSCALL_OTHER;
	/* Per-CPU: no other CPU writes this copy, so a plain add is exact. */
	counts->n[nr & (TG_SYSCALL_NR - 1)]++;
	return 0;
}
