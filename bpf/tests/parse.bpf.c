// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Test wrapper for bpf/lib/parse.h: runs tg_parse on the test-run packet and
 * leaves the whole struct pkt_meta in parse_out[0], so test/parse.testrun.test.ts
 * can check what the meter does not expose (ports, ICMP type, offsets, tags).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "btf_anchor.h"
#include "parse.h"

/* Carries enum pkt_flag into BTF for the test. */
TG_BTF_ANCHOR(enum pkt_flag, pkt_flag);

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pkt_meta);
} parse_out SEC(".maps");

static __always_inline void publish(struct pkt_meta *p)
{
	__u32 zero = 0;

	bpf_map_update_elem(&parse_out, &zero, p, BPF_ANY);
}

SEC("tc")
int parse_tc(struct __sk_buff *skb)
{
	struct pkt_meta p;

	tg_parse(skb, TG_CTX_SKB, &p);
	publish(&p);
	return -1; /* TC_ACT_UNSPEC */
}

SEC("xdp")
int parse_xdp(struct xdp_md *ctx)
{
	struct pkt_meta p;

	tg_parse(ctx, TG_CTX_XDP, &p);
	publish(&p);
	return XDP_PASS;
}

SEC("cgroup_skb/egress")
int parse_cg(struct __sk_buff *skb)
{
	struct pkt_meta p;

	tg_parse(skb, TG_CTX_L3, &p);
	publish(&p);
	return 1; /* allow */
}
