/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet parser shared by tc (struct __sk_buff) and XDP (struct xdp_md).
 *
 * Every header is copied to the stack with bpf_skb_load_bytes /
 * bpf_xdp_load_bytes instead of being read through data/data_end: packets
 * sent from an AF_PACKET TX ring (trafgen) reach tc with only the Ethernet
 * header in the linear area, and a parser that stops at data_end would skip
 * them all (under-billing for a meter, a bypass for a filter). The helpers
 * bounds-check every read against the whole packet, linear or not, so a
 * failed load is exactly "the frame is shorter than its headers".
 *
 * One implementation serves both contexts: the entry points call
 * tg_parse(ctx, TG_CTX_SKB or TG_CTX_XDP, &pkt); the context kind is a
 * compile-time constant after inlining, so each program only contains the
 * helper calls valid for its type.
 *
 * The parser never fails: it always fills a struct tg_pkt whose flags say
 * what was found (or what was missing) and whose l3_bytes is the number of
 * bytes the meter counts.
 */
#ifndef TOLLGATE_PARSE_H
#define TOLLGATE_PARSE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "abi.h"

#define TG_ETH_HLEN 14
#define TG_ETH_P_IP 0x0800
#define TG_ETH_P_IPV6 0x86DD
#define TG_ETH_P_8021Q 0x8100
#define TG_ETH_P_8021AD 0x88A8

#define TG_IPPROTO_HOPOPTS 0
#define TG_IPPROTO_ICMP 1
#define TG_IPPROTO_TCP 6
#define TG_IPPROTO_UDP 17
#define TG_IPPROTO_ROUTING 43
#define TG_IPPROTO_FRAGMENT 44
#define TG_IPPROTO_AH 51
#define TG_IPPROTO_ICMPV6 58
#define TG_IPPROTO_SCTP 132
#define TG_IPPROTO_DSTOPTS 60

enum pkt_ctx_kind {
	TG_CTX_SKB = 0,  /* tc: the frame starts with its Ethernet header */
	TG_CTX_XDP = 1,
	TG_CTX_L3 = 2,   /* cgroup_skb: data starts at the IP header, skb->protocol says which */
};

/* pkt_meta.flags. An enum rather than #defines so the values reach BTF and tests read them from there. */
enum pkt_flag {
	TG_PKT_SHORT = 1 << 0,      /* shorter than an Ethernet header: nothing parsed */
	TG_PKT_TRUNCATED = 1 << 1,  /* a header, or the L3 length it claims, is cut off */
	TG_PKT_MALFORMED = 1 << 2,  /* IP header that cannot be right; addresses untrusted */
	TG_PKT_VLAN = 1 << 3,       /* at least one 802.1Q/802.1ad tag */
	TG_PKT_VLAN_LIMIT = 1 << 4, /* more tags than TG_MAX_VLAN_DEPTH: treated as non-IP */
	TG_PKT_FRAGMENT = 1 << 5,   /* IPv4 or IPv6 fragment (first or not) */
	TG_PKT_IPV6_EXT = 1 << 6,   /* IPv6 extension headers present */
	TG_PKT_EXT_LIMIT = 1 << 7,  /* more than TG_MAX_IPV6_EXT extension headers */
	TG_PKT_HAS_L4 = 1 << 8,     /* sport/dport (TCP, UDP) or icmp type/code are valid */
	TG_PKT_HAS_ADDR = 1 << 9,   /* saddr/daddr are valid */
	TG_PKT_L3_CUT = 1 << 10,    /* the frame holds less than the IP length claims (with TRUNCATED) */
	TG_PKT_EXT_CUT = 1 << 11,   /* an IPv6 extension header is cut off (with TRUNCATED) */
	TG_PKT_PORTS_READ = 1 << 12, /* read_ports() ran: TG_PKT_HAS_L4 is final */
};

/*
 * What the parser found. Addresses are in network order; for IPv4 only the
 * first four bytes of saddr/daddr are used. Deliberately not named tg_*:
 * tools/gen-abi exports every tg_* struct it finds in BTF, and this one is
 * private to the data plane.
 */
