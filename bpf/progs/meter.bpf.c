// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The network datapath: at tc and XDP the firewall (fw_filter(), "firewall"
 * below, docs/security.md) judges every packet first; what it drops is
 * never metered. Then per-tenant traffic metering for billing: every packet
 * seen at a hook is counted exactly once, into (tenant, direction) of
 * tg_meter_counters. Metering makes one verdict only, a quota's
 * (quota_verdict()): a packet a spent budget refuses is dropped
 * (TC_ACT_SHOT, XDP_DROP, 0 at a cgroup hook) and counted in
 * tg_quota_drops, never in the billing counters. Every other packet is
 * passed on: tc programs return TC_ACT_UNSPEC so the next tcx program (or
 * the default) decides, the XDP programs return XDP_PASS. The tg_filter_*
 * entry points run the firewall alone, on interfaces that are not metered.
 *
 * Attribution (docs/metering.md says the same; keep them in step):
 *  1. The hook's interface is owned by a tenant (tg_tenant_iface has
 *     (ifindex, live generation)): at host-ingress the packet comes from that
 *     tenant -> (tenant, EGRESS); at host-egress it goes to the tenant ->
 *     (tenant, INGRESS). Reason BY_IFACE.
 *  2. Else by address (IPv4/IPv6, inner header for VLAN-tagged frames):
 *     host-ingress: SOURCE first -> (tenant, EGRESS), then DESTINATION ->
 *     (tenant, INGRESS); host-egress: DESTINATION first -> (tenant, INGRESS),
 *     then SOURCE -> (tenant, EGRESS). Traffic entering the host through a
 *     tenant-facing interface came from the tenant; leaving through it, it
 *     goes to the tenant. Tenant-to-tenant traffic on one host therefore
 *     counts once for each side: as the sender's EGRESS where it enters the
 *     host and as the receiver's INGRESS where it leaves. Reason BY_ADDR.
 *  3. Else tenant 0 (TG_TENANT_UNATTRIBUTED), EGRESS at host-ingress and
 *     INGRESS at host-egress. Reason UNATTRIBUTED. Non-IP frames (and IP
 *     headers that are cut off or malformed) only get rule 1 or rule 3.
 * A tenant id >= tg_cfg_max_tenants lands in tenant 0's row for the same
 * direction with reasons BAD_INDEX and UNATTRIBUTED, so the sum of BY_IFACE,
 * BY_ADDR and UNATTRIBUTED is always the number of packets metered.
 *
 * Then the traffic class (classify(), docs/metering.md): by the peer's
 * address, the protocol and either port, first matching class in policy
 * order, else TG_CLASS_DEFAULT. The peer is the destination of the tenant's
 * egress and the source of its ingress. A class id >= tg_cfg_max_classes
 * counts as the default class with reason BAD_INDEX.
 *
 * Then, only while TG_METER_FLOWS is set in tg_meter_config.flags, the
 * packet is added to its flow in tg_flows (record_flow(), docs/flows.md):
 * analytics after the billing counter, never feeding it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "abi.h"
#include "btf_anchor.h"
#include "parse.h"
#include "event_budget.h"

#define TC_ACT_UNSPEC (-1)
#define TC_ACT_SHOT 2
#define TC_ACT_REDIRECT 7
/* One load the compiler may neither repeat nor tear: the value is shared with other CPUs. */
#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

/* The value at key, inserted as *init first when missing; NULL only when the map is full (and cannot evict). */
static __always_inline void *lookup_or_init(void *map, const void *key, const void *init)
{
	void *v = bpf_map_lookup_elem(map, key);

	if (v)
		return v;
	bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, key);
}
#define EEXIST 17 /* errno.h; vmlinux.h carries no macros */

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The agent sizes tg_meter_counters before load (tenants x classes x
 * directions) and mirrors the two factors here. */
const volatile __u32 tg_cfg_max_tenants = TG_MAX_TENANTS;
const volatile __u32 tg_cfg_max_classes = TG_MAX_CLASSES;

/* Enums used only for their constants; see btf_anchor.h. */
TG_BTF_ANCHOR(enum tg_limits, tg_limits);
TG_BTF_ANCHOR(enum tg_direction, tg_direction);
TG_BTF_ANCHOR(enum tg_hook, tg_hook);
/* Only an array length in struct tg_meter_reasons, so its constants need an anchor. */
TG_BTF_ANCHOR(enum tg_meter_reason, tg_meter_reason);
TG_BTF_ANCHOR(enum tg_meter_reason_slots, tg_meter_reason_slots);
TG_BTF_ANCHOR(enum tg_meter_flag, tg_meter_flag);
TG_BTF_ANCHOR(enum tg_class_gen_flag, tg_class_gen_flag);
TG_BTF_ANCHOR(enum tg_flow_stat, tg_flow_stat);
TG_BTF_ANCHOR(enum tg_quota_limits, tg_quota_limits);
TG_BTF_ANCHOR(enum tg_quota_action, tg_quota_action);
TG_BTF_ANCHOR(enum tg_quota_state_flag, tg_quota_state_flag);
TG_BTF_ANCHOR(enum tg_quota_event_kind, tg_quota_event_kind);
TG_BTF_ANCHOR(enum tg_iface_flag, tg_iface_flag);
TG_BTF_ANCHOR(enum tg_fw_limits, tg_fw_limits);
TG_BTF_ANCHOR(enum tg_fw_action, tg_fw_action);
TG_BTF_ANCHOR(enum tg_fw_gen_flag, tg_fw_gen_flag);
TG_BTF_ANCHOR(enum tg_fw_pfx_table, tg_fw_pfx_table);
TG_BTF_ANCHOR(enum tg_fw_live_flag, tg_fw_live_flag);
TG_BTF_ANCHOR(enum tg_fw_side, tg_fw_side);
TG_BTF_ANCHOR(enum tg_fw_stat, tg_fw_stat);
TG_BTF_ANCHOR(enum tg_sev_type, tg_sev_type);
TG_BTF_ANCHOR(enum tg_rl_per, tg_rl_per);
TG_BTF_ANCHOR(enum tg_syn_limits, tg_syn_limits);
TG_BTF_ANCHOR(enum tg_syn_action, tg_syn_action);
TG_BTF_ANCHOR(enum tg_guard_limits, tg_guard_limits);
TG_BTF_ANCHOR(enum tg_l7_limits, tg_l7_limits);
TG_BTF_ANCHOR(enum tg_honeypot_limits, tg_honeypot_limits);
TG_BTF_ANCHOR(enum tg_sev_stat, tg_sev_stat);
/* Only ever a ring buffer record, which carries no BTF type. */
const volatile struct tg_quota_event tg_btf_anchor_tg_quota_event = {};
const volatile struct tg_sev tg_btf_anchor_tg_sev = {};
/* tg_iface_key is used by no map (the array is indexed by a plain slot), so it is anchored. */
const volatile struct tg_iface_key tg_btf_anchor_tg_iface_key = {};

/*
 * Billing truth: preallocated, per-CPU, never evicted and never inserted
 * into here (array slots always exist), indexed
 * (tenant_id * tg_cfg_max_classes + class_id) * TG_DIR_MAX + direction.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_MAX_TENANTS * TG_MAX_CLASSES * TG_DIR_MAX);
	__type(key, __u32);
	__type(value, struct tg_counter);
} tg_meter_counters SEC(".maps");

/* One per-CPU struct tg_meter_reasons, at key 0. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tg_meter_reasons);
} tg_meter_reasons SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tg_meter_config);
} tg_meter_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TG_MAX_PREFIXES);
	__type(key, struct tg_lpm_v4_key);
	__type(value, struct tg_tenant_ref);
} tg_tenant_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TG_MAX_PREFIXES);
	__type(key, struct tg_lpm_v6_key);
	__type(value, struct tg_tenant_ref);
} tg_tenant_v6 SEC(".maps");

/* Indexed by ifindex * 2 + generation: an inlined array lookup on the per-packet path. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_MAX_IFINDEX * 2);
	__type(key, __u32);
	__type(value, struct tg_tenant_ref);
} tg_tenant_iface SEC(".maps");

/* Traffic classes, per generation; see struct tg_class_gen in abi.h. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct tg_class_gen);
} tg_class_gen SEC(".maps");

/* Peer prefix -> mask of the classes whose CIDRs contain it (plus any_cidr). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TG_MAX_PREFIXES);
	__type(key, struct tg_lpm_v4_key);
	__type(value, __u32);
} tg_class_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TG_MAX_PREFIXES);
	__type(key, struct tg_lpm_v6_key);
	__type(value, __u32);
} tg_class_v6 SEC(".maps");

/* generation * 256 + IP protocol -> classes that allow it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * TG_PROTOCOLS);
	__type(key, __u32);
	__type(value, __u32);
} tg_class_proto SEC(".maps");

/* generation * 65536 + port -> classes with a port range holding it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * TG_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} tg_class_port SEC(".maps");

/* generation * TG_MAX_CLASS_RULES + bit -> class id. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * TG_MAX_CLASS_RULES);
	__type(key, __u32);
	__type(value, __u32);
} tg_class_ids SEC(".maps");

/* First fragment's ports, so later fragments get the same class. Not billing truth: an eviction only costs a class. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TG_MAX_FRAG_FLOWS);
	__type(key, struct tg_frag_key);
	__type(value, struct tg_frag_ports);
} tg_frag_ports SEC(".maps");

/*
 * Flows for analytics (docs/flows.md), written only while TG_METER_FLOWS is
 * set. One map shared by all CPUs rather than an LRU_PERCPU_HASH: a flow is
 * one record to export (per-CPU values would multiply the memory and the
 * export by the number of CPUs, 2.5 GB for 1M flows on 64 CPUs), and its
 * first/last times would need merging. Two CPUs can hit one flow at once
 * (RPS, several sending threads), so packets and bytes are atomic adds: a
 * locked add on a cache line the lookup already brought in. LRU maps are
 * always preallocated, so the capacity costs memory even while flows are off.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TG_MAX_FLOWS);
	__type(key, struct tg_flow_key);
	__type(value, struct tg_flow);
} tg_flows SEC(".maps");

/* Indexed by enum tg_flow_stat; lives and dies with tg_flows. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_FLOW_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tg_flow_stats SEC(".maps");

/* ---- quotas (abi.h, "Quotas enforced in the datapath"; docs/billing.md) ---- */

/* Indexed like tg_meter_counters (the agent sizes both alike): the quota slots each counter feeds. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_MAX_TENANTS * TG_MAX_CLASSES * TG_DIR_MAX);
	__type(key, __u32);
	__type(value, struct tg_quota_refs);
} tg_quota_refs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_MAX_QUOTAS);
	__type(key, __u32);
	__type(value, struct tg_quota_cfg);
} tg_quota_cfg SEC(".maps");

/*
 * Shared by all CPUs, unlike the counters: a budget is one number, and the
 * atomic add that consumes it orders the packets, so exactly one packet
 * crosses each mark and at most one per CPU passes the limit.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_MAX_QUOTAS);
	__type(key, __u32);
	__type(value, struct tg_quota_state);
} tg_quota_state SEC(".maps");

/* Packets and bytes each quota slot refused: never in the billing counters. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_MAX_QUOTAS);
	__type(key, __u32);
	__type(value, struct tg_counter);
} tg_quota_drops SEC(".maps");

/* Threshold, exhaustion and renewal events: a few per quota and period. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} tg_quota_events SEC(".maps");

/* Slot 0: events lost because the ring was full (the agent's ledger check backs them up). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} tg_quota_lost SEC(".maps");

static __always_inline void quota_event(__u32 slot, __u32 kind, __u32 mark, __u64 used, __u64 end, __u64 now)
{
	struct tg_quota_event *e = bpf_ringbuf_reserve(&tg_quota_events, sizeof(*e), 0);
	__u32 zero = 0;
	__u64 *lost;

	if (!e) {
		lost = bpf_map_lookup_elem(&tg_quota_lost, &zero);
		if (lost)
			*lost += 1;
		return;
	}
	e->at_ns = now;
	e->used = used;
	e->period_end_ns = end;
	e->slot = slot;
	e->kind = kind;
	e->mark = mark;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
}

/*
 * The slot's state, its period brought up to date at now; NULL when the
 * quota is not in force: an empty slot (no period_end_ns), or a time past every period end the
 * agent gave (it has been away for a whole period), where traffic passes
 * uncounted by the quota until the agent returns. A period that ended
 * renews here, in the datapath, so a blocked tenant gets traffic back at
 * the boundary whether or not the agent is running. The one CPU whose swap
 * of period_end succeeds zeroes used; a packet another CPU adds between the
 * two is lost to the new period (at most one per CPU).
 */
