// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Fixture for test/kernel: a program the verifier must reject, reading the
 * packet without checking data_end, so VerifierError and its log are tested
 * against the real verifier.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int kt_reject(struct xdp_md *ctx)
{
	__u8 *p = (void *)(long)ctx->data;

	return p[20]; /* no bounds check: "invalid access to packet" */
}