struct pkt_meta {
	__u32 frame_len;  /* whole frame, linear and paged parts */
	__u32 l3_bytes;   /* what the meter counts (see tg_parse) */
	__u16 flags;      /* enum pkt_flag bits */
	__u16 l3_proto;   /* ethertype after the VLAN tags, host order */
	__u16 l2_len;     /* Ethernet header plus VLAN tags */
	__u16 l3_off;
	__u16 l4_off;     /* where L4 starts, when the parser got there (0: not reached); read with TG_PKT_HAS_L4 */
	__u16 vlan_tci;   /* innermost tag's TCI, host order */
	__u8 vlan_depth;
	__u8 ip_ver;      /* 0 (not IP), 4 or 6 */
	__u8 l4_proto;    /* IPv4 protocol / last IPv6 next header */
	__u8 ipv6_ext;    /* extension headers walked */
	__u16 frag_off;   /* fragment offset in bytes (0 for first fragments and whole packets) */
	__u32 frag_id;    /* with TG_PKT_FRAGMENT: IPv4 identification / IPv6 fragment header identification, host order */
	__u8 icmp_type;   /* ICMP / ICMPv6, with TG_PKT_HAS_L4 */
	__u8 icmp_code;
	__be16 sport;     /* TCP / UDP, with TG_PKT_HAS_L4 */
	__be16 dport;
	__u8 tcp_flags;   /* TCP, with TG_PKT_HAS_L4 */
	__u8 tcp_doff;    /* TCP data offset in 32-bit words, with TG_PKT_HAS_L4 read from this packet's header */
	__u8 _pad[2];
	__u8 saddr[16];
	__u8 daddr[16];
};

/* Copies len bytes at off into to; 0 on success, < 0 when they are not all in the frame. */
static __always_inline int tg_load(void *ctx, enum pkt_ctx_kind kind, __u32 off, void *to, __u32 len)
{
	if (kind == TG_CTX_XDP)
		return bpf_xdp_load_bytes(ctx, off, to, len);
	return bpf_skb_load_bytes(ctx, off, to, len);
}

static __always_inline __u32 tg_frame_len(void *ctx, enum pkt_ctx_kind kind)
{
	/* XDP frames may be multi-buffer: data_end - data is only the first one. */
	if (kind == TG_CTX_XDP)
		return (__u32)bpf_xdp_get_buff_len(ctx);
	return ((struct __sk_buff *)ctx)->len;
}

/* How many bytes of its L4 header the parser reads for a protocol (0: none). */
static __always_inline __u32 tg_l4_need(__u8 proto)
{
	if (proto == TG_IPPROTO_TCP)
		return 14; /* up to the flags */
	if (proto == TG_IPPROTO_UDP || proto == TG_IPPROTO_SCTP)
		return 4; /* both start with source and destination port */
	if (proto == TG_IPPROTO_ICMP || proto == TG_IPPROTO_ICMPV6)
		return 2;
	return 0;
}

/* Only what later stages need: ports and TCP flags, ICMP type/code. */
static __always_inline void tg_l4_fields(struct pkt_meta *p, const __u8 *h)
{
	if (p->l4_proto == TG_IPPROTO_ICMP || p->l4_proto == TG_IPPROTO_ICMPV6) {
		p->icmp_type = h[0];
		p->icmp_code = h[1];
	} else {
		__builtin_memcpy(&p->sport, &h[0], 2);
		__builtin_memcpy(&p->dport, &h[2], 2);
		if (p->l4_proto == TG_IPPROTO_TCP) {
			p->tcp_doff = h[12] >> 4;
			p->tcp_flags = h[13];
		}
	}
	p->flags |= TG_PKT_HAS_L4;
}

static __always_inline void tg_parse_l4(void *ctx, enum pkt_ctx_kind kind, struct pkt_meta *p, __u32 off)
{
	__u8 h[14];
	__u32 need = tg_l4_need(p->l4_proto);

	p->l4_off = off;
	if (!need)
		return;
	if (tg_load(ctx, kind, off, h, need) < 0) {
		p->flags |= TG_PKT_TRUNCATED;
		return;
	}
	tg_l4_fields(p, h);
}