static __always_inline struct tg_quota_state *quota_live(__u32 slot, struct tg_quota_cfg **cfgp, __u64 now)
{
	struct tg_quota_state *st = bpf_map_lookup_elem(&tg_quota_state, &slot);
	struct tg_quota_cfg *cfg = bpf_map_lookup_elem(&tg_quota_cfg, &slot);
	__u64 end, next;

	if (!st || !cfg || !cfg->period_end_ns)
		return NULL;
	*cfgp = cfg;
	end = READ_ONCE(st->period_end_ns);
	if (now < end)
		return st;
	next = cfg->period_end_ns > now ? cfg->period_end_ns : cfg->next_end_ns;
	if (next <= now)
		return NULL;
	if (__sync_val_compare_and_swap(&st->period_end_ns, end, next) == end) {
		__sync_lock_test_and_set(&st->used, 0);
		st->flags = 0;
		quota_event(slot, TG_QEV_RENEWED, 0, 0, next, now);
	}
	return st;
}

/*
 * Whether a packet of `bytes` fits the throttle rate: a generic cell rate
 * algorithm on one shared timestamp, advanced with compare-and-swap. A
 * packet conforms when the rate's schedule, after it, runs at most burst_ns
 * ahead of now. A lost race is retried a few times, then the packet is
 * refused, which only errs towards the limit.
 */
static __always_inline bool quota_conforms(struct tg_quota_state *st, const struct tg_quota_cfg *cfg, __u32 bytes, __u64 now)
{
	__u64 cost, tat, base;
	int i;

	if (!cfg->rate)
		return false;
	cost = (__u64)bytes * 1000000000ULL / cfg->rate;
	for (i = 0; i < 4; i++) {
		tat = READ_ONCE(st->tat_ns);
		base = tat > now ? tat : now;
		if (base + cost - now > cfg->burst_ns)
			return false;
		if (__sync_val_compare_and_swap(&st->tat_ns, tat, base + cost) == tat)
			return true;
	}
	return false;
}

/* Reports the first refused or policed packet of a period, once. */
static __always_inline void quota_exhausted(__u32 slot, struct tg_quota_state *st, __u64 now)
{
	if (!(__sync_fetch_and_or(&st->flags, TG_QUOTA_EXHAUSTED) & TG_QUOTA_EXHAUSTED))
		quota_event(slot, TG_QEV_EXHAUSTED, 0, READ_ONCE(st->used), READ_ONCE(st->period_end_ns), now);
}

/*
 * PASS: go on (not judged by the firewall here: firewall off, not IP, or
 * filtered where it entered); ALLOWED: the firewall judged it and lets it
 * through; REDIRECT: answered in its place (bpf_redirect was called);
 * RESET: dropped, and the sender (of a TCP segment) is to be reset;
 * HONEYPOT: to be sent to the honeypot in tg_hp_pick.
 */
enum verdict { VERDICT_PASS = 0, VERDICT_DROP = 1, VERDICT_REDIRECT = 2, VERDICT_ALLOWED = 3, VERDICT_RESET = 4, VERDICT_HONEYPOT = 5 };

/*
 * One quota's say on a packet of `bytes`: refused when the quota is spent
 * and blocks, or throttles and the packet is over its rate. The per-slot
 * work sits in global functions, which the verifier checks once per program
 * instead of once per unrolled slot and call site (a load 25x slower).
 */
__noinline int tg_quota_check(__u32 slot, __u32 bytes, __u64 now)
{
	struct tg_quota_cfg *cfg = NULL;
	struct tg_quota_state *st = quota_live(slot, &cfg, now);
	struct tg_counter *d;

	if (!st || !cfg || cfg->action == TG_QUOTA_NONE || READ_ONCE(st->used) < cfg->limit)
		return VERDICT_PASS;
	quota_exhausted(slot, st, now);
	if (cfg->action == TG_QUOTA_THROTTLE && quota_conforms(st, cfg, bytes, now))
		return VERDICT_PASS;
	d = bpf_map_lookup_elem(&tg_quota_drops, &slot);
	if (d) {
		d->packets += 1;
		d->bytes += bytes;
	}
	return VERDICT_DROP;
}

/* Spends `bytes` of one quota, reporting each mark the add crosses (exactly one packet crosses it). */
__noinline int tg_quota_spend(__u32 slot, __u32 bytes, __u64 now)
{
	struct tg_quota_cfg *cfg = NULL;
	struct tg_quota_state *st = quota_live(slot, &cfg, now);
	__u64 before, after, mark;
	__u32 m;

	if (!st || !cfg)
		return 0;
	before = __sync_fetch_and_add(&st->used, bytes);
	after = before + bytes;
	for (m = 0; m < TG_QUOTA_MARKS; m++) {
		mark = cfg->marks[m];
		if (mark && before < mark && after >= mark)
			quota_event(slot, TG_QEV_THRESHOLD, m, after, READ_ONCE(st->period_end_ns), now);
	}
	return 0;
}

/*
 * The quotas of counter idx decide on a packet: refused when one of them
 * refuses it; otherwise it spends every one of them. Checked before spent,
 * so a refused packet spends nothing; the check and the add are not one
 * step, so each CPU can let one packet past the limit.
 */
static __always_inline int quota_verdict(__u32 idx, __u32 bytes)
{
	struct tg_quota_refs *refs = bpf_map_lookup_elem(&tg_quota_refs, &idx);
	__u64 now;
	__u32 i;

	if (!refs || !*(__u64 *)refs->slot)
		return VERDICT_PASS; /* the common case: no quota on this counter */
	now = bpf_ktime_get_tai_ns();
	for (i = 0; i < TG_QUOTA_REFS; i++) {
		if (refs->slot[i] && tg_quota_check(refs->slot[i], bytes, now) == VERDICT_DROP)
			return VERDICT_DROP;
	}
	for (i = 0; i < TG_QUOTA_REFS; i++) {
		if (refs->slot[i])
			tg_quota_spend(refs->slot[i], bytes, now);
	}
	return VERDICT_PASS;
}

static __always_inline struct tg_meter_reasons *reasons(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&tg_meter_reasons, &zero);
}

/* r from reasons(), looked up once per packet. */
static __always_inline void bump(struct tg_meter_reasons *r, __u32 reason)
{
	if (!r || reason >= TG_REASON_MAX)
		return;
	/* Hides the check from clang, which would otherwise drop the mask the verifier needs. */
	barrier_var(reason);
	r->n[reason & (TG_REASON_SLOTS - 1)] += 1;
}

/* Value of the longest prefix of generation gen holding addr (network order, 4 or 16 bytes) in trie v4 or v6; NULL when none. */
static __always_inline void *lpm_lookup(void *v4, void *v6, const struct pkt_meta *p, const __u8 *addr, __u32 gen)
{
	void *v;

	if (p->ip_ver == 4) {
		struct tg_lpm_v4_key k = { .prefixlen = 8 + 32, .generation = gen };

		__builtin_memcpy(k.addr_be, addr, 4);
		v = bpf_map_lookup_elem(v4, &k);
		/* Keeps clang from merging the two lookups into one call site,
		 * whose map the verifier could then not resolve to a direct call. */
		barrier_var(v);
		return v;
	}
	struct tg_lpm_v6_key k = { .prefixlen = 8 + 128, .generation = gen };

	__builtin_memcpy(k.addr_be, addr, 16);
	v = bpf_map_lookup_elem(v6, &k);
	barrier_var(v);
	return v;
}

/* Tenant owning addr in generation gen; 0 when none. */
static __always_inline __u32 tenant_by_addr(const struct pkt_meta *p, const __u8 *addr, __u8 gen)
{
	struct tg_tenant_ref *ref = lpm_lookup(&tg_tenant_v4, &tg_tenant_v6, p, addr, gen);

	return ref ? ref->tenant_id : TG_TENANT_UNATTRIBUTED;
}

/* Tenant owning the interface in generation gen (from selectors.interfaces); 0 when none. */
static __always_inline __u32 iface_owner(__u32 ifindex, __u32 gen)
{
	struct tg_tenant_ref *ref;
	__u32 slot = ifindex * 2 + (gen & 1);

	if (ifindex >= TG_MAX_IFINDEX)
		return TG_TENANT_UNATTRIBUTED;
	ref = bpf_map_lookup_elem(&tg_tenant_iface, &slot);
	return ref ? ref->tenant_id : TG_TENANT_UNATTRIBUTED;
}

static __always_inline void bump_flow_stat(__u32 s)
{
	__u64 *n = bpf_map_lookup_elem(&tg_flow_stats, &s);

	if (n)
		*n += 1;
}

static __always_inline __u32 mask_at(void *map, __u32 idx)
{
	__u32 *m = bpf_map_lookup_elem(map, &idx);

	return m ? *m : 0;
}

/* Index of the lowest set bit of a non-zero mask (BPF has no ctz). */
static __always_inline __u32 lowest_bit(__u32 m)
{
	__u32 i = 0;

	if (!(m & 0xffff)) { i += 16; m >>= 16; }
	if (!(m & 0xff)) { i += 8; m >>= 8; }
	if (!(m & 0xf)) { i += 4; m >>= 4; }
	if (!(m & 0x3)) { i += 2; m >>= 2; }
	if (!(m & 0x1)) i += 1;
	return i;
}

/*
 * A fragmented datagram's ports live in its first fragment only: remember
 * them there, and give them to the later fragments (which arrive after the
 * first in all but reordering networks) so every fragment gets the
 * datagram's class and flow. A miss leaves TG_PKT_HAS_L4 clear.
 */
static __always_inline void frag_ports(struct pkt_meta *p)
{
	struct tg_frag_key k = { .id = p->frag_id, .ip_ver = p->ip_ver, .proto = p->l4_proto };
	struct tg_frag_ports *fp, v;

	__builtin_memcpy(k.saddr_be, p->saddr, 16);
	__builtin_memcpy(k.daddr_be, p->daddr, 16);
	if (p->frag_off == 0) {
		if (p->flags & TG_PKT_HAS_L4) {
			v.sport_be = p->sport;
			v.dport_be = p->dport;
			bpf_map_update_elem(&tg_frag_ports, &k, &v, BPF_ANY);
		}
		return;
	}
	fp = bpf_map_lookup_elem(&tg_frag_ports, &k);
	if (!fp)
		return;
	p->sport = fp->sport_be;
	p->dport = fp->dport_be;
	p->flags |= TG_PKT_HAS_L4;
}

static __always_inline bool has_ports(const struct pkt_meta *p)
{
	return p->l4_proto == TG_IPPROTO_TCP || p->l4_proto == TG_IPPROTO_UDP || p->l4_proto == TG_IPPROTO_SCTP;
}

/* A later fragment whose first fragment's ports are unknown (after read_ports). */
static __always_inline bool frag_without_ports(const struct pkt_meta *p)
{
	return (p->flags & TG_PKT_FRAGMENT) && p->frag_off && !(p->flags & TG_PKT_HAS_L4);
}

/*
 * Reads the ports once per packet, for whoever needs them first (the
 * firewall, a class with a port condition, the flow key): from the L4
 * header, or for a later fragment from its first fragment. TG_PKT_HAS_L4
 * then says whether they are known.
 */
static __always_inline void read_ports(void *ctx, enum pkt_ctx_kind kind, struct pkt_meta *p)
{
	if (p->flags & TG_PKT_PORTS_READ)
		return;
	p->flags |= TG_PKT_PORTS_READ;
	if (!(p->flags & TG_PKT_HAS_L4) && p->l4_off)
		tg_parse_l4(ctx, kind, p, p->l4_off);
	if (p->flags & TG_PKT_FRAGMENT)
		frag_ports(p);
}

/*
 * The packet's traffic class in generation gen; peer is the address on the
 * far side from the tenant (destination of its egress, source of its
 * ingress). Non-IP frames, and IP headers whose addresses are not trusted,
 * are the default class.
 */
static __always_inline __u32 classify(void *ctx, enum pkt_ctx_kind kind, struct pkt_meta *p, const __u8 *peer,
				      __u32 gen, struct tg_meter_reasons *r)
{
	struct tg_class_gen *cg;
	__u32 m, *cm, ports;

	cg = bpf_map_lookup_elem(&tg_class_gen, &gen);
	if (!cg || !cg->active || !(p->flags & TG_PKT_HAS_ADDR))
		return TG_CLASS_DEFAULT;

	if (p->ip_ver == 4 && (cg->flags & TG_CLASS_V4_INLINE)) {
		__be32 a;
		__u32 i;

		__builtin_memcpy(&a, peer, 4);
		m = cg->any_cidr;
		for (i = 0; i < TG_CLASS_INLINE_V4; i++) {
			if (i >= cg->n_v4)
				break;
			if ((a & cg->v4[i].mask_be) == cg->v4[i].addr_be)
				m |= cg->v4[i].classes;
		}
	} else {
		cm = lpm_lookup(&tg_class_v4, &tg_class_v6, p, peer, gen);
		m = cm ? *cm : cg->any_cidr;
	}
	m &= cg->active;
	if (!m)
		return TG_CLASS_DEFAULT;
	m &= mask_at(&tg_class_proto, gen * TG_PROTOCOLS + p->l4_proto);

	/* Ports are read only now, and only when the first candidate class needs them. */
	ports = cg->any_port;
	if ((m & -m & ~ports) && has_ports(p)) {
		read_ports(ctx, kind, p);
		if (p->flags & TG_PKT_HAS_L4)
			ports |= mask_at(&tg_class_port, gen * TG_PORTS + bpf_ntohs(p->sport)) |
				 mask_at(&tg_class_port, gen * TG_PORTS + bpf_ntohs(p->dport));
		else if (frag_without_ports(p))
			bump(r, TG_REASON_FRAG_NO_PORTS);
	}
	m &= ports;
	if (!m)
		return TG_CLASS_DEFAULT;
	return mask_at(&tg_class_ids, gen * TG_MAX_CLASS_RULES + lowest_bit(m));
}

