// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Bandwidth limits of containers, per group (one container, or all the
 * containers of a tenant) and direction; the agent drives them through
 * src/shaper (compile.ts says what a limit becomes in the maps). The
 * programs are attached to one cgroup above the containers; a socket's own
 * cgroup (the container's, or one below it) maps to its group in
 * tg_bw_cgroup.
 *
 * The reference kernel has no fq qdisc, so EDT (skb->tstamp) is out, and an
 * HTB class per container queues: at 10 Mbit/s its default queue held a
 * quarter of a second, which every packet of the container waited through
 * (a request/response probe's p99: 77-238 ms, against 0.2-0.4 ms here;
 * bench/isolation-bandwidth.ts). Nothing here queues. Instead:
 *
 *  - A policer per group and direction on virtual time (GCRA), at the
 *    cgroup_skb hooks: tat_ns is when the group's traffic so far would have
 *    finished at the rate; a packet conforms while tat_ns - now <= burst_ns
 *    and then moves tat_ns on by its own length at the rate. A packet bigger
 *    than what is left of the burst still conforms (the group goes into
 *    debt), so 64 KB GSO packets pass at any rate and the long-run rate
 *    stays exact. One u64 per group and direction under a bpf_spin_lock:
 *    exact across CPUs.
 *
 *  - At egress, TCP's own pacing. A policer alone serves local TCP badly: a
 *    segment the cgroup hook refuses stays in the socket's write queue (we
 *    return drop + NET_XMIT_CN, so TCP also enters CWR and UDP senders see
 *    no error), and is tried again on the next ACK; with nothing in flight
 *    there is no next ACK, and the socket waits for its zero-window probe
 *    timer, 200 ms. Measured with a burst of 10 ms of the rate: 0.1-0.5
 *    of the rate; with the grace below (a refused segment of an idle
 *    socket passes up to 250 ms over the burst) it reaches the rate, but
 *    only by running that far over its burst all the time and refusing
 *    segments throughout (131 in 5 s at 10 Mbit/s). So tg_bw_sockops sets
 *    SO_MAX_PACING_RATE on each TCP socket of a limited group to its share
 *    of the rate (the rate over the sockets that sent data lately, less the
 *    per-segment headers the policer counts and pacing does not, less a
 *    margin), and TCP spaces its segments with its own timer, which needs
 *    no fq. It is refreshed at every RTT sample, so a limit changed at run
 *    time reaches established connections within a round trip. Then the
 *    policer sees a conforming stream and only guards the total (UDP,
 *    sockets established before the programs were attached, bursts of
 *    many sockets).
 *
 *  - Packets whose loss would stall a connection pass while the group is at
 *    most a grace over its burst (enum tg_bw_limits), counted (so the rate
 *    still holds over time) and reported as protected: an egress TCP
 *    segment of a socket with nothing in flight, at ingress a TCP
 *    retransmission (its data ends at or below the highest sequence the
 *    socket has received: losing the retransmission of a loss is what
 *    turns a policed flow into a series of timeouts), and, up to two
 *    graces, small packets (ACKs, requests, answers): so a request/response
 *    connection of a container keeps its latency while a bulk transfer of
 *    the same container holds the group at its limit.
 *
 * At ingress the packet has already crossed the host and no queue can
 * hold it; the policer drops, and TCP senders back off from the losses. A
 * sender that lost a segment may wait out its retransmission timeout, so
 * the agent gives ingress a burst of at least 250 ms of the rate
 * (src/shaper/compile.ts): a smaller bucket refills unused meanwhile and
 * the rate is never reached (0.27-0.5 of it with 20-50 ms, measured).
 *
 * Bytes are L3 bytes, as the meter bills them: a GSO/GRO packet counts the
 * headers of each of its segments.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "abi.h"
#include "btf_anchor.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

