// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Benchmarks' floor: a tc program that does nothing, so bpf_stats of the
 * meter can be read against the cost of merely running a program. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int tg_noop(struct __sk_buff *skb)
{
	return -1; /* TC_ACT_UNSPEC */
}