/*
 * Adds the packet to its flow, creating the flow when it is new; returns the
 * tg_flow_stat the packet counts under. Out of line: the per-packet path
 * without flows stays small in the i-cache.
 */
static __noinline int record_flow(const struct pkt_meta *p, __u32 tenant, __u32 dir, __u32 cls)
{
	struct tg_flow_key k = {
		/* Zero unless read_ports found them: ICMP and the rest have none. */
		.sport_be = p->sport,
		.dport_be = p->dport,
		.tenant_id = tenant,
		.ip_ver = p->ip_ver,
		.proto = p->l4_proto,
		.direction = dir,
	};
	__u64 now = bpf_ktime_get_ns();
	struct tg_flow *f, nf = {};
	long err;

	__builtin_memcpy(k.saddr_be, p->saddr, 16);
	__builtin_memcpy(k.daddr_be, p->daddr, 16);
	f = bpf_map_lookup_elem(&tg_flows, &k);
	if (!f) {
		nf.packets = 1;
		nf.bytes = p->l3_bytes;
		nf.first_seen_ns = now;
		nf.last_seen_ns = now;
		nf.class_id = cls;
		err = bpf_map_update_elem(&tg_flows, &k, &nf, BPF_NOEXIST);
		if (!err)
			return TG_FLOW_INSERTED;
		if (err != -EEXIST)
			return TG_FLOW_INSERT_FAILED;
		/* Another CPU inserted it between our lookup and update: add to theirs. */
		f = bpf_map_lookup_elem(&tg_flows, &k);
		if (!f)
			return TG_FLOW_LOOKUP_FAILED;
	}
	__sync_fetch_and_add(&f->packets, 1);
	__sync_fetch_and_add(&f->bytes, p->l3_bytes);
	/* Plain stores: racing CPUs differ by nanoseconds, or by a class across a policy switch. */
	f->last_seen_ns = now;
	f->class_id = cls;
	return TG_FLOW_UPDATED;
}

/* Reasons that describe the packet itself, whoever it is counted for. */
static __always_inline void note_packet(struct tg_meter_reasons *r, const struct pkt_meta *p)
{
	const __u16 notable = TG_PKT_TRUNCATED | TG_PKT_MALFORMED | TG_PKT_FRAGMENT | TG_PKT_VLAN |
			      TG_PKT_IPV6_EXT | TG_PKT_EXT_LIMIT;

	if (p->ip_ver == 4 && !(p->flags & TG_PKT_MALFORMED))
		bump(r, TG_REASON_IPV4);
	else if (p->ip_ver == 6 && !(p->flags & TG_PKT_MALFORMED))
		bump(r, TG_REASON_IPV6);
	else if (!p->ip_ver)
		bump(r, TG_REASON_NON_IP);
	if (!(p->flags & notable))
		return; /* the common case: one test instead of six */
	if (p->flags & TG_PKT_TRUNCATED)
		bump(r, TG_REASON_TRUNCATED);
	if (p->flags & TG_PKT_MALFORMED)
		bump(r, TG_REASON_MALFORMED);
	if (p->flags & TG_PKT_FRAGMENT)
		bump(r, TG_REASON_FRAGMENT);
	if (p->flags & TG_PKT_VLAN)
		bump(r, TG_REASON_VLAN);
	if (p->flags & TG_PKT_IPV6_EXT)
		bump(r, TG_REASON_IPV6_EXT);
	if (p->flags & TG_PKT_EXT_LIMIT)
		bump(r, TG_REASON_IPV6_EXT_LIMIT);
}

/*
 * Counts an attributed packet: its reasons, its class, the billing counter,
 * and its flow. unattributed_dir is the direction tenant 0 gets when the
 * tenant id is unusable.
 */
static __always_inline int account(void *ctx, enum pkt_ctx_kind kind, struct pkt_meta *p, __u32 tenant, __u32 dir,
				   enum tg_meter_reason why, __u32 unattributed_dir, __u32 gen, __u32 flags)
{
	struct tg_meter_reasons *r = reasons();
	struct tg_counter *c;
	__u32 idx, cls;

	note_packet(r, p);
	if (tenant >= tg_cfg_max_tenants) {
		bump(r, TG_REASON_BAD_INDEX);
		tenant = TG_TENANT_UNATTRIBUTED;
		dir = unattributed_dir;
		why = TG_REASON_UNATTRIBUTED;
	}
	cls = classify(ctx, kind, p, dir == TG_DIR_EGRESS ? p->daddr : p->saddr, gen, r);
	if (cls >= tg_cfg_max_classes) {
		bump(r, TG_REASON_BAD_INDEX);
		cls = TG_CLASS_DEFAULT;
	}
	idx = (tenant * tg_cfg_max_classes + cls) * TG_DIR_MAX + dir;
	c = bpf_map_lookup_elem(&tg_meter_counters, &idx);
	if (!c) {
		/* The array is smaller than the configuration says: same treatment as above. */
		bump(r, TG_REASON_BAD_INDEX);
		tenant = TG_TENANT_UNATTRIBUTED;
		cls = TG_CLASS_DEFAULT;
		dir = unattributed_dir;
		idx = TG_TENANT_UNATTRIBUTED * TG_DIR_MAX + unattributed_dir; /* class 0 of tenant 0 */
		why = TG_REASON_UNATTRIBUTED;
		c = bpf_map_lookup_elem(&tg_meter_counters, &idx);
		if (!c)
			return VERDICT_PASS;
	}
	bump(r, why);
	if (quota_verdict(idx, p->l3_bytes) == VERDICT_DROP) {
		bump(r, TG_REASON_QUOTA_DROP);
		return VERDICT_DROP;
	}
	/* Per-CPU slot, and tc/XDP/cgroup programs do not migrate mid-program: plain adds suffice. */
	c->packets += 1;
	c->bytes += p->l3_bytes;

	if (!(flags & TG_METER_FLOWS))
		return VERDICT_PASS;
	if (!(p->flags & TG_PKT_HAS_ADDR)) {
		bump_flow_stat(TG_FLOW_NO_ADDR);
		return VERDICT_PASS;
	}
	if (has_ports(p)) {
		read_ports(ctx, kind, p);
		if (frag_without_ports(p))
			bump_flow_stat(TG_FLOW_FRAG_NO_PORTS);
	}
	bump_flow_stat(record_flow(p, tenant, dir, cls));
	return VERDICT_PASS;
}

/*
 * account() behind global (non-static) functions: the verifier checks a
 * global function once, on its own, instead of once for every path through
 * the parser that reaches it; with classes and flows inlined, that path
 * product made each tc program take over a second to load. The price: the
 * function may assume nothing about *p, so every use of its fields must be
 * safe for any value (they are: map keys, helper offsets, array indexes
 * checked by the map). One per context type, since XDP and skb programs read
 * packets with different helpers; cgroup_skb shares the skb one (its L4
 * offsets are relative to the IP header, which is where its data starts).
 */
/* What a hook decided, handed to the accounting (BPF calls take at most five arguments). */
struct attribution {
	__u32 tenant;
	__u32 dir;
	__u32 why;              /* enum tg_meter_reason */
	__u32 unattributed_dir; /* tenant 0's direction when the tenant id is unusable */
	__u32 gen;
	__u32 flags;            /* tg_meter_config.flags */
};

/* Both return enum verdict. */
__noinline int tg_account_skb(struct __sk_buff *skb, struct pkt_meta *p, const struct attribution *a)
{
	if (p && a)
		return account(skb, TG_CTX_SKB, p, a->tenant, a->dir, a->why, a->unattributed_dir, a->gen, a->flags);
	return VERDICT_PASS;
}

__noinline int tg_account_xdp(struct xdp_md *ctx, struct pkt_meta *p, const struct attribution *a)
{
	if (p && a)
		return account(ctx, TG_CTX_XDP, p, a->tenant, a->dir, a->why, a->unattributed_dir, a->gen, a->flags);
	return VERDICT_PASS;
}

/* Interfaces whose tc/XDP hooks this datapath attached, by ifindex in
 * tg_meter_config.metered_netns: enum tg_iface_flag bits. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_MAX_IFINDEX);
	__type(key, __u32);
	__type(value, __u32);
} tg_metered_iface SEC(".maps");

/* ---- firewall (abi.h, "Firewall"; docs/security.md) ----
 *
 * Runs at the tc/XDP hooks before metering, so a packet it drops is never
 * billed. Interfaces that are only filtered run the same code through the
 * tg_filter_* entry points. A packet is filtered once: at the first hook of
 * this datapath it meets (host-ingress of a filtered interface, or
 * host-egress when it did not enter through one).
 */

/* Slot 0: enum tg_fw_live_flag, the generation of the firewall maps the programs read (independent of metering's). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} tg_fw_live SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct tg_fw_gen);
} tg_fw_gen SEC(".maps");

/* Address prefix -> rules whose source (destination) condition holds for it.
 * Every generation has a /0 entry (prefixlen 8: just the generation byte),
 * so a lookup always answers. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TG_FW_MAX_PREFIXES);
	__type(key, struct tg_lpm_v4_key);
	__type(value, struct tg_fw_mask);
} tg_fw_src_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TG_FW_MAX_PREFIXES);
	__type(key, struct tg_lpm_v6_key);
	__type(value, struct tg_fw_mask);
} tg_fw_src_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TG_FW_MAX_PREFIXES);
	__type(key, struct tg_lpm_v4_key);
	__type(value, struct tg_fw_mask);
} tg_fw_dst_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TG_FW_MAX_PREFIXES);
	__type(key, struct tg_lpm_v6_key);
	__type(value, struct tg_fw_mask);
} tg_fw_dst_v6 SEC(".maps");

/* The hashed prefix tables (abi.h, enum tg_fw_pfx_table): prefix -> the rules the trie would answer for it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 2 * TG_FW_MAX_PREFIXES);
	__type(key, struct tg_fw_pfx_v4_key);
	__type(value, struct tg_fw_mask);
} tg_fw_pfx_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 2 * TG_FW_MAX_PREFIXES);
	__type(key, struct tg_fw_pfx_v6_key);
	__type(value, struct tg_fw_mask);
} tg_fw_pfx_v6 SEC(".maps");

/* generation * 256 + IP protocol -> rules that allow it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * TG_PROTOCOLS);
	__type(key, __u32);
	__type(value, struct tg_fw_mask);
} tg_fw_proto SEC(".maps");

/* generation * 65536 + destination port -> rules whose port ranges hold it (rules without ports are
 * tg_fw_gen.any_port), so a policy with few ports writes few entries. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * TG_PORTS);
	__type(key, __u32);
	__type(value, struct tg_fw_mask);
} tg_fw_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_FW_MAX_TENANT_KEYS);
	__type(key, struct tg_fw_tenant_key);
	__type(value, struct tg_fw_mask);
} tg_fw_tenant SEC(".maps");

/* generation * TG_FW_MAX_RULES + bit -> what the rule does. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * TG_FW_MAX_RULES);
	__type(key, __u32);
	__type(value, struct tg_fw_rule);
} tg_fw_rules SEC(".maps");

/* Packets and L3 bytes each rule matched, by slot (0: the default action). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_FW_MAX_SLOTS);
	__type(key, __u32);
	__type(value, struct tg_counter);
} tg_fw_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_FW_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tg_fw_stats SEC(".maps");

static __always_inline void fw_stat(__u32 s)
{
	__u64 *n = bpf_map_lookup_elem(&tg_fw_stats, &s);

	if (n)
		*n += 1;
}

/* m &= *o; a missing entry (NULL) matches no rule. */
static __always_inline void mask_and(struct tg_fw_mask *m, const struct tg_fw_mask *o)
{
	int i;

#pragma unroll
	for (i = 0; i < TG_FW_MASK_WORDS; i++)
		m->w[i] &= o ? o->w[i] : 0;
}