TG_BTF_ANCHOR(enum tg_bw_limits, tg_bw_limits);
TG_BTF_ANCHOR(enum tg_bw_flag, tg_bw_flag);
TG_BTF_ANCHOR(enum tg_direction, tg_direction);

#define NSEC_PER_SEC 1000000000ULL
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define AF_INET6 10
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define SOL_SOCKET 1
#define SO_MAX_PACING_RATE 47
/* SO_MAX_PACING_RATE through bpf_setsockopt takes an int: bytes per second, ~0U = unlimited. */
#define PACING_UNLIMITED 0xffffffffU
/* Pacing runs this much (1/128) below the socket's share, so that the
 * policer, whose clock pacing never sees, is not reached by a lone flow. */
#define PACE_MARGIN_SHIFT 7
/* The TCP header with timestamps (20 + 12 bytes) a segment carries besides
 * its mss_cache payload bytes and its IP header: the policer counts them,
 * pacing does not. */
#define TCP_HDR_TS 32
/* A socket takes a share of its group's rate while more than this many
 * segments wait unsent in its write queue: a bulk sender always has them,
 * a request, an answer or a control message never does. */
#define BUSY_SEGS 2

/* cgroup_skb return values; egress may add the congestion-notification bit. */
#define CG_DROP 0
#define CG_PASS 1
#define CG_CN 2

/* Container cgroups and every cgroup below them -> their group. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_BW_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, struct tg_bw_ref);
} tg_bw_cgroup SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_BW_MAX_GROUPS * TG_DIR_MAX);
	__type(key, __u32);
	__type(value, struct tg_bw_cfg);
} tg_bw_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_BW_MAX_GROUPS * TG_DIR_MAX);
	__type(key, __u32);
	__type(value, struct tg_bw_state);
} tg_bw_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_BW_MAX_GROUPS * TG_DIR_MAX);
	__type(key, __u32);
	__type(value, struct tg_bw_stats);
} tg_bw_stats SEC(".maps");

/* Kernel-private, per socket of a limited group; freed with the socket. */
struct bw_sock {
	__u64 cgroup_id;    /* sockops: the socket's cgroup, read once at establishment */
	__u64 epoch_ns;     /* sockops: the pacing period it was last counted busy in (0: none) */
	__u64 before_ns;    /* sockops: the one it was counted in before that */
	__u32 pacing;       /* sockops: the SO_MAX_PACING_RATE it was given last (0: never) */
	__u32 rx_high;      /* ingress: end of the highest sequence received */
	__u32 rx_valid;     /* ingress: rx_high is set */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct bw_sock);
} tg_bw_sock SEC(".maps");

/* What the policer decided. */
enum bw_verdict { BW_PASS, BW_PROTECT, BW_DROP };

/* The headers of a packet the policer needs. */
struct bw_pkt {
	__u64 bytes;  /* L3 bytes on the wire */
	__u32 seq;    /* TCP: sequence number of the first payload byte */
	__u32 len;    /* TCP: payload bytes */
	bool tcp;
};

/*
 * Reads the packet from its L3 header (cgroup_skb programs see it there).
 * For a GSO (egress) or GRO (ingress) packet, skb->len holds the headers
 * once; each further segment carries its own on the wire.
 */
static __always_inline void parse(struct __sk_buff *skb, struct bw_pkt *p)
{
	__u32 segs = skb->gso_segs, hdr, l4 = 0;
	__u8 b[20];
	__u8 proto;

	p->bytes = skb->len;
	p->tcp = false;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, 0, b, 20))
			return;
		hdr = (b[0] & 0xf) * 4;
		proto = b[9];
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, 0, b, 8))
			return;
		hdr = 40;
		proto = b[6]; /* with extension headers the transport header is not read: a plain packet */
	} else {
		return;
	}
	if (proto == IPPROTO_TCP_) {
		if (hdr < 20 || hdr > 60 || bpf_skb_load_bytes(skb, hdr, b, 20))
			return;
		l4 = (b[12] >> 4) * 4;
		if (l4 < 20 || hdr + l4 > skb->len)
			return;
		p->tcp = true;
		p->seq = ((__u32)b[4] << 24) | ((__u32)b[5] << 16) | ((__u32)b[6] << 8) | b[7];
		p->len = skb->len - hdr - l4;
	} else if (proto == IPPROTO_UDP_) {
		l4 = 8;
	}
	if (segs > 1 && segs < 65536)
		p->bytes += (__u64)(segs - 1) * (hdr + l4);
}

