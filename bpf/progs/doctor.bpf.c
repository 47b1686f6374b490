// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Feature probes for `tollgate doctor`: one tiny program per program type or
 * attach mode the project relies on. The doctor loads each program in its own
 * object instance (autoload off for every other program, and autocreate off
 * for the maps it does not use once src/kernel offers that), because libbpf
 * fails a whole object when one program in it is rejected and the doctor must
 * report every probe on its own.
 *
 * Nothing here changes traffic or processes: every program passes what it
 * sees. Probes that only prove a helper or kfunc passes the verifier are never
 * attached, and the one that could act (bpf_send_signal) is guarded by a
 * runtime value the doctor never sets.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

/* uapi #defines never reach vmlinux.h. */
enum {
	DOCTOR_ETH_P_IP = 0x0800,
	DOCTOR_TC_ACT_OK = 0,
	DOCTOR_TC_ACT_SHOT = 2,
};

/* Map-type probes. Sizes are minimal: the point is that the kernel creates
 * them and a program can use them, not capacity. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} doctor_ringbuf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} doctor_percpu SEC(".maps");

struct doctor_lpm_key {
	__u32 prefixlen;
	__u32 addr_be;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16);
	__type(key, struct doctor_lpm_key);
	__type(value, __u32);
	/* The kernel refuses an LPM trie without BPF_F_NO_PREALLOC. */
	__uint(map_flags, BPF_F_NO_PREALLOC);
} doctor_lpm SEC(".maps");

/*
 * How many times each attached probe ran, so the doctor can tell "attached"
 * from "attached and actually called". Lives in .bss, which the doctor reads
 * back through the object's internal map.
 */
enum doctor_hit {
	DOCTOR_HIT_TP = 0,
	DOCTOR_HIT_TP_BTF = 1,
	DOCTOR_HIT_RAW_TP = 2,
	DOCTOR_HIT_MAX = 3,
};
__u64 doctor_hits[DOCTOR_HIT_MAX];

/*
 * Target of the bpf_send_signal probe. A .bss value is unknown to the
 * verifier (unlike const volatile .rodata, which it folds), so the helper
 * call stays reachable and is really checked; the doctor never sets it, and
 * no task has tgid 0 in a syscall, so nothing is ever signalled.
 */
__u32 doctor_signal_tgid;

/* ---- XDP / tc ------------------------------------------------------------ */

SEC("xdp")
int doctor_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("tc")
int doctor_tc(struct __sk_buff *skb)
{
	/* TCX_NEXT: let the next program (or the stack) decide, as a neutral
	 * tcx citizen does. */
	return TCX_NEXT;
}

/*
 * BPF_PROG_TEST_RUN probes: the verdict depends on the packet, so a test run
 * that returns the expected verdict proves the program really saw the data.
 * IPv4 frames are dropped, everything else passes.
 */
SEC("xdp")
int doctor_xdp_testrun(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	return eth->h_proto == bpf_htons(DOCTOR_ETH_P_IP) ? XDP_DROP : XDP_PASS;
}

SEC("tc")
int doctor_tc_testrun(struct __sk_buff *skb)
{
	__be16 proto;

	/* bpf_skb_load_bytes works whatever the linear length is. */
	if (bpf_skb_load_bytes(skb, offsetof(struct ethhdr, h_proto), &proto, sizeof(proto)) < 0)
		return DOCTOR_TC_ACT_OK;
	return proto == bpf_htons(DOCTOR_ETH_P_IP) ? DOCTOR_TC_ACT_SHOT : DOCTOR_TC_ACT_OK;
}

/* ---- cgroup programs ----------------------------------------------------- */

SEC("cgroup_skb/ingress")
int doctor_cgroup_skb_ingress(struct __sk_buff *skb)
{
	return 1; /* allow */
}

SEC("cgroup_skb/egress")
int doctor_cgroup_skb_egress(struct __sk_buff *skb)
{
	return 1;
}

SEC("cgroup/connect4")
int doctor_connect4(struct bpf_sock_addr *ctx)
{
	return 1; /* 0 would make connect() fail with EPERM */
}