/* The first rule (lowest bit) in m, or -1 when m is empty. */
static __always_inline int first_rule(const struct tg_fw_mask *m)
{
	int i;

#pragma unroll
	for (i = 0; i < TG_FW_MASK_WORDS; i++) {
		__u64 w = m->w[i];

		if (w) {
			__u32 lo = (__u32)w;

			return i * 64 + (lo ? lowest_bit(lo) : 32 + lowest_bit((__u32)(w >> 32)));
		}
	}
	return -1;
}

static __always_inline bool mask_has(const struct tg_fw_mask *m, int bit)
{
	int i;

#pragma unroll
	for (i = 0; i < TG_FW_MASK_WORDS; i++)
		if (bit >> 6 == i)
			return (m->w[i] >> (bit & 63)) & 1;
	return false;
}

/* Smallest complete header of an L4 protocol the firewall reads (0: none it checks). */
static __always_inline __u32 l4_min_header(__u8 proto)
{
	if (proto == TG_IPPROTO_TCP)
		return 20;
	if (proto == TG_IPPROTO_UDP || proto == TG_IPPROTO_ICMP || proto == TG_IPPROTO_ICMPV6)
		return 8;
	if (proto == TG_IPPROTO_SCTP)
		return 12;
	return 0;
}

#define TG_TCP_FIN 0x01
#define TG_TCP_SYN 0x02
#define TG_TCP_RST 0x04
#define TG_TCP_ACK 0x10

/*
 * Whether a packet can be judged by the rules at all. Returns 0 when it can,
 * TG_FW_NON_IP for frames that are not IP (let through: the rules speak of
 * IP), or the enum tg_fw_stat that drops it: a header cut off or lying about
 * its length, more VLAN tags or IPv6 extension headers than the parser
 * walks (which could hide the real header from the rules), an L4 header
 * that does not fit in the datagram (a tiny first fragment, RFC 1858), a
 * TCP fragment at offset 8 that would rewrite the flags, a TCP data offset
 * that is impossible, SYN with FIN or RST. Reads the ports.
 */
static __always_inline __u32 fw_check(void *ctx, enum pkt_ctx_kind kind, struct pkt_meta *p)
{
	__u32 need, end;

	if (p->flags & TG_PKT_SHORT)
		return TG_FW_SHORT;
	if (p->flags & TG_PKT_VLAN_LIMIT)
		return TG_FW_VLAN_LIMIT;
	if (!p->ip_ver)
		return (p->flags & TG_PKT_TRUNCATED) ? TG_FW_SHORT : TG_FW_NON_IP;
	if (!(p->flags & TG_PKT_HAS_ADDR) || (p->flags & TG_PKT_L3_CUT))
		return TG_FW_BAD_IP;
	if (p->flags & (TG_PKT_EXT_LIMIT | TG_PKT_EXT_CUT))
		return TG_FW_EXT_LIMIT;
	read_ports(ctx, kind, p);
	if ((p->flags & TG_PKT_FRAGMENT) && p->frag_off)
		return p->l4_proto == TG_IPPROTO_TCP && p->frag_off < 16 ? TG_FW_BAD_L4 : 0;
	need = l4_min_header(p->l4_proto);
	if (!need)
		return 0;
	end = (__u32)p->l3_off + p->l3_bytes;
	if (!p->l4_off || p->l4_off + need > end || !(p->flags & TG_PKT_HAS_L4))
		return TG_FW_BAD_L4;
	if (p->l4_proto != TG_IPPROTO_TCP)
		return 0;
	if (p->tcp_doff < 5 || p->l4_off + (__u32)p->tcp_doff * 4 > end)
		return TG_FW_BAD_L4;
	if ((p->tcp_flags & TG_TCP_SYN) && (p->tcp_flags & (TG_TCP_FIN | TG_TCP_RST)))
		return TG_FW_BAD_TCP_FLAGS;
	return 0;
}

/* Rules that hold because `tenant` is on `side` of the packet (none for tenant 0). */
static __always_inline void side_mask(struct tg_fw_mask *out, const struct tg_fw_gen *g, __u32 tenant, __u32 side,
				      __u32 gen)
{
	const struct tg_fw_mask *m = NULL;

	if (!tenant) {
		__builtin_memset(out, 0, sizeof(*out));
		return;
	}
	if (g->flags & TG_FW_TENANT_KEYS) {
		struct tg_fw_tenant_key k = { .tenant_id = tenant, .generation = gen, .side = side };

		m = bpf_map_lookup_elem(&tg_fw_tenant, &k);
	}
	if (!m)
		m = side == TG_FW_TO ? &g->to_tenant : &g->from_tenant;
	__builtin_memcpy(out, m, sizeof(*out));
}

/* The tenants sending (src) and receiving (dst) the packet, 0 for nobody's side. */
static __always_inline void fw_tenants(const struct pkt_meta *p, __u32 hook, __u32 ifindex, __u32 *src, __u32 *dst)
{
	struct tg_meter_config *cfg;
	__u32 zero = 0, mgen, owner;

	/* Tenants come from metering's maps, in metering's live generation. */
	cfg = bpf_map_lookup_elem(&tg_meter_config, &zero);
	mgen = cfg ? cfg->generation & 1 : 0;
	owner = iface_owner(ifindex, mgen);
	/* A tenant's own interface: it sends what enters the host there and receives what leaves. */
	*src = hook == TG_HOOK_INGRESS && owner ? owner : tenant_by_addr(p, p->saddr, mgen);
	*dst = hook == TG_HOOK_EGRESS && owner ? owner : tenant_by_addr(p, p->daddr, mgen);
}

/* The rules the tenants on either side of the packet allow: see struct tg_fw_tenant_key. */
static __always_inline void fw_sides(struct tg_fw_mask *m, const struct tg_fw_gen *g, const struct pkt_meta *p,
				     __u32 hook, __u32 ifindex, __u32 gen)
{
	struct tg_fw_mask to, from;
	__u32 src, dst;
	int i;

	fw_tenants(p, hook, ifindex, &src, &dst);
	side_mask(&to, g, dst, TG_FW_TO, gen);
	side_mask(&from, g, src, TG_FW_FROM, gen);
#pragma unroll
	for (i = 0; i < TG_FW_MASK_WORDS; i++)
		m->w[i] &= to.w[i] | from.w[i] | g->any_side.w[i];
}

/* Whether some rule in m holds only for some tenants on some side (is not in any_side). */
static __always_inline bool fw_needs_sides(const struct tg_fw_mask *m, const struct tg_fw_gen *g)
{
	__u64 any = 0;
	int i;

#pragma unroll
	for (i = 0; i < TG_FW_MASK_WORDS; i++)
		any |= m->w[i] & ~g->any_side.w[i];
	return any != 0;
}

/* ---- Security events (struct tg_sev) ---- */

/* 4 MiB: about 50,000 records waiting for the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} tg_sev_ring SEC(".maps");

/* enum tg_sev_stat: what became of the events the datapath had to send. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_SEV_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tg_sev_stats SEC(".maps");

/* By rule slot (tg_fw_hits), then L7 signature (TG_FW_MAX_SLOTS + index). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_FW_MAX_SLOTS + TG_L7_MAX_SIGS);
	__type(key, __u32);
	__type(value, struct event_budget);
} tg_sev_budget SEC(".maps");

#define sev_stat(s) event_stat(&tg_sev_stats, (s))
/* Whether slot may send another event this second on this CPU (event_budget.h). */
#define sev_budget(slot, rate) event_budget(&tg_sev_budget, &tg_sev_stats, (slot), (rate))

/* Sends one event about packet p; the ring being full is counted, never waited for. */
static __always_inline void sev_packet(const struct pkt_meta *p, __u32 type, __u32 slot, __u32 action, __u32 hook,
				       __u32 ifindex, __u32 detail)
{
	struct tg_sev *e = bpf_ringbuf_reserve(&tg_sev_ring, sizeof(*e), 0);
	bool ports;

	if (!e) {
		sev_stat(TG_SEV_LOST);
		return;
	}
	e->at_ns = bpf_ktime_get_tai_ns();
	__builtin_memcpy(e->saddr_be, p->saddr, 16);
	__builtin_memcpy(e->daddr_be, p->daddr, 16);
	e->type = type;
	e->slot = slot;
	fw_tenants(p, hook, ifindex, &e->from_tenant, &e->to_tenant);
	e->ifindex = ifindex;
	e->bytes = p->l3_bytes;
	ports = has_ports(p) && (p->flags & TG_PKT_HAS_L4);
	e->sport_be = ports ? p->sport : 0;
	e->dport_be = ports ? p->dport : 0;
	e->ip_ver = p->ip_ver;
	e->proto = p->l4_proto;
	e->action = action;
	e->hook = hook;
	e->detail = detail;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	sev_stat(TG_SEV_SENT);
}

/* ---- Rate limits (struct tg_rl_cfg) ---- */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * TG_RL_MAX);
	__type(key, __u32);
	__type(value, struct tg_rl_cfg);
} tg_rl_cfg SEC(".maps");


/*
 * A plain hash (spin locks are not allowed in LRU maps), preallocated. The
 * agent removes buckets idle for longer than they take to fill (they are
 * full: removing them changes nothing); a key that finds the map full is not
 * limited, and counted (TG_FW_RL_NO_BUCKET).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_RL_MAX_BUCKETS);
	__type(key, struct tg_rl_key);
	__type(value, struct tg_rl_bucket);
} tg_rl_state SEC(".maps");

/* By counter slot: packets and bytes a limit dropped (tg_fw_hits has all it applied to). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_FW_MAX_SLOTS);
	__type(key, __u32);
	__type(value, struct tg_counter);
} tg_rl_drops SEC(".maps");

#define RL_UNIT 1000000000ULL

static __always_inline __u64 rl_refill(__u64 tokens, __u64 elapsed, __u64 rate, __u64 cap, __u64 fill_ns)
{
	/* fill_ns = cap / rate: below it elapsed * rate <= cap, so the product cannot overflow */
	if (elapsed >= fill_ns)
		return cap;
	tokens += elapsed * rate;
	return tokens > cap ? cap : tokens;
}

/*
 * Whether the packet conforms to limit c (and takes its tokens); key is the
 * bucket's. Global: verified once, not once per standing limit the caller's
 * loop might reach.
 */
__noinline bool tg_rl_conform(const struct tg_rl_cfg *c, const struct tg_rl_key *key, __u32 bytes)
{
	struct tg_rl_bucket *b, fresh = {};
	__u64 now = bpf_ktime_get_ns(), elapsed, pkt, byte, pkt_cost = RL_UNIT, byte_cost;
	bool ok = true;

	if (!c || !key)
		return true;
	/* A new key starts with a full bucket. */
	fresh.pkt_tokens = c->pkt_cap;
	fresh.byte_tokens = c->byte_cap;
	fresh.last_ns = now;
	b = lookup_or_init(&tg_rl_state, key, &fresh);
	if (!b) {
		fw_stat(TG_FW_RL_NO_BUCKET);
		return true;
	}
	byte_cost = (__u64)bytes * RL_UNIT;
	bpf_spin_lock(&b->lock);
	elapsed = now > b->last_ns ? now - b->last_ns : 0;
	b->last_ns = now;
	pkt = c->pps ? rl_refill(b->pkt_tokens, elapsed, c->pps, c->pkt_cap, c->pkt_fill_ns) : 0;
	byte = c->bytes_ps ? rl_refill(b->byte_tokens, elapsed, c->bytes_ps, c->byte_cap, c->byte_fill_ns) : 0;
	if ((c->pps && pkt < pkt_cost) || (c->bytes_ps && byte < byte_cost))
		ok = false;
	if (ok) {
		pkt = c->pps ? pkt - pkt_cost : 0;
		byte = c->bytes_ps ? byte - byte_cost : 0;
	}
	b->pkt_tokens = pkt;
	b->byte_tokens = byte;
	bpf_spin_unlock(&b->lock);
	return ok;
}

/* The bucket key of limit c for packet p, whose tenant on the limit's side is tenant. */
static __always_inline void rl_key(struct tg_rl_key *k, const struct tg_rl_cfg *c, const struct pkt_meta *p, __u32 tenant)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->slot = c->slot;
	if (c->per == TG_RL_PER_SOURCE || c->per == TG_RL_PER_DESTINATION) {
		k->ip_ver = p->ip_ver;
		__builtin_memcpy(k->addr_be, c->per == TG_RL_PER_SOURCE ? p->saddr : p->daddr, 16);
	} else if (c->per == TG_RL_PER_TENANT) {
		__builtin_memcpy(k->addr_be, &tenant, sizeof(tenant));
	}
}

/* tg_rl_check's which: the generation, the deciding rule's limit (1 + its tg_rl_cfg index, 0: none), the standing limits. */
#define RL_WHICH(gen, rule_limit, standing) ((gen) | ((rule_limit) << 8) | ((standing) << 16))

/*
 * The slot of the first rate limit packet p exceeds (0: it conforms): the
 * deciding rule's, then the standing limits whose tenant is on their side of
 * the packet (src and dst: the tenants sending and receiving it). Global, so
 * the verifier checks the limits once rather than on every path through the
 * firewall (and a global function takes at most five arguments: RL_WHICH).
 */