/* Egress: the sending TCP socket has nothing in flight, so no ACK will come to retry a refused segment. */
static __always_inline bool nothing_in_flight(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	struct bpf_tcp_sock *tp;

	if (!sk)
		return false;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return false;
	tp = bpf_tcp_sock(sk);
	return tp && tp->packets_out == 0;
}

/*
 * Ingress: whether this TCP segment's data ends at or below the highest
 * sequence the socket received before (a retransmission); else it becomes
 * the highest. Sequence numbers wrap: compared as signed differences.
 */
static __always_inline bool retransmission(struct __sk_buff *skb, const struct bw_pkt *p)
{
	struct bpf_sock *sk = skb->sk;
	struct bw_sock *s;
	__u32 end;

	if (!p->tcp || !p->len || !sk)
		return false;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return false;
	s = bpf_sk_storage_get(&tg_bw_sock, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!s)
		return false;
	end = p->seq + p->len;
	if (s->rx_valid && (__s32)(end - s->rx_high) <= 0)
		return true;
	s->rx_high = end;
	s->rx_valid = 1;
	return false;
}

static __always_inline void count(struct tg_bw_stats *s, enum bw_verdict v, __u64 bytes)
{
	if (v == BW_DROP) {
		s->dropped_packets++;
		s->dropped_bytes += bytes;
		return;
	}
	s->passed_packets++;
	s->passed_bytes += bytes;
	if (v == BW_PROTECT)
		s->protected_packets++;
}

static __always_inline int police(struct __sk_buff *skb, __u32 dir)
{
	__u64 cgroup = bpf_skb_cgroup_id(skb), rate, burst, cost, now, tat, delay, grace;
	struct bw_pkt p = {};
	struct tg_bw_stats *stats;
	struct tg_bw_state *st;
	struct tg_bw_cfg *cfg;
	struct tg_bw_ref *ref;
	enum bw_verdict v;
	bool spare, small;
	__u32 idx;

	ref = bpf_map_lookup_elem(&tg_bw_cgroup, &cgroup);
	if (!ref)
		return CG_PASS;
	idx = ref->group * TG_DIR_MAX + dir;
	cfg = bpf_map_lookup_elem(&tg_bw_cfg, &idx);
	st = bpf_map_lookup_elem(&tg_bw_state, &idx);
	stats = bpf_map_lookup_elem(&tg_bw_stats, &idx);
	if (!cfg || !st || !stats)
		return CG_PASS;
	rate = cfg->rate_bps;
	burst = cfg->burst_ns;
	parse(skb, &p);
	if (!rate) {
		count(stats, BW_PASS, p.bytes);
		return CG_PASS;
	}
	/* Helpers cannot run under the lock: what protects the packet is known first. */
	small = p.bytes <= TG_BW_SMALL_BYTES;
	spare = dir == TG_DIR_EGRESS ? nothing_in_flight(skb) : retransmission(skb, &p);
	grace = burst > TG_BW_GRACE_NS ? burst : TG_BW_GRACE_NS;
	cost = p.bytes * 8 * NSEC_PER_SEC / rate;
	now = bpf_ktime_get_ns();

	bpf_spin_lock(&st->lock);
	tat = st->tat_ns > now ? st->tat_ns : now;
	delay = tat - now;
	if (delay <= burst)
		v = BW_PASS;
	else if ((spare && delay <= burst + grace) || (small && delay <= burst + 2 * grace))
		v = BW_PROTECT;
	else
		v = BW_DROP;
	if (v != BW_DROP)
		st->tat_ns = tat + cost;
	bpf_spin_unlock(&st->lock);

	count(stats, v, p.bytes);
	if (dir == TG_DIR_INGRESS)
		return v == BW_DROP ? CG_DROP : CG_PASS;
	/* Drop + CN: TCP keeps the segment and enters CWR; UDP's sendmsg reports no error.
	 * A protected segment tells its sender about the congestion too. */
	if (v == BW_DROP)
		return CG_DROP | CG_CN;
	return v == BW_PROTECT ? CG_PASS | CG_CN : CG_PASS;
}