SEC("cgroup/connect6")
int doctor_connect6(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("cgroup/sock_create")
int doctor_sock_create(struct bpf_sock *ctx)
{
	return 1;
}

SEC("cgroup/sendmsg4")
int doctor_sendmsg4(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("sockops")
int doctor_sockops(struct bpf_sock_ops *ctx)
{
	return 1;
}

/* ---- tracing ------------------------------------------------------------- */

static __always_inline void doctor_hit(__u32 which)
{
	if (which < DOCTOR_HIT_MAX)
		__sync_fetch_and_add(&doctor_hits[which], 1);
}

SEC("tp/syscalls/sys_enter_openat")
int doctor_tp(void *ctx)
{
	doctor_hit(DOCTOR_HIT_TP);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(doctor_tp_btf, struct pt_regs *regs, long id)
{
	doctor_hit(DOCTOR_HIT_TP_BTF);
	return 0;
}

SEC("raw_tp/sys_enter")
int doctor_raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	doctor_hit(DOCTOR_HIT_RAW_TP);
	return 0;
}

/* Load-only: proves bpf_send_signal passes the verifier from tp_btf. */
SEC("tp_btf/sys_enter")
int BPF_PROG(doctor_send_signal, struct pt_regs *regs, long id)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (doctor_signal_tgid != 0 && tgid == doctor_signal_tgid)
		bpf_send_signal(9 /* SIGKILL */);
	return 0;
}

/* ---- maps ---------------------------------------------------------------- */

/* Map probes run as XDP so the doctor can also BPF_PROG_TEST_RUN them. */
SEC("xdp")
int doctor_ringbuf_probe(struct xdp_md *ctx)
{
	__u64 *rec = bpf_ringbuf_reserve(&doctor_ringbuf, sizeof(*rec), 0);

	if (!rec)
		return XDP_PASS;
	*rec = 1;
	bpf_ringbuf_submit(rec, 0);
	return XDP_PASS;
}

SEC("xdp")
int doctor_percpu_probe(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&doctor_percpu, &key);

	if (v)
		*v += 1; /* per-CPU: no atomics needed */
	return XDP_PASS;
}

SEC("xdp")
int doctor_lpm_probe(struct xdp_md *ctx)
{
	struct doctor_lpm_key key = { .prefixlen = 32, .addr_be = bpf_htonl(0xc6120001) /* 198.18.0.1 */ };
	__u32 *v = bpf_map_lookup_elem(&doctor_lpm, &key);

	return v ? XDP_DROP : XDP_PASS;
}

/* ---- optional: conntrack kfuncs and SYN cookies (load-only) -------------- */

extern struct nf_conn *bpf_xdp_ct_lookup(struct xdp_md *xdp_ctx, struct bpf_sock_tuple *bpf_tuple,
					 __u32 tuple__sz, struct bpf_ct_opts *opts,
					 __u32 opts__sz) __ksym __weak;
extern void bpf_ct_release(struct nf_conn *nfct) __ksym __weak;

SEC("xdp")
int doctor_ct_kfunc(struct xdp_md *ctx)
{
	struct bpf_sock_tuple tup = {};
	struct bpf_ct_opts opts = {};
	struct nf_conn *ct;

	/* Field by field: a designated initializer becomes a .rodata.cst16
	 * constant, which libbpf would turn into one more map. */
	opts.netns_id = -1;
	opts.l4proto = IPPROTO_TCP;

	tup.ipv4.saddr = bpf_htonl(0xc6120001); /* 198.18.0.1 */
	tup.ipv4.daddr = bpf_htonl(0xc6120002);
	ct = bpf_xdp_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));
	if (ct)
		bpf_ct_release(ct);
	return XDP_PASS;
}

SEC("xdp")
int doctor_syncookie(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph;
	struct tcphdr *th;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(DOCTOR_ETH_P_IP))
		return XDP_PASS;
	iph = (void *)(eth + 1);
	/* Options make ihl variable; a probe only needs the fixed header. */
	if ((void *)(iph + 1) > data_end || iph->ihl != 5 || iph->protocol != IPPROTO_TCP)
		return XDP_PASS;
	th = (void *)(iph + 1);
	if ((void *)(th + 1) > data_end)
		return XDP_PASS;
	bpf_tcp_raw_gen_syncookie_ipv4(iph, th, sizeof(*th));
	return XDP_PASS;
}

/* ---- expected to be refused on the reference host ------------------------ */

/* bpf_fentry_test1 exists in every kernel with BPF_PROG_TEST_RUN for exactly
 * this kind of probe, so a failure here is about fentry, not the target. */
SEC("fentry/bpf_fentry_test1")
int BPF_PROG(doctor_fentry, int a)
{
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(doctor_lsm, struct file *file)
{
	return 0;
}