__noinline __u32 tg_rl_check(struct pkt_meta *p, __u32 which, __u32 src, __u32 dst)
{
	const struct tg_rl_cfg *c;
	struct tg_counter *hits;
	struct tg_rl_key key;
	__u32 idx, tenant, slot, gen = which & 1, rule_limit = (which >> 8) & 0xff, standing = (which >> 16) & 0xff;
	int i;

	if (!p)
		return 0;
	if (rule_limit) {
		idx = gen * TG_RL_MAX + ((rule_limit - 1) & (TG_RL_MAX - 1));
		c = bpf_map_lookup_elem(&tg_rl_cfg, &idx);
		if (c) {
			rl_key(&key, c, p, dst ? dst : src);
			if (!tg_rl_conform(c, &key, p->l3_bytes))
				return c->slot;
		}
	}
	for (i = 0; i < TG_RL_MAX_STANDING; i++) {
		if (i >= standing)
			break;
		idx = gen * TG_RL_MAX + i;
		c = bpf_map_lookup_elem(&tg_rl_cfg, &idx);
		if (!c)
			break;
		/* Seen from the tenant: ingress limits what it receives, egress what it sends. */
		if ((c->dirs & (1 << TG_DIR_INGRESS)) && dst && (!c->tenant_id || c->tenant_id == dst))
			tenant = dst;
		else if ((c->dirs & (1 << TG_DIR_EGRESS)) && src && (!c->tenant_id || c->tenant_id == src))
			tenant = src;
		else
			continue;
		slot = c->slot;
		hits = bpf_map_lookup_elem(&tg_fw_hits, &slot);
		if (hits) {
			hits->packets += 1;
			hits->bytes += p->l3_bytes;
		}
		rl_key(&key, c, p, tenant);
		if (!tg_rl_conform(c, &key, p->l3_bytes))
			return slot;
	}
	return 0;
}

static __always_inline void rl_dropped(__u32 slot, __u32 bytes)
{
	struct tg_counter *d = bpf_map_lookup_elem(&tg_rl_drops, &slot);

	if (d) {
		d->packets += 1;
		d->bytes += bytes;
	}
}

/* ---- Floods and scans (abi.h) ---- */

/* By UDP source port: 1 for the ports reflection attacks come from (ddos.reflectionPorts). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_PORTS);
	__type(key, __u32);
	__type(value, __u8);
} tg_refl_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, TG_GUARD_MAX_DSTS);
	__type(key, struct tg_addr_key);
	__type(value, struct tg_traffic);
} tg_guard_dst SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, TG_GUARD_MAX_SRCS);
	__type(key, struct tg_addr_key);
	__type(value, struct tg_traffic);
} tg_guard_src SEC(".maps");

/* (source, destination, protocol, port) seen: a new one is a new pair for the source's scan count. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TG_GUARD_MAX_PAIRS);
	__type(key, struct tg_scan_key);
	__type(value, __u8);
} tg_scan_seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_GUARD_MAX_BLOCKS);
	__type(key, struct tg_addr_key);
	__type(value, struct tg_block);
} tg_block_src SEC(".maps");

/* Destinations whose UDP from reflection ports is dropped. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_GUARD_MAX_BLOCKS);
	__type(key, struct tg_addr_key);
	__type(value, struct tg_block);
} tg_block_refl SEC(".maps");

/* By generation * TG_HONEYPOT_MAX + index: redirect rules' targets. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * TG_HONEYPOT_MAX);
	__type(key, __u32);
	__type(value, struct tg_honeypot);
} tg_honeypot SEC(".maps");

/* Per CPU: the honeypot the firewall chose for the packet being processed (VERDICT_HONEYPOT). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tg_honeypot);
} tg_hp_pick SEC(".maps");

static __always_inline bool hp_pick(const struct tg_honeypot *hp)
{
	__u32 zero = 0;
	struct tg_honeypot *pick = bpf_map_lookup_elem(&tg_hp_pick, &zero);

	if (!pick || !hp || !hp->ifindex)
		return false;
	__builtin_memcpy(pick, hp, sizeof(*pick));
	return true;
}

static __always_inline bool refl_port(const struct pkt_meta *p)
{
	__u32 port;
	__u8 *r;

	if (p->l4_proto != TG_IPPROTO_UDP || !(p->flags & TG_PKT_HAS_L4))
		return false;
	port = bpf_ntohs(p->sport);
	r = bpf_map_lookup_elem(&tg_refl_port, &port);
	return r && *r;
}

static __always_inline struct tg_traffic *traffic_of(void *map, const __u8 *addr, __u8 ip_ver)
{
	struct tg_addr_key k = { .ip_ver = ip_ver };
	struct tg_traffic zero = {};

	__builtin_memcpy(k.addr_be, addr, 16);
	return lookup_or_init(map, &k, &zero);
}

/* The block in force for addr in map, or NULL; it counts the packet. */
static __always_inline struct tg_block *blocked(void *map, const __u8 *addr, __u8 ip_ver, __u64 now, __u32 bytes)
{
	struct tg_addr_key k = { .ip_ver = ip_ver };
	struct tg_block *b;

	__builtin_memcpy(k.addr_be, addr, 16);
	b = bpf_map_lookup_elem(map, &k);
	if (!b || now >= b->expires_ns)
		return NULL;
	__sync_fetch_and_add(&b->packets, 1);
	__sync_fetch_and_add(&b->bytes, bytes);
	return b;
}

/*
 * Global (checked once): the automatic blocks' say, 0 or the enum tg_fw_stat
 * that drops the packet, or TG_FW_REDIRECTED for a source sent to a honeypot
 * (chosen in tg_hp_pick; its block lives on while it keeps sending).
 */
__noinline __u32 tg_guard_block(struct pkt_meta *p, __u32 live)
{
	__u64 now = bpf_ktime_get_ns();
	struct tg_block *b;

	if (!p)
		return 0;
	if (live & TG_FW_LIVE_BLOCK_SRC) {
		b = blocked(&tg_block_src, p->saddr, p->ip_ver, now, p->l3_bytes);
		if (b && b->to.ifindex && hp_pick(&b->to)) {
			if (b->idle_ns)
				WRITE_ONCE(b->expires_ns, now + b->idle_ns);
			return TG_FW_REDIRECTED;
		}
		if (b)
			return TG_FW_BLOCKED_SOURCE;
	}
	if ((live & TG_FW_LIVE_BLOCK_REFL) && refl_port(p) && blocked(&tg_block_refl, p->daddr, p->ip_ver, now, p->l3_bytes))
		return TG_FW_BLOCKED_REFLECTION;
	return 0;
}

/* Global: counts for flood detection (TG_FW_LIVE_DDOS in live) and scan detection (TG_FW_LIVE_SCAN). */
__noinline int tg_guard_count(struct pkt_meta *p, __u32 live)
{
	struct tg_traffic *t;
	struct tg_scan_key k = {};
	bool refl;
	__u8 one = 1;

	if (!p)
		return 0;
	if (live & TG_FW_LIVE_DDOS) {
		refl = refl_port(p);
		t = traffic_of(&tg_guard_dst, p->daddr, p->ip_ver);
		if (t) {
			t->packets += 1;
			t->bytes += p->l3_bytes;
			if (refl) {
				t->refl_packets += 1;
				t->refl_bytes += p->l3_bytes;
			}
		}
		t = traffic_of(&tg_guard_src, p->saddr, p->ip_ver);
		if (t) {
			t->packets += 1;
			t->bytes += p->l3_bytes;
			if (refl) {
				t->refl_packets += 1;
				t->refl_bytes += p->l3_bytes;
			}
		}
	}
	if ((live & TG_FW_LIVE_SCAN) && (p->flags & TG_PKT_HAS_L4) &&
	    ((p->l4_proto == TG_IPPROTO_TCP && (p->tcp_flags & (TG_TCP_SYN | TG_TCP_ACK)) == TG_TCP_SYN) ||
	     p->l4_proto == TG_IPPROTO_UDP)) {
		k.ip_ver = p->ip_ver;
		k.proto = p->l4_proto;
		k.dport_be = p->dport;
		__builtin_memcpy(k.saddr_be, p->saddr, 16);
		__builtin_memcpy(k.daddr_be, p->daddr, 16);
		if (bpf_map_update_elem(&tg_scan_seen, &k, &one, BPF_NOEXIST) == 0) {
			t = traffic_of(&tg_guard_src, p->saddr, p->ip_ver);
			if (t)
				t->scan_pairs += 1;
		}
	}
	return 0;
}

/* The high len bits of a 32-bit word, in network order. */
static __always_inline __be32 prefix_word(__u32 len)
{
	if (len >= 32)
		return 0xffffffff;
	return bpf_htonl(len ? ~0U << (32 - len) : 0);
}

/*
 * Global (checked once): ANDs into m the rules whose prefix condition in a
 * hashed table (enum tg_fw_pfx_table) holds for the packet's address: the
 * longest of the table's lengths that has an entry answers, no entry clears m.
 */
__noinline int tg_fw_pfx_and(struct tg_fw_mask *m, const struct pkt_meta *p, __u32 gen, __u32 table)
{
	const struct tg_fw_mask *v = NULL;
	const struct tg_fw_gen *g;
	__u32 i, j, n, len;
	__be32 a[4], w[4];

	if (!m || !p)
		return 0;
	table &= TG_FW_PFX_TABLES - 1;
	g = bpf_map_lookup_elem(&tg_fw_gen, &gen);
	n = g ? g->pfx_n[table] : 0;
	__builtin_memcpy(a, table < TG_FW_PFX_DST4 ? p->saddr : p->daddr, 16);
	if (p->ip_ver == 4) {
		struct tg_fw_pfx_v4_key k = { .generation = gen, .table = table };

#pragma unroll
		for (i = 0; i < TG_FW_PFX_LENS; i++) {
			if (i >= n || !g)
				break;
			len = g->pfx_lens[table * TG_FW_PFX_LENS + i];
			k.prefixlen = len;
			w[0] = a[0] & prefix_word(len);
			__builtin_memcpy(k.addr_be, w, 4);
			v = bpf_map_lookup_elem(&tg_fw_pfx_v4, &k);
			if (v)
				break;
		}
	} else {
		struct tg_fw_pfx_v6_key k = { .generation = gen, .table = table };

#pragma unroll
		for (i = 0; i < TG_FW_PFX_LENS; i++) {
			if (i >= n || !g)
				break;
			len = g->pfx_lens[table * TG_FW_PFX_LENS + i];
			k.prefixlen = len;
#pragma unroll
			for (j = 0; j < 4; j++)
				w[j] = a[j] & prefix_word(len > 32 * j ? len - 32 * j : 0);
			__builtin_memcpy(k.addr_be, w, 16);
			v = bpf_map_lookup_elem(&tg_fw_pfx_v6, &k);
			if (v)
				break;
		}
	}
	mask_and(m, v);
	return 0;
}

/* ANDs into m the rules whose source (side TG_FW_PFX_SRC4) or destination (TG_FW_PFX_DST4) prefixes hold. */
static __always_inline void fw_prefixes(struct tg_fw_mask *m, const struct tg_fw_gen *g, const struct pkt_meta *p, __u32 gen, __u32 side)
{
	__u32 table = side + (p->ip_ver == 6);

	if (g->flags & (TG_FW_HASH_SRC4 << table))
		tg_fw_pfx_and(m, p, gen, table);
	else if (side == TG_FW_PFX_SRC4)
		mask_and(m, lpm_lookup(&tg_fw_src_v4, &tg_fw_src_v6, p, p->saddr, gen));
	else
		mask_and(m, lpm_lookup(&tg_fw_dst_v4, &tg_fw_dst_v6, p, p->daddr, gen));
}

#define TG_FW_LIVE_GUARD_BLOCKS (TG_FW_LIVE_BLOCK_SRC | TG_FW_LIVE_BLOCK_REFL)

/* "L7 signatures", below: the payload check, after the rules let a TCP segment through. */
__noinline int tg_l7_skb(struct __sk_buff *skb, struct pkt_meta *p, __u32 gen, __u32 hook, __u32 log_rate);