/*
 * L3 byte count: the length the IP header claims, unless the frame holds
 * less (then the bytes present, and TRUNCATED) or the header claims nothing
 * (IPv4 tot_len 0 / IPv6 payload_len 0: GSO super-packets beyond 64 KiB and
 * jumbograms; then the bytes present).
 */
static __always_inline void tg_l3_bytes(struct pkt_meta *p, __u32 claimed, bool claims_nothing)
{
	__u32 present = p->frame_len - p->l3_off;

	if (claims_nothing) {
		p->l3_bytes = present;
	} else if (claimed > present) {
		p->l3_bytes = present;
		p->flags |= TG_PKT_TRUNCATED | TG_PKT_L3_CUT;
	} else {
		/* Shorter than the frame: Ethernet padding is not traffic. */
		p->l3_bytes = claimed;
	}
}

static __always_inline void tg_parse_ipv4_hdr(void *ctx, enum pkt_ctx_kind kind, struct pkt_meta *p,
					      const struct iphdr *ip, bool want_l4)
{
	__u32 hlen, tot;
	__u16 frag;

	hlen = ip->ihl * 4;
	tot = bpf_ntohs(ip->tot_len);
	if (ip->version != 4 || hlen < sizeof(*ip) || (tot != 0 && tot < hlen)) {
		p->flags |= TG_PKT_MALFORMED;
		return;
	}
	tg_l3_bytes(p, tot, tot == 0);
	__builtin_memcpy(p->saddr, &ip->saddr, 4);
	__builtin_memcpy(p->daddr, &ip->daddr, 4);
	p->flags |= TG_PKT_HAS_ADDR;
	p->l4_proto = ip->protocol;
	frag = bpf_ntohs(ip->frag_off);
	if (frag & 0x3fff) { /* MF or a non-zero offset */
		p->flags |= TG_PKT_FRAGMENT;
		p->frag_id = bpf_ntohs(ip->id);
		p->frag_off = (frag & 0x1fff) * 8;
		if (p->frag_off)
			return; /* only the first fragment carries the L4 header */
	}
	/* Options (ihl > 5) are skipped, not parsed: nothing here needs them. */
	p->l4_off = p->l3_off + hlen;
	if (want_l4)
		tg_parse_l4(ctx, kind, p, p->l4_off);
}

static __always_inline void tg_parse_ipv4(void *ctx, enum pkt_ctx_kind kind, struct pkt_meta *p, bool want_l4)
{
	struct iphdr ip;

	p->ip_ver = 4;
	if (tg_load(ctx, kind, p->l3_off, &ip, sizeof(ip)) < 0) {
		p->flags |= TG_PKT_TRUNCATED;
		return;
	}
	tg_parse_ipv4_hdr(ctx, kind, p, &ip, want_l4);
}

