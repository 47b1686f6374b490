// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Benchmarks' floors, measured on the same hook and flood as the meter:
 * tg_noop is what merely running a tcx program costs (bpf_stats included);
 * tg_copy_headers adds only the one read the meter's fast path makes, the
 * first 54 bytes (Ethernet + an IPv6-sized header), which for a non-linear
 * skb is a copy out of paged data.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define TC_ACT_UNSPEC (-1)

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Written so the compiler cannot drop the read. */
__u64 tg_sink;

SEC("tc")
int tg_noop(struct __sk_buff *skb)
{
	return TC_ACT_UNSPEC;
}

SEC("tc")
int tg_copy_headers(struct __sk_buff *skb)
{
	__u8 buf[56] __attribute__((aligned(8)));

	if (skb->len >= 54 && bpf_skb_load_bytes(skb, 0, buf + 2, 54) == 0)
		tg_sink += buf[2 + 14];
	return TC_ACT_UNSPEC;
}