/* The firewall's verdict on a parsed packet at a host-side hook. */
static __always_inline int fw_filter(void *ctx, enum pkt_ctx_kind kind, struct pkt_meta *p, __u32 hook, __u32 ifindex, __u32 lv)
{
	const struct tg_fw_gen *g;
	struct tg_fw_rule *rule;
	struct tg_counter *hits;
	struct tg_fw_mask m;
	__u32 gen, why, idx, slot = 0, action, src = 0, dst = 0, limited;
	int bit, verdict;

	if (!(lv & TG_FW_LIVE_ON))
		return VERDICT_PASS;
	gen = lv & TG_FW_LIVE_GEN;
	g = bpf_map_lookup_elem(&tg_fw_gen, &gen);
	if (!g || !(g->flags & TG_FW_ON))
		return VERDICT_PASS;
	if (kind == TG_CTX_SKB && hook == TG_HOOK_EGRESS) {
		__u32 iif = ((struct __sk_buff *)ctx)->ingress_ifindex, *f;

		f = iif ? bpf_map_lookup_elem(&tg_metered_iface, &iif) : NULL;
		if (f && (*f & TG_IFACE_FILTERED)) {
			fw_stat(TG_FW_SEEN_BEFORE);
			return VERDICT_PASS;
		}
	}
	why = fw_check(ctx, kind, p);
	if (why == TG_FW_NON_IP) {
		fw_stat(TG_FW_NON_IP);
		fw_stat(TG_FW_PASSED);
		return VERDICT_PASS;
	}
	if (why)
		goto drop;
	/* Automatic blocks hold whatever the rules say; a scan counts whatever they decide. */
	if (lv & TG_FW_LIVE_GUARD_BLOCKS) {
		why = tg_guard_block(p, lv);
		if (why == TG_FW_REDIRECTED)
			goto honeypot;
		if (why)
			goto drop;
	}
	if (lv & TG_FW_LIVE_SCAN)
		tg_guard_count(p, TG_FW_LIVE_SCAN);

	/* Cheapest conditions first; a condition no rule has is skipped (its map holds every rule). */
	__builtin_memcpy(&m, &g->active, sizeof(m));
	if (g->flags & TG_FW_PROTO) {
		idx = gen * TG_PROTOCOLS + p->l4_proto;
		mask_and(&m, bpf_map_lookup_elem(&tg_fw_proto, &idx));
	}
	if (g->flags & TG_FW_SRC)
		fw_prefixes(&m, g, p, gen, TG_FW_PFX_SRC4);
	if (g->flags & TG_FW_DST)
		fw_prefixes(&m, g, p, gen, TG_FW_PFX_DST4);
	if (!(g->flags & TG_FW_PORTS)) {
		/* No rule has ports: any_port holds every rule, and a fragment's ports cannot decide. */
	} else if (has_ports(p) && (p->flags & TG_PKT_HAS_L4)) {
		const struct tg_fw_mask *pm;
		int i;

		idx = gen * TG_PORTS + bpf_ntohs(p->dport);
		pm = bpf_map_lookup_elem(&tg_fw_port, &idx);
#pragma unroll
		for (i = 0; i < TG_FW_MASK_WORDS; i++)
			m.w[i] &= (pm ? pm->w[i] : 0) | g->any_port.w[i];
	} else if (has_ports(p)) {
		/* A later fragment whose first was not seen: undecidable when the first candidate wants ports. */
		if ((g->flags & TG_FW_SIDES) && fw_needs_sides(&m, g))
			fw_sides(&m, g, p, hook, ifindex, gen);
		bit = first_rule(&m);
		if (bit >= 0 && !mask_has(&g->any_port, bit)) {
			why = TG_FW_FRAG_NO_PORTS;
			goto drop;
		}
		mask_and(&m, &g->any_port);
	} else {
		mask_and(&m, &g->any_port);
	}
	/* Last and only when a candidate needs them: the tenants cost two more trie lookups (again
	 * harmless after the fragment case: the side masks only clear bits). */
	if ((g->flags & TG_FW_SIDES) && fw_needs_sides(&m, g))
		fw_sides(&m, g, p, hook, ifindex, gen);

	bit = first_rule(&m);
	action = g->default_action;
	rule = NULL;
	if (bit >= 0) {
		idx = gen * TG_FW_MAX_RULES + bit;
		rule = bpf_map_lookup_elem(&tg_fw_rules, &idx);
	}
	if (rule) {
		action = rule->action;
		slot = rule->slot;
	} else {
		fw_stat(TG_FW_BY_DEFAULT);
	}
	hits = bpf_map_lookup_elem(&tg_fw_hits, &slot);
	if (hits) {
		hits->packets += 1;
		hits->bytes += p->l3_bytes;
	}
	if (action == TG_FW_LOG && sev_budget(slot, g->log_rate))
		sev_packet(p, TG_SEV_FW_LOG, slot, action, hook, ifindex, 0);
	if (action == TG_FW_DENY) {
		fw_stat(TG_FW_DROPPED);
		return VERDICT_DROP;
	}
	if (action == TG_FW_REDIRECT) {
		idx = gen * TG_HONEYPOT_MAX + ((rule ? rule->honeypot - 1 : 0) & (TG_HONEYPOT_MAX - 1));
		if (!rule || !rule->honeypot || !hp_pick(bpf_map_lookup_elem(&tg_honeypot, &idx)))
			goto redirect_failed;
		if (sev_budget(slot, g->log_rate))
			sev_packet(p, TG_SEV_REDIRECTED, slot, action, hook, ifindex, 0);
		goto honeypot;
	}
	if ((action == TG_FW_RATE_LIMIT && rule && rule->limit) || g->standing) {
		fw_tenants(p, hook, ifindex, &src, &dst);
		limited = tg_rl_check(p, RL_WHICH(gen, action == TG_FW_RATE_LIMIT && rule ? rule->limit : 0, g->standing), src, dst);
		if (limited) {
			rl_dropped(limited, p->l3_bytes);
			if (sev_budget(limited, g->log_rate))
				sev_packet(p, TG_SEV_RATE_LIMITED, limited, TG_FW_RATE_LIMIT, hook, ifindex, 0);
			why = TG_FW_RATE_LIMITED;
			goto drop;
		}
	}
	if (lv & TG_FW_LIVE_DDOS)
		tg_guard_count(p, TG_FW_LIVE_DDOS);
	if (kind == TG_CTX_SKB && (g->flags & TG_FW_L7) && p->l4_proto == TG_IPPROTO_TCP) {
		verdict = tg_l7_skb(ctx, p, gen, hook, g->log_rate);
		if (verdict != VERDICT_ALLOWED) {
			fw_stat(TG_FW_DROPPED);
			return verdict;
		}
	}
	fw_stat(TG_FW_PASSED);
	return VERDICT_ALLOWED;
honeypot:
	/* Only tc can send a packet elsewhere (bpf_redirect_neigh): in XDP a redirected packet is dropped. */
	if (kind != TG_CTX_SKB)
		goto redirect_failed;
	fw_stat(TG_FW_REDIRECTED);
	return VERDICT_HONEYPOT;
redirect_failed:
	fw_stat(TG_FW_DROPPED);
	return VERDICT_DROP;
drop:
	fw_stat(why);
	fw_stat(TG_FW_DROPPED);
	return VERDICT_DROP;
}

/* Global, so the verifier checks the firewall once per program rather than once per parser path. */
/* live: tg_fw_live as the hook read it (once per packet). */
__noinline int tg_fw_skb(struct __sk_buff *skb, struct pkt_meta *p, __u32 hook, __u32 live)
{
	if (!p)
		return VERDICT_PASS;
	return fw_filter(skb, TG_CTX_SKB, p, hook, skb->ifindex, live);
}

__noinline int tg_fw_xdp(struct xdp_md *ctx, struct pkt_meta *p, __u32 live)
{
	if (!p)
		return VERDICT_PASS;
	return fw_filter(ctx, TG_CTX_XDP, p, TG_HOOK_INGRESS, ctx->ingress_ifindex, live);
}

/* ---- SYN floods (abi.h, "SYN floods") ---- */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tg_syn_cfg);
} tg_syn_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, TG_SYN_MAX_DSTS);
	__type(key, struct tg_addr_key);
	__type(value, struct tg_syn_count);
} tg_syn_dst SEC(".maps");

/* Destinations under mitigation, written by the agent (value: when it engaged, CLOCK_REALTIME ms). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_SYN_MAX_GUARDED);
	__type(key, struct tg_addr_key);
	__type(value, __u64);
} tg_syn_guard SEC(".maps");

/* Sources that answered a cookie: bpf_ktime_get_ns() when they did. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TG_SYN_MAX_VERIFIED);
	__type(key, struct tg_addr_key);
	__type(value, __u64);
} tg_syn_verified SEC(".maps");

static __always_inline bool syn_on(void)
{
	__u32 zero = 0;
	struct tg_syn_cfg *c = bpf_map_lookup_elem(&tg_syn_cfg, &zero);

	return c && c->on;
}

#define SIP_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIP_ROUND(v0, v1, v2, v3)                                                       \
	do {                                                                           \
		v0 += v1; v1 = SIP_ROTL(v1, 13); v1 ^= v0; v0 = SIP_ROTL(v0, 32);     \
		v2 += v3; v3 = SIP_ROTL(v3, 16); v3 ^= v2;                            \
		v0 += v3; v3 = SIP_ROTL(v3, 21); v3 ^= v0;                            \
		v2 += v1; v1 = SIP_ROTL(v1, 17); v1 ^= v2; v2 = SIP_ROTL(v2, 32);     \
	} while (0)

/* SipHash-2-4 of five words: the kernel's own SYN cookies use SipHash for the same reason (a keyed PRF). */
static __always_inline __u64 siphash5(const __u64 *key, const __u64 *m)
{
	__u64 v0 = 0x736f6d6570736575ULL ^ key[0], v1 = 0x646f72616e646f6dULL ^ key[1];
	__u64 v2 = 0x6c7967656e657261ULL ^ key[0], v3 = 0x7465646279746573ULL ^ key[1];
	__u64 b = 40ULL << 56;
	int i;

#pragma unroll
	for (i = 0; i < 5; i++) {
		v3 ^= m[i];
		SIP_ROUND(v0, v1, v2, v3);
		SIP_ROUND(v0, v1, v2, v3);
		v0 ^= m[i];
	}
	v3 ^= b;
	SIP_ROUND(v0, v1, v2, v3);
	SIP_ROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
#pragma unroll
	for (i = 0; i < 4; i++)
		SIP_ROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* The cookie of a client -> server connection (p as the client sent it) in a 2^36 ns (~69 s) window. */
static __always_inline __u32 syn_cookie(const struct tg_syn_cfg *c, const struct pkt_meta *p, __u64 window)
{
	__u64 m[5];

	__builtin_memcpy(m, p->saddr, 16);
	__builtin_memcpy(&m[2], p->daddr, 16);
	m[4] = ((__u64)p->sport << 48) | ((__u64)p->dport << 32) | (window & 0xffffffffULL);
	return (__u32)siphash5(c->key, m);
}

static __always_inline struct tg_syn_count *syn_count(const __u8 *addr, __u8 ip_ver)
{
	struct tg_addr_key k = { .ip_ver = ip_ver };
	struct tg_syn_count zero = {};

	__builtin_memcpy(k.addr_be, addr, 16);
	return lookup_or_init(&tg_syn_dst, &k, &zero);
}

/* Kernel-private scratch for building a reply (tcp_reply): too big for the stack under the hooks' own. */
struct syn_scratch {
	__u32 hdr[15];          /* the TCP header, up to 60 bytes */
	__u8 mac[12];
	__u8 addrs[32];         /* source then destination: 4 + 4 or 16 + 16 bytes */
	__u8 tmp[16];
	struct {                /* the checksum's pseudo header: IPv4 uses the first 12 bytes' layout below */
		__u8 saddr[16];
		__u8 daddr[16];
		__be32 len;
		__u8 zero[3];
		__u8 proto;
	} ps6;
	struct {
		__be32 saddr, daddr;
		__u8 zero, proto;
		__be16 len;
	} ps4;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct syn_scratch);
} tg_syn_scratch SEC(".maps");

/*
 * Rewrites the TCP segment in skb into a reply to its sender, in place:
 * MACs, addresses and ports swapped, the given sequence and acknowledgment
 * numbers and flags, options blanked with NOPs, any payload cut off (the IP
 * length and checksum follow), and sends it back where the segment came
 * from: out of the interface it entered, or into the one it was leaving by.
 * Used for SYN-flood challenges and L7 resets. Returns VERDICT_REDIRECT, or
 * VERDICT_DROP when the packet could not be rewritten.
 */
/* tcp_reply's how: the TCP flags, and the hook the segment is at (five arguments at most). */
#define TCP_REPLY(flags, hook) ((flags) | ((hook) << 8))

