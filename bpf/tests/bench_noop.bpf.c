// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Benchmarks' floors, measured on the same hook and flood as the meter:
 * tg_noop is what merely running a tcx program costs (bpf_stats included);
 * tg_copy_headers adds only the one read the meter's fast path makes, the
 * first 54 bytes (Ethernet + an IPv6-sized header), which for a non-linear
 * skb is a copy out of paged data; tg_skeleton is the least any meter can
 * do on top of that: one owner lookup by ifindex and one per-CPU counter
 * add, with no parse checks, reasons, generations or address attribution.
 * tg_drop_all is a firewall's floor: it drops every packet unread, the most
 * packets a tc program can drop on that hook.
 * tg_clock is not a floor but the security bench's clock: attached ahead of
 * the firewall, it keeps the time each IPv4 packet reached the hook, so the
 * first packet a rule update drops is dated by the kernel rather than by
 * when the bench gets round to noticing it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define TC_ACT_UNSPEC (-1) /* under tcx: go on to the next program */
#define TC_ACT_SHOT 2

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Written so the compiler cannot drop the read. */
__u64 tg_sink;

struct skeleton_counter {
	__u64 packets;
	__u64 bytes;
};

/* Shaped like the meter's maps: owner by ifindex, counters by owner. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} tg_skeleton_owner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct skeleton_counter);
} tg_skeleton_counters SEC(".maps");

/* Entry 0: IPv4 packets seen; entry 1 + n % TG_CLOCK_RING: bpf_ktime_get_ns() when packet n was. */
#define TG_CLOCK_RING 4096
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 + TG_CLOCK_RING);
	__type(key, __u32);
	__type(value, __u64);
} tg_clock_ring SEC(".maps");

SEC("tc")
int tg_clock(struct __sk_buff *skb)
{
	__u64 now = bpf_ktime_get_ns(), *n, *at;
	__u32 zero = 0, slot;

	if (skb->protocol != bpf_htons(0x0800)) /* ETH_P_IP */
		return TC_ACT_UNSPEC;
	n = bpf_map_lookup_elem(&tg_clock_ring, &zero);
	if (!n)
		return TC_ACT_UNSPEC;
	slot = 1 + __sync_fetch_and_add(n, 1) % TG_CLOCK_RING;
	at = bpf_map_lookup_elem(&tg_clock_ring, &slot);
	if (at)
		*at = now;
	return TC_ACT_UNSPEC;
}

SEC("tc")
int tg_noop(struct __sk_buff *skb)
{
	return TC_ACT_UNSPEC;
}

SEC("tc")
int tg_drop_all(struct __sk_buff *skb)
{
	return TC_ACT_SHOT;
}

SEC("tc")
int tg_copy_headers(struct __sk_buff *skb)
{
	__u8 buf[56] __attribute__((aligned(8)));

	if (skb->len >= 54 && bpf_skb_load_bytes(skb, 0, buf + 2, 54) == 0)
		tg_sink += buf[2 + 14];
	return TC_ACT_UNSPEC;
}

SEC("tc")
int tg_skeleton(struct __sk_buff *skb)
{
	__u8 buf[56] __attribute__((aligned(8)));
	struct skeleton_counter *c;
	__u32 ifindex = skb->ifindex, owner = 0, *o;

	if (skb->len < 54 || bpf_skb_load_bytes(skb, 0, buf + 2, 54))
		return TC_ACT_UNSPEC;
	o = bpf_map_lookup_elem(&tg_skeleton_owner, &ifindex);
	if (o)
		owner = *o;
	c = bpf_map_lookup_elem(&tg_skeleton_counters, &owner);
	if (c) {
		c->packets += 1;
		c->bytes += (__u32)buf[2 + 16] << 8 | buf[2 + 17]; /* IPv4 tot_len */
	}
	return TC_ACT_UNSPEC;
}