static __always_inline void tg_parse_ipv6_hdr(void *ctx, enum pkt_ctx_kind kind, struct pkt_meta *p,
					      const struct ipv6hdr *hdr, bool want_l4)
{
	__u32 off;
	__u8 nh;
	int i;

	if (hdr->version != 6) {
		p->flags |= TG_PKT_MALFORMED;
		return;
	}
	tg_l3_bytes(p, sizeof(*hdr) + bpf_ntohs(hdr->payload_len), hdr->payload_len == 0);
	__builtin_memcpy(p->saddr, &hdr->saddr, 16);
	__builtin_memcpy(p->daddr, &hdr->daddr, 16);
	p->flags |= TG_PKT_HAS_ADDR;

	nh = hdr->nexthdr;
	off = p->l3_off + sizeof(*hdr);
	for (i = 0; i < TG_MAX_IPV6_EXT; i++) {
		__u8 eh[8];

		if (nh != TG_IPPROTO_HOPOPTS && nh != TG_IPPROTO_ROUTING && nh != TG_IPPROTO_FRAGMENT &&
		    nh != TG_IPPROTO_DSTOPTS && nh != TG_IPPROTO_AH)
			break;
		/* Every extension header is at least 8 bytes long. */
		if (tg_load(ctx, kind, off, eh, sizeof(eh)) < 0) {
			p->flags |= TG_PKT_TRUNCATED | TG_PKT_EXT_CUT;
			p->l4_proto = nh;
			return;
		}
		p->flags |= TG_PKT_IPV6_EXT;
		p->ipv6_ext++;
		if (nh == TG_IPPROTO_FRAGMENT) {
			__u16 fo = ((__u16)eh[2] << 8 | eh[3]) & 0xfff8;

			p->flags |= TG_PKT_FRAGMENT;
			p->frag_id = (__u32)eh[4] << 24 | (__u32)eh[5] << 16 | (__u32)eh[6] << 8 | eh[7];
			p->frag_off = fo;
			if (fo) {
				/* The rest of the chain is in the first fragment. */
				p->l4_proto = eh[0];
				return;
			}
			off += 8;
		} else if (nh == TG_IPPROTO_AH) {
			off += ((__u32)eh[1] + 2) * 4;
		} else {
			off += ((__u32)eh[1] + 1) * 8;
		}
		nh = eh[0];
	}
	p->l4_proto = nh;
	if (nh == TG_IPPROTO_HOPOPTS || nh == TG_IPPROTO_ROUTING || nh == TG_IPPROTO_FRAGMENT ||
	    nh == TG_IPPROTO_DSTOPTS || nh == TG_IPPROTO_AH) {
		/* Gave up walking: whatever follows is not trusted as L4. */
		p->flags |= TG_PKT_EXT_LIMIT;
		return;
	}
	p->l4_off = off;
	if (want_l4)
		tg_parse_l4(ctx, kind, p, off);
}

static __always_inline void tg_parse_ipv6(void *ctx, enum pkt_ctx_kind kind, struct pkt_meta *p, bool want_l4)
{
	struct ipv6hdr ip6;

	p->ip_ver = 6;
	if (tg_load(ctx, kind, p->l3_off, &ip6, sizeof(ip6)) < 0) {
		p->flags |= TG_PKT_TRUNCATED;
		return;
	}
	tg_parse_ipv6_hdr(ctx, kind, p, &ip6, want_l4);
}

/*
 * The general path: VLAN tags, short and odd frames. Kept out of line (a
 * BPF-to-BPF call) so the per-packet fast path stays small in the i-cache.
 * Returns the L2 length, or 0 when no L2 header is complete (nothing to
 * count as L3). The caller uses it: a result nobody reads lets clang drop
 * the return value and leave whatever r0 held, possibly a stack pointer the
 * verifier refuses to hand back.
 */
static __noinline int tg_parse_general(void *ctx, enum pkt_ctx_kind kind, struct pkt_meta *p, bool want_l4)
{
	struct {
		__u8 dst[6];
		__u8 src[6];
		__be16 proto;
	} eth;
	__u16 proto;
	__u32 off = TG_ETH_HLEN;
	int i;

	if (tg_load(ctx, kind, 0, &eth, sizeof(eth)) < 0) {
		/* No complete L2 header, so no L3 bytes; the packet still counts. */
		p->flags |= TG_PKT_SHORT | TG_PKT_TRUNCATED;
		return 0;
	}
	proto = bpf_ntohs(eth.proto);

	for (i = 0; i < TG_MAX_VLAN_DEPTH; i++) {
		__be16 tag[2]; /* TCI, encapsulated ethertype */

		if (proto != TG_ETH_P_8021Q && proto != TG_ETH_P_8021AD)
			break;
		if (tg_load(ctx, kind, off, tag, sizeof(tag)) < 0) {
			p->flags |= TG_PKT_TRUNCATED;
			break;
		}
		p->flags |= TG_PKT_VLAN;
		p->vlan_depth++;
		p->vlan_tci = bpf_ntohs(tag[0]);
		proto = bpf_ntohs(tag[1]);
		off += sizeof(tag);
	}
	p->l2_len = off;
	p->l3_proto = proto;
	p->l3_off = off;

	if (p->flags & TG_PKT_TRUNCATED) {
		/* A tag that is cut off: what is left is L2, nothing to count. */
		return 0;
	}
	if (proto == TG_ETH_P_8021Q || proto == TG_ETH_P_8021AD)
		p->flags |= TG_PKT_VLAN_LIMIT;
	else if (proto == TG_ETH_P_IP)
		tg_parse_ipv4(ctx, kind, p, want_l4);
	else if (proto == TG_ETH_P_IPV6)
		tg_parse_ipv6(ctx, kind, p, want_l4);

	return off;
}