static __noinline int tcp_reply(struct __sk_buff *skb, const struct pkt_meta *p, __u32 seq, __u32 ack, __u32 how)
{
	__u32 flags = how & 0xff, hook = how >> 8;
	__u32 l3 = p->l3_off, l4 = p->l4_off, tcp_len = (__u32)p->tcp_doff * 4, addr_at, addr_len, sum, zero = 0, payload;
	struct syn_scratch *x = bpf_map_lookup_elem(&tg_syn_scratch, &zero);
	__be16 old_len, new_len;
	__u8 *h;
	__u16 port;

	if (!x || tcp_len < 20 || tcp_len > 60 || l4 < l3 || p->l3_bytes < l4 - l3 + tcp_len)
		return VERDICT_DROP;
	payload = p->l3_bytes - (l4 - l3) - tcp_len;
	h = (__u8 *)x->hdr;
	addr_at = p->ip_ver == 4 ? l3 + 12 : l3 + 8;
	addr_len = p->ip_ver == 4 ? 8 : 32;
	if (bpf_skb_load_bytes(skb, 0, x->mac, 12) || bpf_skb_load_bytes(skb, addr_at, x->addrs, addr_len) ||
	    bpf_skb_load_bytes(skb, l4, x->hdr, tcp_len))
		return VERDICT_DROP;
	if (payload) {
		/* The IP length loses the payload: IPv4 total length (and its checksum), or IPv6 payload length. */
		if (bpf_skb_load_bytes(skb, p->ip_ver == 4 ? l3 + 2 : l3 + 4, &old_len, 2))
			return VERDICT_DROP;
		new_len = bpf_htons(bpf_ntohs(old_len) - payload);
		if (bpf_skb_change_tail(skb, l4 + tcp_len, 0))
			return VERDICT_DROP;
		if (p->ip_ver == 4) {
			if (bpf_l3_csum_replace(skb, l3 + 10, old_len, new_len, 2) || bpf_skb_store_bytes(skb, l3 + 2, &new_len, 2, 0))
				return VERDICT_DROP;
		} else if (bpf_skb_store_bytes(skb, l3 + 4, &new_len, 2, 0)) {
			return VERDICT_DROP;
		}
	}
	/* swap: MACs, addresses (the IPv4 header checksum is a sum of words: unchanged), ports */
	__builtin_memcpy(x->tmp, x->mac, 6);
	__builtin_memcpy(x->mac, x->mac + 6, 6);
	__builtin_memcpy(x->mac + 6, x->tmp, 6);
	if (p->ip_ver == 4) {
		__builtin_memcpy(x->tmp, x->addrs, 4);
		__builtin_memcpy(x->addrs, x->addrs + 4, 4);
		__builtin_memcpy(x->addrs + 4, x->tmp, 4);
	} else {
		__builtin_memcpy(x->tmp, x->addrs, 16);
		__builtin_memcpy(x->addrs, x->addrs + 16, 16);
		__builtin_memcpy(x->addrs + 16, x->tmp, 16);
	}
	port = x->hdr[0] & 0xffff;
	x->hdr[0] = (x->hdr[0] >> 16) | ((__u32)port << 16);
	x->hdr[1] = bpf_htonl(seq);
	x->hdr[2] = bpf_htonl(ack);
	h[12] = (__u8)((tcp_len / 4) << 4);
	h[13] = (__u8)flags;
	h[14] = h[15] = (flags & TG_TCP_RST) ? 0 : 0xff;
	h[16] = h[17] = h[18] = h[19] = 0;
	/* Options become NOPs (only tcp_len bytes are written back: the rest of the 60 do not matter). */
	x->hdr[5] = x->hdr[6] = x->hdr[7] = x->hdr[8] = x->hdr[9] = 0x01010101;
	x->hdr[10] = x->hdr[11] = x->hdr[12] = x->hdr[13] = x->hdr[14] = 0x01010101;
	if (p->ip_ver == 4) {
		__builtin_memcpy(&x->ps4.saddr, x->addrs, 4);
		__builtin_memcpy(&x->ps4.daddr, x->addrs + 4, 4);
		x->ps4.zero = 0;
		x->ps4.proto = TG_IPPROTO_TCP;
		x->ps4.len = bpf_htons(tcp_len);
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&x->ps4, sizeof(x->ps4), 0);
	} else {
		__builtin_memcpy(x->ps6.saddr, x->addrs, 32);
		x->ps6.len = bpf_htonl(tcp_len);
		x->ps6.zero[0] = x->ps6.zero[1] = x->ps6.zero[2] = 0;
		x->ps6.proto = TG_IPPROTO_TCP;
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&x->ps6, sizeof(x->ps6), 0);
	}
	sum = bpf_csum_diff(NULL, 0, (__be32 *)x->hdr, tcp_len, sum);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	h[16] = (__u8)(~sum & 0xff);
	h[17] = (__u8)((~sum >> 8) & 0xff);
	if (bpf_skb_store_bytes(skb, 0, x->mac, 12, 0) || bpf_skb_store_bytes(skb, addr_at, x->addrs, addr_len, 0) ||
	    bpf_skb_store_bytes(skb, l4, x->hdr, tcp_len, 0))
		return VERDICT_DROP;
	skb->mark = TG_SYN_CHALLENGE_MARK;
	bpf_redirect(skb->ifindex, hook == TG_HOOK_EGRESS ? BPF_F_INGRESS : 0);
	return VERDICT_REDIRECT;
}

/* ---- L7 signatures (abi.h) ---- */

/* By generation * TG_PORTS + destination port: 1 where some signature looks. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * TG_PORTS);
	__type(key, __u32);
	__type(value, __u8);
} tg_l7_port SEC(".maps");

/* By (generation * TG_L7_MAX_STATES + state) * 256 + byte: the next state | (1 + signature) << TG_L7_SIG_SHIFT. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * TG_L7_MAX_STATES * 256);
	__type(key, __u32);
	__type(value, __u32);
} tg_l7_dfa SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * TG_L7_MAX_SIGS);
	__type(key, __u32);
	__type(value, struct tg_l7_sig);
} tg_l7_sig SEC(".maps");

struct l7_scratch {
	__u8 buf[TG_L7_SCAN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct l7_scratch);
} tg_l7_scratch SEC(".maps");

struct l7_walk {
	__u32 base;   /* (generation * TG_L7_MAX_STATES) * 256 */
	__u32 state;
	__u32 n;      /* bytes to walk */
	__u32 sig;    /* 1 + the signature matched, 0 while none */
};

/* One byte of the automaton (a bpf_loop step): 1 stops the walk. */
static long l7_step(__u64 i, void *ctx)
{
	struct l7_walk *w = ctx;
	struct l7_scratch *x;
	__u32 zero = 0, key, *next;

	if (i >= w->n)
		return 1;
	x = bpf_map_lookup_elem(&tg_l7_scratch, &zero);
	if (!x)
		return 1;
	key = w->base + (w->state & (TG_L7_MAX_STATES - 1)) * 256 + x->buf[i & (TG_L7_SCAN - 1)];
	next = bpf_map_lookup_elem(&tg_l7_dfa, &key);
	if (!next)
		return 1;
	w->state = *next & ((1 << TG_L7_SIG_SHIFT) - 1);
	w->sig = *next >> TG_L7_SIG_SHIFT;
	return w->sig ? 1 : 0;
}

/*
 * The signatures' say on a TCP segment the rules let through: VERDICT_ALLOWED,
 * or VERDICT_RESET for a deny signature (the hook drops the segment and
 * resets the client with tg_tcp_reset). Global: verified once.
 */
__noinline int tg_l7_skb(struct __sk_buff *skb, struct pkt_meta *p, __u32 gen, __u32 hook, __u32 log_rate)
{
	struct l7_walk w = {};
	struct l7_scratch *x;
	struct tg_l7_sig *sig;
	__u32 zero = 0, idx, hdr, len, n;
	__u8 *on;

	if (!skb || !p || !(p->flags & TG_PKT_HAS_L4) || p->frag_off)
		return VERDICT_ALLOWED;
	gen &= 1;
	idx = gen * TG_PORTS + bpf_ntohs(p->dport);
	on = bpf_map_lookup_elem(&tg_l7_port, &idx);
	if (!on || !*on)
		return VERDICT_ALLOWED;
	hdr = (p->l4_off - p->l3_off) + (__u32)p->tcp_doff * 4;
	if (p->l3_bytes <= hdr)
		return VERDICT_ALLOWED; /* no payload */
	len = p->l3_bytes - hdr;
	n = len > TG_L7_SCAN ? TG_L7_SCAN : len;
	x = bpf_map_lookup_elem(&tg_l7_scratch, &zero);
	if (!x || n < 1 || n > TG_L7_SCAN)
		return VERDICT_ALLOWED;
	if (bpf_skb_load_bytes(skb, p->l4_off + (__u32)p->tcp_doff * 4, x->buf, n))
		return VERDICT_ALLOWED;
	w.base = gen * TG_L7_MAX_STATES * 256;
	w.n = n;
	bpf_loop(n, l7_step, &w, 0);
	if (!w.sig)
		return VERDICT_ALLOWED;
	idx = gen * TG_L7_MAX_SIGS + ((w.sig - 1) & (TG_L7_MAX_SIGS - 1));
	sig = bpf_map_lookup_elem(&tg_l7_sig, &idx);
	if (!sig)
		return VERDICT_ALLOWED;
	if (sev_budget(sig->slot, log_rate))
		sev_packet(p, TG_SEV_L7_MATCH, 0, sig->action, hook, skb->ifindex, w.sig - 1);
	if (sig->action != TG_FW_DENY)
		return VERDICT_ALLOWED;
	fw_stat(TG_FW_L7_DENIED);
	return VERDICT_RESET;
}

/*
 * Resets the sender of the TCP segment in skb in place of the segment (a
 * deny signature's reset): seq is what it expects from its peer next, ack
 * is past this segment. Global, and called from the hook itself, which keeps
 * the call chain (and its stack) short.
 */
__noinline int tg_tcp_reset(struct __sk_buff *skb, struct pkt_meta *p, __u32 hook)
{
	__u32 hdr;
	__be32 sa[2];

	if (!skb || !p || !(p->flags & TG_PKT_HAS_L4))
		return VERDICT_DROP;
	hdr = (p->l4_off - p->l3_off) + (__u32)p->tcp_doff * 4;
	if (p->l3_bytes < hdr || bpf_skb_load_bytes(skb, p->l4_off + 4, sa, 8))
		return VERDICT_DROP;
	return tcp_reply(skb, p, bpf_ntohl(sa[1]), bpf_ntohl(sa[0]) + (p->l3_bytes - hdr), TCP_REPLY(TG_TCP_RST | TG_TCP_ACK, hook));
}

/* What SYN-flood mitigation does with a TCP packet the firewall let through (tc only). */
__noinline int tg_syn_skb(struct __sk_buff *skb, struct pkt_meta *p, __u32 hook)
{
	struct tg_addr_key src = {}, dst = {};
	struct tg_syn_count *n;
	struct tg_syn_cfg *c;
	__u64 now, window, *at;
	__u32 zero = 0, seq, cookie;
	__u8 flags;

	if (!p || p->l4_proto != TG_IPPROTO_TCP || !(p->flags & TG_PKT_HAS_L4) || p->frag_off)
		return VERDICT_PASS;
	c = bpf_map_lookup_elem(&tg_syn_cfg, &zero);
	if (!c)
		return VERDICT_PASS;
	flags = p->tcp_flags;
	if ((flags & (TG_TCP_SYN | TG_TCP_ACK)) == (TG_TCP_SYN | TG_TCP_ACK)) {
		n = syn_count(p->saddr, p->ip_ver);
		if (n)
			n->synacks += 1;
		return VERDICT_PASS;
	}
	dst.ip_ver = src.ip_ver = p->ip_ver;
	__builtin_memcpy(dst.addr_be, p->daddr, 16);
	__builtin_memcpy(src.addr_be, p->saddr, 16);
	now = bpf_ktime_get_ns();
	window = now >> 36;
	if (flags & TG_TCP_SYN) {
		n = syn_count(p->daddr, p->ip_ver);
		if (n)
			n->syns += 1;
		if (!bpf_map_lookup_elem(&tg_syn_guard, &dst))
			return VERDICT_PASS;
		at = bpf_map_lookup_elem(&tg_syn_verified, &src);
		if (at && now - *at < c->verified_ns) {
			if (n)
				n->passed += 1;
			return VERDICT_PASS;
		}
		if (c->action == TG_SYN_LOG)
			return VERDICT_PASS;
		/* The challenge: a SYN-ACK whose ack is the cookie, which the client must refuse.
		 * A SYN with data (TCP Fast Open) is dropped instead: the client sends it again without. */
		cookie = syn_cookie(c, p, window);
		if (c->action == TG_SYN_CHALLENGE && p->l3_bytes == p->l4_off - p->l3_off + (__u32)p->tcp_doff * 4 &&
		    tcp_reply(skb, p, cookie ^ 0x9e3779b9, cookie, TCP_REPLY(TG_TCP_SYN | TG_TCP_ACK, hook)) == VERDICT_REDIRECT) {
			if (n)
				n->challenged += 1;
			return VERDICT_REDIRECT;
		}
		if (n)
			n->dropped += 1;
		return VERDICT_DROP;
	}
	if ((flags & TG_TCP_RST) && bpf_map_lookup_elem(&tg_syn_guard, &dst)) {
		/* The answer to a challenge: seq is the cookie, of this window or the one before. */
		if (bpf_skb_load_bytes(skb, p->l4_off + 4, &seq, 4))
			return VERDICT_PASS;
		seq = bpf_ntohl(seq);
		cookie = syn_cookie(c, p, window);
		if (seq != cookie && seq != syn_cookie(c, p, window - 1))
			return VERDICT_PASS;
		bpf_map_update_elem(&tg_syn_verified, &src, &now, BPF_ANY);
		n = syn_count(p->daddr, p->ip_ver);
		if (n)
			n->verified += 1;
		return VERDICT_DROP; /* the server never saw this connection */
	}
	return VERDICT_PASS;
}

