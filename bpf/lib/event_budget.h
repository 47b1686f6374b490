/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the programs that send events share: the per-CPU enum tg_sev_stat
 * counters (sent, lost, suppressed) and per-CPU budgets of events per
 * second, so that a flood of matching packets or a task looping on a
 * denied syscall costs the ring at most `rate` records per second and CPU,
 * and the rest are counted, never queued. Per CPU, so neither needs an
 * atomic.
 */
#ifndef TOLLGATE_EVENT_BUDGET_H
#define TOLLGATE_EVENT_BUDGET_H

/* Kernel-private: a budget on this CPU for the second that began at window_ns. */
struct event_budget {
	__u64 window_ns;
	__u64 used;
};

/* stats: a per-CPU array of __u64 indexed by enum tg_sev_stat. */
static __always_inline void event_stat(void *stats, __u32 s)
{
	__u64 *n = bpf_map_lookup_elem(stats, &s);

	if (n)
		*n += 1;
}

/* Whether budget `key` (a per-CPU array of struct event_budget) may send another event this second. */
static __always_inline bool event_budget(void *budgets, void *stats, __u32 key, __u32 rate)
{
	struct event_budget *b = bpf_map_lookup_elem(budgets, &key);
	__u64 now = bpf_ktime_get_ns();

	if (!b)
		return false;
	if (now - b->window_ns >= 1000000000ULL) {
		b->window_ns = now;
		b->used = 0;
	}
	if (b->used >= rate) {
		event_stat(stats, TG_SEV_SUPPRESSED);
		return false;
	}
	b->used += 1;
	return true;
}

#endif /* TOLLGATE_EVENT_BUDGET_H */
