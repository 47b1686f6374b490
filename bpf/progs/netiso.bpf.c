// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Network isolation of containers (docs/isolation.md): concurrent outbound
 * TCP connection limits per container or per tenant, and destination rules.
 *
 * Every program here is attached at one cgroup that covers the containers
 * (the agent's cgroup root) and starts with one exact hash lookup of the
 * cgroup in tg_ni_cgroup: sockets of other cgroups (the host, unscoped
 * containers) pay that lookup and nothing else. The agent maps a
 * container's own cgroup and every cgroup below it.
 *
 *  - cgroup/connect4, connect6: the destination of a TCP, UDP or ping
 *    socket's connect() is checked against the scope's rules (EPERM when
 *    denied); then a TCP socket takes a connection slot of its group,
 *    once per socket (marked in socket storage), or gets EPERM when the
 *    group already has its limit open.
 *  - cgroup/sock_release: a counted socket being closed gives its slot back.
 *  - cgroup/sendmsg4, sendmsg6: the destination of an unconnected UDP
 *    sendmsg() is checked.
 *  - cgroup_skb/egress: the backstop for what the socket hooks never see
 *    (raw sockets, ICMP ping sockets' sends, SCTP, ...): each packet's
 *    destination, protocol and port is checked and a denied one dropped.
 *    Packets of TCP stream and UDP datagram sockets are left to the socket
 *    hooks: their destinations were checked at connect()/sendmsg(), and
 *    replies of accepted connections are not egress destinations.
 *
 * Every denial raises an event on tg_ni_ring (pinned), within a per-CPU
 * budget per scope, so a process looping on a denied connect() cannot fill
 * the ring; enforcement never depends on the event being delivered.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "abi.h"
#include "btf_anchor.h"
#include "parse.h"
#include "event_budget.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

TG_BTF_ANCHOR(enum tg_ni_limits, tg_ni_limits);
TG_BTF_ANCHOR(enum tg_ni_action, tg_ni_action);
TG_BTF_ANCHOR(enum tg_ni_scope_flag, tg_ni_scope_flag);
TG_BTF_ANCHOR(enum tg_ni_event_type, tg_ni_event_type);
TG_BTF_ANCHOR(enum tg_sev_stat, tg_sev_stat);
/* Only a ring record, never a map key or value: anchored for BTF. */
TG_BTF_ANCHOR(struct tg_ni_event *, tg_ni_event);

/* bpf_sock_addr return values: 1 lets the call go on, 0 fails it with EPERM. */
#define NI_PASS 1
#define NI_REFUSE 0

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TG_NI_MAX_CGROUPS);
	__type(key, __u64); /* cgroup id */
	__type(value, struct tg_ni_ref);
} tg_ni_cgroup SEC(".maps");

/* Open outbound TCP connections per group slot. Written only by the
 * programs, with atomic adds (a plain array, not per-CPU: the check against
 * the limit needs the one exact total). Signed, so a bug that released more
 * than it counted would show as a negative count rather than a huge one. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_NI_MAX_GROUPS);
	__type(key, __u32);
	__type(value, __s64);
} tg_ni_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_NI_MAX_GROUPS);
	__type(key, __u32);
	__type(value, struct tg_ni_group);
} tg_ni_group SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_NI_MAX_SCOPES);
	__type(key, __u32);
	__type(value, struct tg_ni_scope);
} tg_ni_scope SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TG_NI_MAX_SCOPES * TG_NI_MAX_RULES);
	__type(key, __u32);
	__type(value, struct tg_ni_rule);
} tg_ni_rule SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, TG_NI_MAX_PREFIXES);
	__type(key, struct tg_ni_v4_key);
	__type(value, __u64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} tg_ni_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, TG_NI_MAX_PREFIXES);
	__type(key, struct tg_ni_v6_key);
	__type(value, __u64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} tg_ni_v6 SEC(".maps");

/*
 * Kernel-private: what a socket was counted as. Lives and dies with the
 * socket (no capacity to run out of, nothing to evict); pinned, so a
 * restarted agent's programs release the sockets counted by the last ones.
 * Not cloned to accepted children (no BPF_F_CLONE): only connect() counts.
 */
struct ni_sk {
	__u32 group; /* the slot it holds; 0: none (not counted, or released) */
	__u32 lease; /* the slot's lease when it was counted */
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ni_sk);
} tg_ni_sk SEC(".maps");