/* Returns enum verdict: the only verdict metering makes. */
static __always_inline int meter(void *ctx, enum pkt_ctx_kind kind, struct pkt_meta *p, enum tg_hook hook,
				 __u32 ifindex)
{
	/* Direction of traffic at this hook when it is the owning tenant's. */
	const __u32 from_tenant = hook == TG_HOOK_INGRESS ? TG_DIR_EGRESS : TG_DIR_INGRESS;
	const __u32 to_tenant = hook == TG_HOOK_INGRESS ? TG_DIR_INGRESS : TG_DIR_EGRESS;
	struct tg_meter_config *cfg;
	__u32 zero = 0, tenant = TG_TENANT_UNATTRIBUTED, dir = from_tenant;
	enum tg_meter_reason why = TG_REASON_UNATTRIBUTED;
	__u32 gen, owner;

	cfg = bpf_map_lookup_elem(&tg_meter_config, &zero);
	gen = cfg ? cfg->generation : 0;

	owner = iface_owner(ifindex, gen);
	if (owner != TG_TENANT_UNATTRIBUTED) {
		tenant = owner;
		dir = from_tenant;
		why = TG_REASON_BY_IFACE;
	} else if (p->flags & TG_PKT_HAS_ADDR) {
		/* At host-ingress the source is the likelier tenant, at host-egress the destination. */
		const __u8 *first = hook == TG_HOOK_INGRESS ? p->saddr : p->daddr;
		const __u8 *second = hook == TG_HOOK_INGRESS ? p->daddr : p->saddr;

		tenant = tenant_by_addr(p, first, gen);
		dir = from_tenant;
		if (tenant == TG_TENANT_UNATTRIBUTED) {
			tenant = tenant_by_addr(p, second, gen);
			dir = to_tenant;
		}
		if (tenant != TG_TENANT_UNATTRIBUTED)
			why = TG_REASON_BY_ADDR;
		else
			dir = from_tenant;
	}
	struct attribution a = {
		.tenant = tenant, .dir = dir, .why = why, .unattributed_dir = from_tenant, .gen = gen, .flags = cfg ? cfg->flags : 0,
	};

	if (kind == TG_CTX_XDP)
		return tg_account_xdp(ctx, p, &a);
	return tg_account_skb(ctx, p, &a);
}

/* Whether the firewall filters at all: checked inline, so a datapath without rules makes no call. */
/* tg_fw_live: whether the firewall filters (TG_FW_LIVE_ON) and with which generation; one lookup per packet. */
static __always_inline __u32 fw_live(void)
{
	__u32 zero = 0, *live = bpf_map_lookup_elem(&tg_fw_live, &zero);

	return live ? READ_ONCE(*live) : 0;
}

/*
 * Entry points. The parser reads L4 only when the fast path has it for
 * free; the firewall, a class or a flow that needs the ports reads them
 * later (read_ports). tg_meter_*: interfaces metered (and filtered);
 * tg_filter_*: interfaces only filtered (security.interfaces).
 */
/* Sends the packet to the honeypot in tg_hp_pick: TC_ACT_REDIRECT, or TC_ACT_SHOT when it cannot (never to its destination). */
__noinline int tg_honeypot_skb(struct __sk_buff *skb, struct pkt_meta *p)
{
	struct bpf_redir_neigh nh = {};
	struct tg_honeypot *hp;
	__u32 zero = 0;
	long r;

	hp = bpf_map_lookup_elem(&tg_hp_pick, &zero);
	if (!skb || !p || !hp || !hp->ifindex)
		return TC_ACT_SHOT;
	if ((hp->family == 2 && p->ip_ver == 4) || (hp->family == 10 && p->ip_ver == 6)) {
		nh.nh_family = hp->family;
		__builtin_memcpy(nh.ipv6_nh, hp->via_be, 16); /* the union: IPv4 in the first 4 bytes */
		r = bpf_redirect_neigh(hp->ifindex, &nh, sizeof(nh), 0);
	} else {
		r = bpf_redirect_neigh(hp->ifindex, NULL, 0, 0);
	}
	return r == TC_ACT_REDIRECT ? TC_ACT_REDIRECT : TC_ACT_SHOT;
}

static __always_inline int tc_hook(struct __sk_buff *skb, enum tg_hook hook, bool metered)
{
	struct pkt_meta p;
	__u32 live;
	int v;

	/* Our own SYN-flood challenge on its way out: neither filtered nor metered. */
	if (skb->mark == TG_SYN_CHALLENGE_MARK)
		return TC_ACT_UNSPEC;
	tg_parse_ex(skb, TG_CTX_SKB, &p, false);
	live = fw_live();
	if (live & TG_FW_LIVE_ON) {
		v = tg_fw_skb(skb, &p, hook, live);
		if (v == VERDICT_ALLOWED && p.l4_proto == TG_IPPROTO_TCP && syn_on())
			v = tg_syn_skb(skb, &p, hook);
		if (v == VERDICT_DROP)
			return TC_ACT_SHOT;
		if (v == VERDICT_REDIRECT)
			return TC_ACT_REDIRECT;
		if (v == VERDICT_RESET)
			return tg_tcp_reset(skb, &p, hook) == VERDICT_REDIRECT ? TC_ACT_REDIRECT : TC_ACT_SHOT;
		if (v == VERDICT_HONEYPOT)
			return tg_honeypot_skb(skb, &p);
	}
	if (metered && meter(skb, TG_CTX_SKB, &p, hook, skb->ifindex) == VERDICT_DROP)
		return TC_ACT_SHOT;
	return TC_ACT_UNSPEC;
}

static __always_inline int xdp_hook(struct xdp_md *ctx, bool metered)
{
	struct pkt_meta p;
	__u32 live;

	tg_parse_ex(ctx, TG_CTX_XDP, &p, false);
	live = fw_live();
	if ((live & TG_FW_LIVE_ON) && tg_fw_xdp(ctx, &p, live) == VERDICT_DROP)
		return XDP_DROP;
	if (metered && meter(ctx, TG_CTX_XDP, &p, TG_HOOK_INGRESS, ctx->ingress_ifindex) == VERDICT_DROP)
		return XDP_DROP;
	return XDP_PASS;
}

SEC("tc")
int tg_meter_ingress(struct __sk_buff *skb)
{
	return tc_hook(skb, TG_HOOK_INGRESS, true);
}

SEC("tc")
int tg_meter_egress(struct __sk_buff *skb)
{
	return tc_hook(skb, TG_HOOK_EGRESS, true);
}

SEC("xdp")
int tg_meter_xdp(struct xdp_md *ctx)
{
	return xdp_hook(ctx, true);
}

SEC("tc")
int tg_filter_ingress(struct __sk_buff *skb)
{
	return tc_hook(skb, TG_HOOK_INGRESS, false);
}

SEC("tc")
int tg_filter_egress(struct __sk_buff *skb)
{
	return tc_hook(skb, TG_HOOK_EGRESS, false);
}

SEC("xdp")
int tg_filter_xdp(struct xdp_md *ctx)
{
	return xdp_hook(ctx, false);
}

/* ---- containers: cgroup_skb hooks (docs/metering.md, "Containers") ---- */

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;


/* Cgroup -> tenant, per generation; filled by the agent, only read here. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_MAX_CGROUPS);
	__type(key, struct tg_cgroup_key);
	__type(value, struct tg_cgroup_ref);
} tg_tenant_cgroup SEC(".maps");

/*
 * Per-container breakdown of cgroup-attributed traffic, indexed
 * container_slot * TG_DIR_MAX + direction; like tg_meter_counters,
 * preallocated, per-CPU and monotonic. Not billing truth: the billing
 * counters above count the same packets per tenant and class.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_MAX_CONTAINERS * TG_DIR_MAX);
	__type(key, __u32);
	__type(value, struct tg_counter);
} tg_container_counters SEC(".maps");

#define TG_IFF_LOOPBACK 0x8

static __always_inline struct net_device *veth_peer(struct net_device *dev)
{
	struct net_device *peer = NULL;

	/* struct veth_priv starts with the peer pointer; netdev_priv() is dev->priv. */
	bpf_probe_read_kernel(&peer, sizeof(peer), (void *)dev + bpf_core_field_offset(struct net_device, priv));
	return peer;
}

/*
 * Whether a packet on this device is (or was) metered by an interface hook,
 * which takes precedence: the device is loopback (never billed), or it is
 * one end of a veth pair whose other end is a metered interface in the
 * datapath's namespace. For any other device the peer pointer read from its
 * private area is meaningless, and the check that the peer points back at
 * this device rejects it.
 */
static __always_inline bool seen_by_interface_hook(struct __sk_buff *skb, const struct tg_meter_config *cfg)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);
	struct net_device *dev = BPF_CORE_READ(kskb, dev), *peer;
	__u32 ifindex, *metered;

	if (!dev)
		return false;
	if (BPF_CORE_READ(dev, flags) & TG_IFF_LOOPBACK)
		return true;
	peer = veth_peer(dev);
	if (!peer || veth_peer(peer) != dev || BPF_CORE_READ(peer, nd_net.net, ns.inum) != cfg->metered_netns)
		return false;
	ifindex = BPF_CORE_READ(peer, ifindex);
	metered = bpf_map_lookup_elem(&tg_metered_iface, &ifindex);
	return metered && (*metered & TG_IFACE_METERED);
}

/* The entry of the socket's cgroup, or of its deepest mapped ancestor; NULL when none. */
static __always_inline struct tg_cgroup_ref *cgroup_ref(struct __sk_buff *skb, __u32 gen)
{
	struct tg_cgroup_key k = { .cgroup_id = bpf_skb_cgroup_id(skb), .generation = gen };
	struct tg_cgroup_ref *ref;
	int level;

	ref = bpf_map_lookup_elem(&tg_tenant_cgroup, &k);
	if (ref)
		return ref;
	for (level = TG_MAX_CGROUP_DEPTH - 1; level > 0; level--) {
		k.cgroup_id = bpf_skb_ancestor_cgroup_id(skb, level);
		if (!k.cgroup_id)
			continue; /* the socket's cgroup is not that deep */
		ref = bpf_map_lookup_elem(&tg_tenant_cgroup, &k);
		if (ref)
			return ref;
	}
	return NULL;
}

/* Attached at a parent cgroup: sees the traffic of every socket below it. Returns enum verdict. */
static __always_inline int meter_cgroup(struct __sk_buff *skb, __u32 dir)
{
	struct tg_meter_config *cfg;
	struct tg_cgroup_ref *ref;
	struct tg_counter *c;
	struct pkt_meta p;
	__u32 zero = 0, tenant, idx;

	cfg = bpf_map_lookup_elem(&tg_meter_config, &zero);
	if (!cfg || seen_by_interface_hook(skb, cfg))
		return VERDICT_PASS;
	tg_parse_l3(skb, &p, false);
	ref = cgroup_ref(skb, cfg->generation);
	tenant = ref ? ref->tenant_id : TG_TENANT_UNATTRIBUTED;
	struct attribution a = {
		.tenant = tenant, .dir = dir, .why = tenant ? TG_REASON_BY_CGROUP : TG_REASON_UNATTRIBUTED,
		.unattributed_dir = dir, .gen = cfg->generation, .flags = cfg->flags,
	};

	if (tg_account_skb(skb, &p, &a) == VERDICT_DROP)
		return VERDICT_DROP;
	if (!ref || !ref->container_slot)
		return VERDICT_PASS;
	/* The same packet again, in its container's row of the breakdown. */
	idx = ref->container_slot * TG_DIR_MAX + dir;
	c = bpf_map_lookup_elem(&tg_container_counters, &idx);
	if (!c) {
		bump(reasons(), TG_REASON_BAD_INDEX);
		return VERDICT_PASS;
	}
	c->packets += 1;
	c->bytes += p.l3_bytes;
	return VERDICT_PASS;
}

SEC("cgroup_skb/ingress")
int tg_meter_cg_ingress(struct __sk_buff *skb)
{
	return meter_cgroup(skb, TG_DIR_INGRESS) == VERDICT_DROP ? 0 : 1;
}

SEC("cgroup_skb/egress")
int tg_meter_cg_egress(struct __sk_buff *skb)
{
	return meter_cgroup(skb, TG_DIR_EGRESS) == VERDICT_DROP ? 0 : 1;
}
