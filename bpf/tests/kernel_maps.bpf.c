// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Fixture for test/kernel: one map of every kind src/kernel handles, plus
 * small programs for each attach path. Counters live in kt_counts (per-CPU)
 * at a fixed slot per program, so a test can tell which program ran.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

enum kt_slot {
	KT_SLOT_XDP = 0,
	KT_SLOT_TC_INGRESS = 1,
	KT_SLOT_TC_EGRESS = 2,
	KT_SLOT_CGROUP_EGRESS = 3,
	KT_SLOT_TP = 4,
	KT_SLOT_XDP_A = 5,
	KT_SLOT_XDP_B = 6,
	KT_SLOT_RAW_TP = 7,
	KT_SLOT_MAX = 8,
};

struct kt_counter {
	__u64 packets;
	__u64 bytes;
};

struct kt_lpm4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct kt_lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Returned by kt_const; tests flip it with setConst before load. */
const volatile __u32 kt_retval = XDP_DROP;
/* Only this tgid is counted by the tracepoint programs (0: nobody). */
const volatile __u32 kt_pid = 0;
const volatile __u64 kt_wide = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KT_SLOT_MAX);
	__type(key, __u32);
	__type(value, struct kt_counter);
} kt_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} kt_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} kt_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct kt_lpm4_key);
	__type(value, __u32);
} kt_lpm4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct kt_lpm6_key);
	__type(value, __u32);
} kt_lpm6 SEC(".maps");

static __always_inline void count(__u32 slot, __u64 bytes)
{
	struct kt_counter *c = bpf_map_lookup_elem(&kt_counts, &slot);

	/* per-CPU slot: no other writer, plain adds are exact */
	if (c) {
		c->packets += 1;
		c->bytes += bytes;
	}
}

SEC("xdp")
int kt_const(struct xdp_md *ctx)
{
	return kt_retval;
}

SEC("xdp")
int kt_xdp_count(struct xdp_md *ctx)
{
	count(KT_SLOT_XDP, ctx->data_end - ctx->data);
	return XDP_PASS;
}

SEC("xdp")
int kt_xdp_a(struct xdp_md *ctx)
{
	count(KT_SLOT_XDP_A, ctx->data_end - ctx->data);
	return XDP_PASS;
}

SEC("xdp")
int kt_xdp_b(struct xdp_md *ctx)
{
	count(KT_SLOT_XDP_B, ctx->data_end - ctx->data);
	return XDP_PASS;
}

/*
 * Test input after a 14-byte dummy Ethernet header: one version byte (4 or 6)
 * then the address. Returns the longest-prefix match's value, 0 on a miss and
 * 255 on malformed input.
 */
SEC("xdp")
int kt_lpm_lookup(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *ver = data + 14;
	__u32 *v;

	if ((void *)(ver + 1) > data_end)
		return 255;
	if (*ver == 4) {
		struct kt_lpm4_key k = { .prefixlen = 32 };

		if ((void *)(ver + 1 + 4) > data_end)
			return 255;
		__builtin_memcpy(k.addr, ver + 1, 4);
		v = bpf_map_lookup_elem(&kt_lpm4, &k);
		return v ? *v : 0;
	}
	if (*ver == 6) {
		struct kt_lpm6_key k = { .prefixlen = 128 };

		if ((void *)(ver + 1 + 16) > data_end)
			return 255;
		__builtin_memcpy(k.addr, ver + 1, 16);
		v = bpf_map_lookup_elem(&kt_lpm6, &k);
		return v ? *v : 0;
	}
	return 255;
}

SEC("tc")
int kt_tc_ingress(struct __sk_buff *skb)
{
	count(KT_SLOT_TC_INGRESS, skb->len);
	return TCX_PASS;
}

SEC("tc")
int kt_tc_egress(struct __sk_buff *skb)
{
	count(KT_SLOT_TC_EGRESS, skb->len);
	return TCX_PASS;
}

SEC("cgroup_skb/egress")
int kt_cgroup_egress(struct __sk_buff *skb)
{
	count(KT_SLOT_CGROUP_EGRESS, skb->len);
	return 1; /* allow */
}

SEC("tp/syscalls/sys_enter_getppid")
int kt_tp_getppid(void *ctx)
{
	if (kt_pid && (bpf_get_current_pid_tgid() >> 32) == kt_pid)
		count(KT_SLOT_TP, 0);
	return 0;
}

SEC("raw_tp/sys_enter")
int kt_raw_sys_enter(void *ctx)
{
	if (kt_pid && (bpf_get_current_pid_tgid() >> 32) == kt_pid)
		count(KT_SLOT_RAW_TP, kt_wide);
	return 0;
}