/* 1 MiB: about 10,000 records waiting for the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} tg_ni_ring SEC(".maps");

/* enum tg_sev_stat: what became of the events the programs had to send. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_SEV_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tg_ni_stats SEC(".maps");

/* A scope's events per second and CPU (event_budget.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TG_NI_MAX_SCOPES);
	__type(key, __u32);
	__type(value, struct event_budget);
} tg_ni_budget SEC(".maps");

#define ni_stat(s) event_stat(&tg_ni_stats, (s))
/* Whether the scope may send another event this second on this CPU. */
#define ni_budget(scope) event_budget(&tg_ni_budget, &tg_ni_stats, (scope), TG_NI_EVENTS_PER_SEC)

/* A destination as the rules see it. */
struct ni_dest {
	__u8 addr[16];   /* network order; IPv4 in the first 4 bytes */
	__u16 dport;     /* host order, valid with port_known */
	__u8 ip_ver;     /* 4 or 6; 0: unreadable */
	__u8 proto;      /* IP protocol */
	__u8 port_known; /* a protocol with ports, and the port was read */
	__u8 pad[3];
};

static __always_inline bool has_ports(__u8 proto)
{
	return proto == TG_IPPROTO_TCP || proto == TG_IPPROTO_UDP || proto == TG_IPPROTO_SCTP;
}

static __always_inline void ni_event(__u32 type, __u64 cgroup, const struct tg_ni_ref *ref, const struct ni_dest *d,
				     __u32 rule, __u32 limit, __u32 sock_type)
{
	struct tg_ni_event *e;
	__u64 id;

	if (!ni_budget(ref->scope))
		return;
	e = bpf_ringbuf_reserve(&tg_ni_ring, sizeof(*e), 0);
	if (!e) {
		ni_stat(TG_SEV_LOST);
		return;
	}
	id = bpf_get_current_pid_tgid();
	e->at_ns = bpf_ktime_get_tai_ns();
	e->cgroup_id = cgroup;
	e->type = type;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->group = ref->group;
	e->scope = ref->scope;
	e->rule = rule;
	e->limit = limit;
	e->sock_type = sock_type;
	e->pad = 0;
	__builtin_memcpy(e->daddr_be, d->addr, sizeof(e->daddr_be));
	e->dport_be = d->port_known ? bpf_htons(d->dport) : 0;
	e->ip_ver = d->ip_ver;
	e->proto = d->proto;
	e->pad2 = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	ni_stat(TG_SEV_SENT);
}

/* The rules of the scope's LPM entry covering the destination; 0 when none does. */
static __always_inline __u64 ni_rule_mask(__u32 scope, const struct ni_dest *d)
{
	__u64 *mask;

	if (d->ip_ver == 4) {
		struct tg_ni_v4_key k = { .prefixlen = 32 + 32, .scope = scope };

		__builtin_memcpy(k.addr_be, d->addr, 4);
		mask = bpf_map_lookup_elem(&tg_ni_v4, &k);
	} else {
		struct tg_ni_v6_key k = { .prefixlen = 32 + 128, .scope = scope };

		__builtin_memcpy(k.addr_be, d->addr, 16);
		mask = bpf_map_lookup_elem(&tg_ni_v6, &k);
	}
	return mask ? *mask : 0;
}

/* Whether a rule's port condition holds; an unknown port (a later fragment,
 * a cut header) matches deny rules and no allow rule, so it can only be
 * refused more, never let through by a rule it might not match. */
static __always_inline bool ni_ports_match(const struct tg_ni_rule *r, const struct ni_dest *d)
{
	int j;

	if (!r->n_ports)
		return true;
	if (!has_ports(d->proto))
		return false;
	if (!d->port_known)
		return r->action == TG_NI_DENY;
	for (j = 0; j < TG_NI_RULE_PORTS; j++) {
		if (j >= r->n_ports)
			break;
		if (d->dport >= r->port_lo[j] && d->dport <= r->port_hi[j])
			return true;
	}
	return false;
}

/*
 * enum tg_ni_action for a destination under a scope: the first kernel rule
 * (lowest bit) covering the address whose protocol and port conditions
 * hold, else the scope's default. *rule gets the policy rule's index + 1
 * (0: the default).
 */
static __always_inline __u32 ni_decide(__u32 scope_id, const struct tg_ni_scope *s, const struct ni_dest *d, __u32 *rule)
{
	struct tg_ni_rule *r;
	__u64 mask;
	__u32 i, idx;

	*rule = 0;
	if (d->ip_ver != 4 && d->ip_ver != 6)
		return TG_NI_DENY; /* a destination that cannot be read is not let past rules it might match */
	mask = ni_rule_mask(scope_id, d);
	for (i = 0; i < TG_NI_MAX_RULES; i++) {
		if (!(mask >> i))
			break; /* no rule left */
		if (!((mask >> i) & 1))
			continue;
		idx = scope_id * TG_NI_MAX_RULES + i;
		r = bpf_map_lookup_elem(&tg_ni_rule, &idx);
		if (!r)
			break;
		if (!((r->protocols[(d->proto >> 6) & 3] >> (d->proto & 63)) & 1))
			continue;
		if (!ni_ports_match(r, d))
			continue;
		*rule = (__u32)r->policy_rule + 1;
		return r->action;
	}
	return s->default_action;
}