/*
 * Parses ctx into *p. l3_bytes is:
 *  - IPv4: tot_len; IPv6: 40 + payload_len (bounded by the frame, see
 *    tg_l3_bytes);
 *  - anything else, including IP headers that are cut off or malformed: the
 *    frame minus its L2 header(s);
 *  - frames shorter than an Ethernet header, or cut inside a VLAN tag: 0
 *    (TG_PKT_SHORT / TG_PKT_TRUNCATED): no L2 header is complete.
 */
/* Ethernet header plus a whole IPv6 (or IPv4 without options) header. */
#define TG_HEAD_LEN (TG_ETH_HLEN + 40)

/*
 * The first TG_HEAD_LEN bytes of the frame with as little work as possible:
 * a pointer into the packet when the linear area holds them, else one helper
 * call that copies them to buf + 2 (so that the IP header after the 14-byte
 * Ethernet header lands 8-byte aligned on the stack, where the verifier
 * insists on aligned loads). NULL when the frame is shorter.
 */
static __always_inline const __u8 *tg_head(void *ctx, enum pkt_ctx_kind kind, __u32 frame_len, __u8 *buf)
{
	void *data, *end;

	if (frame_len < TG_HEAD_LEN)
		return NULL;
	if (kind == TG_CTX_XDP) {
		data = (void *)(long)((struct xdp_md *)ctx)->data;
		end = (void *)(long)((struct xdp_md *)ctx)->data_end;
	} else {
		data = (void *)(long)((struct __sk_buff *)ctx)->data;
		end = (void *)(long)((struct __sk_buff *)ctx)->data_end;
	}
	if (data + TG_HEAD_LEN <= end)
		return data;
	if (tg_load(ctx, kind, 0, buf + 2, TG_HEAD_LEN) < 0)
		return NULL;
	return buf + 2;
}

/*
 * L4 fields for free when the header already read holds them: IPv4 without
 * options puts L4 at 34, inside the 54 bytes (a constant offset, so the
 * verifier can check it against the packet range), provided they lie inside
 * the datagram and not in Ethernet padding.
 */
#define TG_L4_OFF_V4 (TG_ETH_HLEN + 20)
static __always_inline void tg_l4_from_head(struct pkt_meta *p, const __u8 *head)
{
	__u32 need = tg_l4_need(p->l4_proto);

	if (!need || p->l4_off != TG_L4_OFF_V4 || TG_L4_OFF_V4 + need > p->l3_off + p->l3_bytes)
		return;
	tg_l4_fields(p, head + TG_L4_OFF_V4);
}

/*
 * Parses ctx into *p. l3_bytes is:
 *  - IPv4: tot_len; IPv6: 40 + payload_len (bounded by the frame, see
 *    tg_l3_bytes);
 *  - anything else, including IP headers that are cut off or malformed: the
 *    frame minus its L2 header(s);
 *  - frames shorter than an Ethernet header, or cut inside a VLAN tag: 0
 *    (TG_PKT_SHORT / TG_PKT_TRUNCATED): no L2 header is complete.
 * want_l4 (a compile-time constant) also reads ports / ICMP type; the meter
 * does without and reads them later (tg_parse_l4 at l4_off) only when a
 * traffic class needs ports.
 *
 * Fast path: untagged IPv4/IPv6 is parsed from tg_head() (no helper call for
 * linear packets, one for non-linear ones); VLAN tags, short frames and
 * everything else take the general path, which reads header by header.
 */
