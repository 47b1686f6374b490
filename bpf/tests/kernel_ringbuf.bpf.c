// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Fixture for test/kernel: emits one ring buffer record per run (driven by
 * BPF_PROG_TEST_RUN with repeat = N) and counts failed reservations in a
 * per-CPU counter, the pattern every tollgate event stream follows.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct kt_event {
	__u64 seq;
	__u32 cpu;
	__u32 len;
	__u8 payload[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} kt_events SEC(".maps");

/* slot 0: records dropped because the ring was full */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} kt_lost SEC(".maps");

/* slot 0: next sequence number */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} kt_seq SEC(".maps");

SEC("xdp")
int kt_emit(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *seq = bpf_map_lookup_elem(&kt_seq, &zero);
	struct kt_event *e;

	if (!seq)
		return XDP_ABORTED;
	e = bpf_ringbuf_reserve(&kt_events, sizeof(*e), 0);
	if (!e) {
		__u64 *lost = bpf_map_lookup_elem(&kt_lost, &zero);

		if (lost)
			*lost += 1;
		return XDP_DROP;
	}
	e->seq = __sync_fetch_and_add(seq, 1);
	e->cpu = bpf_get_smp_processor_id();
	e->len = ctx->data_end - ctx->data;
	__builtin_memset(e->payload, 0xab, sizeof(e->payload));
	bpf_ringbuf_submit(e, 0);
	return XDP_PASS;
}