/* Whether the scope (kernel id) denies the destination; *rule as ni_decide. */
static __always_inline bool ni_denied(__u32 scope_id, const struct ni_dest *d, __u32 *rule)
{
	struct tg_ni_scope *s;

	*rule = 0;
	if (!scope_id)
		return false;
	s = bpf_map_lookup_elem(&tg_ni_scope, &scope_id);
	if (!s || !(s->flags & TG_NI_DEST))
		return false;
	return ni_decide(scope_id, s, d, rule) == TG_NI_DENY;
}

/* The IP protocol of a socket, by its type and the protocol it was created with. */
static __always_inline __u8 sock_proto(__u32 type, __u32 protocol)
{
	if (type == SOCK_STREAM)
		return protocol == TG_IPPROTO_SCTP ? TG_IPPROTO_SCTP : TG_IPPROTO_TCP; /* 0, TCP, MPTCP: TCP on the wire */
	if (type == SOCK_DGRAM)
		return protocol == 0 ? TG_IPPROTO_UDP : (__u8)protocol; /* UDP, UDP-Lite, ICMP/ICMPv6 ping sockets */
	return (__u8)protocol;
}

/* The destination a connect()/sendmsg() names. A v4-mapped IPv6 address
 * (a dual-stack socket talking IPv4) is an IPv4 destination. */
static __always_inline void sock_addr_dest(struct bpf_sock_addr *ctx, bool v6, struct ni_dest *d)
{
	__builtin_memset(d, 0, sizeof(*d));
	d->proto = sock_proto(ctx->type, ctx->protocol);
	d->dport = bpf_ntohs((__u16)ctx->user_port);
	d->port_known = has_ports(d->proto);
	if (!v6) {
		__u32 a = ctx->user_ip4;

		d->ip_ver = 4;
		__builtin_memcpy(d->addr, &a, 4);
		return;
	}
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];

	if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff)) {
		d->ip_ver = 4;
		__builtin_memcpy(d->addr, &w3, 4);
		return;
	}
	d->ip_ver = 6;
	__builtin_memcpy(&d->addr[0], &w0, 4);
	__builtin_memcpy(&d->addr[4], &w1, 4);
	__builtin_memcpy(&d->addr[8], &w2, 4);
	__builtin_memcpy(&d->addr[12], &w3, 4);
}

/*
 * A TCP socket's first connect() takes a slot of its group: fetch-and-add,
 * and back out when that went past the limit, so concurrent connects on
 * every CPU never get more than `limit` through. The socket is marked with
 * the slot and its lease, so a second connect() of it (after a failure) is
 * not counted again and sock_release knows what to give back.
 */
static __always_inline int ni_count(struct bpf_sock_addr *ctx, __u64 cgroup, const struct tg_ni_ref *ref, const struct ni_dest *d)
{
	struct tg_ni_group *g;
	struct ni_sk *st;
	__u32 slot = ref->group;
	__u32 limit, lease;
	__s64 *n, old;

	g = bpf_map_lookup_elem(&tg_ni_group, &slot);
	n = bpf_map_lookup_elem(&tg_ni_conns, &slot);
	if (!g || !n)
		return NI_PASS; /* a slot beyond the arrays: the agent never writes one */
	limit = g->limit;
	lease = g->lease;
	st = bpf_sk_storage_get(&tg_ni_sk, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		/* Cannot be released later, so not counted; refused only where a limit must hold. */
		if (!limit)
			return NI_PASS;
		ni_event(TG_NIEV_UNTRACKED, cgroup, ref, d, 0, limit, ctx->type);
		return NI_REFUSE;
	}
	if (st->group)
		return NI_PASS; /* counted at an earlier connect() of this socket */
	old = __sync_fetch_and_add(n, 1);
	if (limit && old >= (__s64)limit) {
		__sync_fetch_and_add(n, -1);
		ni_event(TG_NIEV_CONN_LIMIT, cgroup, ref, d, 0, limit, ctx->type);
		return NI_REFUSE;
	}
	st->lease = lease;
	st->group = slot;
	return NI_PASS;
}

/*
 * connect() and sendmsg() of the covered cgroups: the destination rules,
 * and for a TCP connect() the group's connection count and limit.
 */