static __always_inline void tg_parse_ex(void *ctx, enum pkt_ctx_kind kind, struct pkt_meta *p, bool want_l4)
{
	__u8 buf[TG_HEAD_LEN + 2] __attribute__((aligned(8)));
	const __u8 *head;
	__u16 proto;
	int off;

	__builtin_memset(p, 0, sizeof(*p));
	p->frame_len = tg_frame_len(ctx, kind);

	/* At tc the kernel may already have moved the outer tag to skb->vlan_tci. */
	if (kind == TG_CTX_SKB && ((struct __sk_buff *)ctx)->vlan_present) {
		p->flags |= TG_PKT_VLAN;
		p->vlan_depth = 1;
		p->vlan_tci = ((struct __sk_buff *)ctx)->vlan_tci;
	}

	head = tg_head(ctx, kind, p->frame_len, buf);
	if (head) {
		proto = bpf_ntohs(*(const __be16 *)(head + 12));
		if (proto == TG_ETH_P_IP || proto == TG_ETH_P_IPV6) {
			p->l2_len = TG_ETH_HLEN;
			p->l3_off = TG_ETH_HLEN;
			p->l3_proto = proto;
			if (proto == TG_ETH_P_IP) {
				p->ip_ver = 4;
				tg_parse_ipv4_hdr(ctx, kind, p, (const struct iphdr *)(head + TG_ETH_HLEN), want_l4);
				if (!want_l4 && p->l4_off)
					tg_l4_from_head(p, head);
			} else {
				p->ip_ver = 6;
				tg_parse_ipv6_hdr(ctx, kind, p, (const struct ipv6hdr *)(head + TG_ETH_HLEN), want_l4);
			}
			if (!(p->flags & TG_PKT_HAS_ADDR))
				p->l3_bytes = p->frame_len - TG_ETH_HLEN;
			return;
		}
	}

	off = tg_parse_general(ctx, kind, p, want_l4);
	if (off && !(p->flags & TG_PKT_HAS_ADDR))
		p->l3_bytes = p->frame_len - off;
}

/*
 * The same for a cgroup_skb context, whose data starts at the IP header
 * (no L2: l2_len and l3_off are 0). Non-IP (never seen there in practice)
 * and cut or malformed IP headers count the whole skb as L3 bytes.
 */
static __always_inline void tg_parse_l3(struct __sk_buff *skb, struct pkt_meta *p, bool want_l4)
{
	__u8 buf[40 + 8] __attribute__((aligned(8)));
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	const void *hdr;
	__u32 need;

	__builtin_memset(p, 0, sizeof(*p));
	p->frame_len = skb->len;
	p->l3_proto = bpf_ntohs(skb->protocol);
	if (p->l3_proto == TG_ETH_P_IP) {
		p->ip_ver = 4;
		need = sizeof(struct iphdr);
	} else if (p->l3_proto == TG_ETH_P_IPV6) {
		p->ip_ver = 6;
		need = sizeof(struct ipv6hdr);
	} else {
		p->l3_bytes = p->frame_len;
		return;
	}
	if (data + need <= end)
		hdr = data;
	else if (bpf_skb_load_bytes(skb, 0, buf, need) == 0)
		hdr = buf;
	else
		hdr = NULL;
	if (!hdr)
		p->flags |= TG_PKT_TRUNCATED;
	else if (p->ip_ver == 4)
		tg_parse_ipv4_hdr(skb, TG_CTX_L3, p, hdr, want_l4);
	else
		tg_parse_ipv6_hdr(skb, TG_CTX_L3, p, hdr, want_l4);
	if (!(p->flags & TG_PKT_HAS_ADDR))
		p->l3_bytes = p->frame_len;
}

static __always_inline void tg_parse(void *ctx, enum pkt_ctx_kind kind, struct pkt_meta *p)
{
	if (kind == TG_CTX_L3)
		tg_parse_l3(ctx, p, true);
	else
		tg_parse_ex(ctx, kind, p, true);
}

#endif /* TOLLGATE_PARSE_H */