SEC("cgroup_skb/egress")
int tg_bw_egress(struct __sk_buff *skb)
{
	return police(skb, TG_DIR_EGRESS);
}

SEC("cgroup_skb/ingress")
int tg_bw_ingress(struct __sk_buff *skb)
{
	return police(skb, TG_DIR_INGRESS);
}

/*
 * The pacing rate of one socket of a group with egress limit cfg: its share
 * of the rate, in payload bytes per second. The share divides the rate by
 * the group's busy sockets: those that had data waiting in their write
 * queue (more than they were let send) at an RTT sample in the current
 * period (TG_BW_EPOCH_NS), or in the one before when they were more. A
 * socket that sends what it has at once (a control connection, requests
 * and answers) takes no share; a busy one that stops frees its share
 * within two periods. So N bulk flows of a group each get rate / N, and
 * their sum stays below the policer.
 */
static __always_inline __u32 pacing_share(struct bpf_sock_ops *skops, struct bpf_sock *sk, struct bw_sock *s, struct tg_bw_state *st,
					   const struct tg_bw_cfg *cfg)
{
	__u64 now = bpf_ktime_get_ns(), rate = cfg->rate_bps, mss = skops->mss_cache, hdr, pace;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	bool busy = tp && (__s32)(BPF_CORE_READ(tp, write_seq) - BPF_CORE_READ(tp, snd_nxt)) > (__s32)(BUSY_SEGS * mss);
	__u32 n;

	bpf_spin_lock(&st->lock);
	if (now - st->epoch_ns >= TG_BW_EPOCH_NS) {
		bool next = st->epoch_ns && now - st->epoch_ns < 2 * TG_BW_EPOCH_NS;

		st->active_before = next ? st->active_now : 0;
		st->prev_epoch_ns = next ? st->epoch_ns : 0;
		st->active_now = 0;
		st->epoch_ns = now;
	}
	if (busy && s->epoch_ns != st->epoch_ns) {
		s->before_ns = s->epoch_ns;
		s->epoch_ns = st->epoch_ns;
		st->active_now++;
	}
	n = st->active_now > st->active_before ? st->active_now : st->active_before;
	bpf_spin_unlock(&st->lock);

	if (!n)
		n = 1;
	if (!mss)
		mss = 536;
	hdr = (skops->family == AF_INET6 ? 40 : 20) + TCP_HDR_TS;
	pace = rate / 8 * mss / (mss + hdr);
	pace -= pace >> PACE_MARGIN_SHIFT;
	pace /= n;
	if (pace >= PACING_UNLIMITED)
		return PACING_UNLIMITED - 1;
	return pace ? pace : 1;
}

/*
 * A closing socket leaves the busy counts it is in, so that the others get
 * its share at once rather than after two periods.
 */