static __always_inline int ni_sock_addr(struct bpf_sock_addr *ctx, bool v6, bool connect)
{
	__u64 cgroup = bpf_get_current_cgroup_id();
	struct tg_ni_ref *found, ref;
	struct ni_dest d;
	__u32 rule;

	found = bpf_map_lookup_elem(&tg_ni_cgroup, &cgroup);
	if (!found)
		return NI_PASS;
	ref = *found; /* one consistent copy: the agent may rewrite the entry meanwhile */
	sock_addr_dest(ctx, v6, &d);
	if (ni_denied(ref.scope, &d, &rule)) {
		ni_event(connect ? TG_NIEV_CONNECT_DENIED : TG_NIEV_SENDMSG_DENIED, cgroup, &ref, &d, rule, 0, ctx->type);
		return NI_REFUSE;
	}
	if (connect && ctx->type == SOCK_STREAM && d.proto == TG_IPPROTO_TCP && ref.group)
		return ni_count(ctx, cgroup, &ref, &d);
	return NI_PASS;
}

SEC("cgroup/connect4")
int tg_ni_connect4(struct bpf_sock_addr *ctx)
{
	return ni_sock_addr(ctx, false, true);
}

SEC("cgroup/connect6")
int tg_ni_connect6(struct bpf_sock_addr *ctx)
{
	return ni_sock_addr(ctx, true, true);
}

/* Runs for every socket of the covered cgroups as it is closed; only counted ones have storage. */
SEC("cgroup/sock_release")
int tg_ni_release(struct bpf_sock *sk)
{
	struct tg_ni_group *g;
	struct ni_sk *st;
	__u32 slot;
	__s64 *n;

	st = bpf_sk_storage_get(&tg_ni_sk, sk, 0, 0);
	if (!st || !st->group)
		return 1;
	slot = st->group;
	st->group = 0;
	g = bpf_map_lookup_elem(&tg_ni_group, &slot);
	n = bpf_map_lookup_elem(&tg_ni_conns, &slot);
	/* Another lease: the slot was zeroed and given to another group since. */
	if (g && n && g->lease == st->lease)
		__sync_fetch_and_add(n, -1);
	return 1;
}

SEC("cgroup/sendmsg4")
int tg_ni_sendmsg4(struct bpf_sock_addr *ctx)
{
	return ni_sock_addr(ctx, false, false);
}

SEC("cgroup/sendmsg6")
int tg_ni_sendmsg6(struct bpf_sock_addr *ctx)
{
	return ni_sock_addr(ctx, true, false);
}

/*
 * The backstop. Returns 1 to let the packet go, 0 to drop it (the sender
 * gets EPERM from sendmsg when it is sent in its context).
 */
SEC("cgroup_skb/egress")
int tg_ni_egress(struct __sk_buff *skb)
{
	__u64 cgroup = bpf_skb_cgroup_id(skb);
	struct tg_ni_ref *found, ref;
	struct tg_ni_scope *s;
	struct bpf_sock *sk;
	struct pkt_meta p;
	struct ni_dest d;
	__u32 rule, type = 0;

	found = bpf_map_lookup_elem(&tg_ni_cgroup, &cgroup);
	if (!found)
		return 1;
	ref = *found;
	sk = skb->sk;
	if (sk)
		sk = bpf_sk_fullsock(sk);
	if (sk) {
		type = sk->type;
		/* Checked at connect()/sendmsg(); accepted connections' replies are not egress destinations. */
		if ((type == SOCK_STREAM && sk->protocol == TG_IPPROTO_TCP) || (type == SOCK_DGRAM && sk->protocol == TG_IPPROTO_UDP))
			return 1;
	}
	/* Only scopes that check destinations pay for parsing. */
	s = bpf_map_lookup_elem(&tg_ni_scope, &ref.scope);
	if (!s || !(s->flags & TG_NI_DEST))
		return 1;
	tg_parse_l3(skb, &p, true);
	__builtin_memset(&d, 0, sizeof(d));
	if (p.flags & TG_PKT_HAS_ADDR) {
		d.ip_ver = p.ip_ver;
		__builtin_memcpy(d.addr, p.daddr, 16);
		d.proto = p.l4_proto;
		d.port_known = has_ports(d.proto) && (p.flags & TG_PKT_HAS_L4);
		d.dport = d.port_known ? bpf_ntohs(p.dport) : 0;
	}
	if (ni_decide(ref.scope, s, &d, &rule) != TG_NI_DENY)
		return 1;
	ni_event(TG_NIEV_EGRESS_DENIED, cgroup, &ref, &d, rule, 0, type);
	return 0;
}