static __always_inline void uncount(struct bpf_sock *sk)
{
	struct bw_sock *s = bpf_sk_storage_get(&tg_bw_sock, sk, 0, 0);
	struct tg_bw_state *st;
	struct tg_bw_ref *ref;
	__u32 idx;

	if (!s || !s->cgroup_id || !s->epoch_ns)
		return;
	ref = bpf_map_lookup_elem(&tg_bw_cgroup, &s->cgroup_id);
	if (!ref)
		return;
	idx = ref->group * TG_DIR_MAX + TG_DIR_EGRESS;
	st = bpf_map_lookup_elem(&tg_bw_state, &idx);
	if (!st)
		return;
	bpf_spin_lock(&st->lock);
	if (s->epoch_ns == st->epoch_ns && st->active_now)
		st->active_now--;
	if (st->prev_epoch_ns && (s->epoch_ns == st->prev_epoch_ns || s->before_ns == st->prev_epoch_ns) && st->active_before)
		st->active_before--;
	bpf_spin_unlock(&st->lock);
	s->epoch_ns = 0;
	s->before_ns = 0;
}

/* The socket's cgroup id (what bpf_skb_cgroup_id reports for its packets), read through BTF. */
static __always_inline __u64 sock_cgroup_id(struct bpf_sock *sk)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);

	if (!tp)
		return 0;
	return BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_cgrp_data.cgroup, kn, id);
}

SEC("sockops")
int tg_bw_sockops(struct bpf_sock_ops *skops)
{
	struct tg_bw_stats *stats;
	struct tg_bw_state *st;
	struct tg_bw_cfg *cfg;
	struct tg_bw_ref *ref;
	struct bpf_sock *sk;
	struct bw_sock *s;
	__u32 op = skops->op, idx, want;
	__u64 cgroup;

	if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_RTT_CB &&
	    op != BPF_SOCK_OPS_STATE_CB)
		return 1;
	sk = skops->sk;
	if (!sk)
		return 1;
	if (op == BPF_SOCK_OPS_STATE_CB) {
		if (skops->args[1] == BPF_TCP_CLOSE)
			uncount(sk);
		return 1;
	}
	if (op == BPF_SOCK_OPS_RTT_CB) {
		s = bpf_sk_storage_get(&tg_bw_sock, sk, 0, 0);
		if (!s || !s->cgroup_id)
			return 1;
		cgroup = s->cgroup_id;
	} else {
		/* Established: only sockets of a mapped cgroup get storage, RTT
		 * callbacks (one per ACK that samples the RTT), so a limit set
		 * later reaches them too, and state callbacks (to leave the busy
		 * count when they close); other sockets cost this lookup. */
		cgroup = sock_cgroup_id(sk);
		if (!cgroup || !bpf_map_lookup_elem(&tg_bw_cgroup, &cgroup))
			return 1;
		s = bpf_sk_storage_get(&tg_bw_sock, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!s)
			return 1;
		s->cgroup_id = cgroup;
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_RTT_CB_FLAG | BPF_SOCK_OPS_STATE_CB_FLAG);
	}
	ref = bpf_map_lookup_elem(&tg_bw_cgroup, &cgroup);
	if (!ref) {
		want = PACING_UNLIMITED; /* the container left its group */
		idx = 0;
	} else {
		idx = ref->group * TG_DIR_MAX + TG_DIR_EGRESS;
		cfg = bpf_map_lookup_elem(&tg_bw_cfg, &idx);
		st = bpf_map_lookup_elem(&tg_bw_state, &idx);
		if (!cfg || !st)
			return 1;
		want = cfg->rate_bps && (cfg->flags & TG_BW_PACE) ? pacing_share(skops, sk, s, st, cfg) : PACING_UNLIMITED;
	}
	/* Never paced and not to be: leave the socket as it is. */
	if (want == s->pacing || (want == PACING_UNLIMITED && !s->pacing))
		return 1;
	if (bpf_setsockopt(skops, SOL_SOCKET, SO_MAX_PACING_RATE, &want, sizeof(want)))
		return 1;
	s->pacing = want;
	stats = idx ? bpf_map_lookup_elem(&tg_bw_stats, &idx) : NULL;
	if (stats)
		stats->pacing_updates++;
	return 1;
}
