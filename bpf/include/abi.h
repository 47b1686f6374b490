/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one definition of everything shared by the kernel programs and the
 * TypeScript control plane. tools/gen-abi reads these types back from the
 * compiled objects' BTF and writes src/kernel/abi.gen.ts, so nothing here is
 * ever mirrored by hand.
 *
 * Rules: fixed-width types only, explicit padding, byte order in field names
 * (_be = network order; everything else is host order), constants as enums
 * (a #define never reaches BTF), and a _Static_assert on every struct size.
 * A type reaches BTF only when an object uses it: every struct here must key
 * or value a map, and every enum must be used by one or anchored with
 * TG_BTF_ANCHOR (bpf/lib/btf_anchor.h); tools/gen-abi/gen.test.ts fails
 * otherwise.
 */
#ifndef TOLLGATE_ABI_H
#define TOLLGATE_ABI_H

/* Limits and well-known values. */
enum tg_limits {
	/* Default size of the tenant counter array; the agent may change it
	 * before load (bpf_map__set_max_entries) and mirrors it in
	 * tg_cfg_max_tenants. */
	TG_MAX_TENANTS = 4096,
	/* Tenant id 0 is never given to a policy tenant: it is the books'
	 * "unattributed" row, so traffic that matches nobody is still counted. */
	TG_TENANT_UNATTRIBUTED = 0,
	/* Interfaces with an ifindex at or above this cannot be attributed by
	 * interface (select their tenant by address instead): tg_tenant_iface is
	 * an array indexed by ifindex, so the lookup costs no hashing. */
	TG_MAX_IFINDEX = 65536,
	TG_MAX_PREFIXES = 65536,
	/* How many 802.1Q/802.1ad tags the parser walks (QinQ = 2). */
	TG_MAX_VLAN_DEPTH = 2,
	/* How many IPv6 extension headers the parser walks before giving up. */
	TG_MAX_IPV6_EXT = 8,
	/* Default class capacity of the counter array (ids 0..15); the agent
	 * may change it before load and mirrors it in tg_cfg_max_classes.
	 * Class ids are issued by the ledger and never reused, so a counter
	 * slot always means the same class for the life of the pin. */
	TG_MAX_CLASSES = 16,
	/* The fallback class ("internet"): traffic no other class matches. */
	TG_CLASS_DEFAULT = 0,
	/* Classes one policy generation may define besides the default; a
	 * class is a bit of a __u32 mask, its bit is its position in the
	 * policy (lowest bit wins: first match in document order). */
	TG_MAX_CLASS_RULES = 32,
	/* Cgroups tg_tenant_cgroup can map to tenants (both generations share it). */
	TG_MAX_CGROUPS = 65536,
	/* Per-container counter slots (tg_container_counters); slot 0 = no container. */
	TG_MAX_CONTAINERS = 4096,
	/* How far above a socket's cgroup the cgroup hooks look for a mapped
	 * ancestor (a container's own sub-cgroups, pods under a tenant slice). */
	TG_MAX_CGROUP_DEPTH = 16,
	/* Fragmented datagrams whose ports are remembered for their later fragments (LRU). */
	TG_MAX_FRAG_FLOWS = 16384,
	/* Ports are looked up in an array indexed generation * 65536 + port. */
	TG_PORTS = 65536,
	/* Protocols are looked up in an array indexed generation * 256 + protocol. */
	TG_PROTOCOLS = 256,
	/* Default capacity of tg_flows (LRU, preallocated); the agent may
	 * change it before load (bpf_map__set_max_entries). */
	TG_MAX_FLOWS = 65536,
	/* IPv4 class CIDRs a generation keeps in tg_class_gen itself, scanned
	 * in the program instead of walking the tg_class_v4 trie. */
	TG_CLASS_INLINE_V4 = 16,
};

/* Direction as seen from the tenant, never from the host. */
enum tg_direction {
	TG_DIR_INGRESS = 0, /* towards the tenant */
	TG_DIR_EGRESS = 1,  /* from the tenant */
	TG_DIR_MAX = 2,
};

/* Which side of a hook a program runs on, as seen from the host. */
enum tg_hook {
	TG_HOOK_INGRESS = 0,
	TG_HOOK_EGRESS = 1,
};

/*
 * Why a packet was counted the way it was. Every packet is counted (bytes and
 * packets in tg_meter_counters, unless a quota refuses it) AND, when
 * something about it is notable, here.
 * Index into struct tg_meter_reasons (the per-CPU value of tg_meter_reasons).
 */
enum tg_meter_reason {
	TG_REASON_IPV4 = 0,
	TG_REASON_IPV6 = 1,
	TG_REASON_NON_IP = 2,        /* ARP, LLDP, ...: counted by interface owner or unattributed */
	TG_REASON_TRUNCATED = 3,     /* frame shorter than its headers claim */
	TG_REASON_FRAGMENT = 4,      /* any IPv4/IPv6 fragment */
	TG_REASON_VLAN = 5,          /* carried at least one 802.1Q/802.1ad tag */
	TG_REASON_IPV6_EXT = 6,      /* carried IPv6 extension headers */
	TG_REASON_IPV6_EXT_LIMIT = 7,/* more extension headers than TG_MAX_IPV6_EXT */
	TG_REASON_BAD_INDEX = 8,     /* tenant id beyond the counter array: counted as unattributed */
	TG_REASON_BY_IFACE = 9,      /* attributed by interface owner */
	TG_REASON_BY_ADDR = 10,      /* attributed by address */
	TG_REASON_UNATTRIBUTED = 11,
	TG_REASON_MALFORMED = 12,    /* IP header that cannot be right (version, ihl, tot_len < header): counted, never trusted for attribution */
	TG_REASON_FRAG_NO_PORTS = 13,/* a later fragment whose class needed the first fragment's ports, which were not seen (out of order, evicted) */
	TG_REASON_BY_CGROUP = 14,    /* attributed by the sending/receiving socket's cgroup (cgroup_skb hooks) */
	TG_REASON_QUOTA_DROP = 15,   /* refused by a quota (block, or over its throttle rate): in no billing counter */
	TG_REASON_MAX = 16,
};

/*
 * Value of tg_meter_reasons, its one per-CPU slot: packets per reason. One
 * value rather than an array slot per reason, so a packet's reasons cost one
 * lookup and one cache line.
 */
enum tg_meter_reason_slots {
	/* A power of two: the program indexes n[reason & (slots - 1)], which the
	 * verifier can bound whatever clang makes of the range check before it.
	 * Slots from TG_REASON_MAX on stay 0. */
	TG_REASON_SLOTS = 16,
};
_Static_assert(TG_REASON_MAX <= TG_REASON_SLOTS && (TG_REASON_SLOTS & (TG_REASON_SLOTS - 1)) == 0, "reason slots");

struct tg_meter_reasons {
	__u64 n[TG_REASON_SLOTS];
};
_Static_assert(sizeof(struct tg_meter_reasons) == 8 * TG_REASON_SLOTS, "tg_meter_reasons size");

/*
 * Value of tg_meter_counters, one per (tenant, class, direction), per-CPU,
 * at index (tenant_id * tg_cfg_max_classes + class_id) * TG_DIR_MAX + direction.
 */
struct tg_counter {
	__u64 packets;
	__u64 bytes; /* L3 bytes: IPv4 tot_len, IPv6 40 + payload_len; L2 payload for non-IP */
};
_Static_assert(sizeof(struct tg_counter) == 16, "tg_counter size");

/*
 * Policy generation: tenant lookup keys carry the generation they belong to,
 * and tg_meter_config.generation says which one is live. The agent writes a
 * whole new generation, flips the switch with one array update, then deletes
 * the old one: no packet ever sees half a policy.
 */
struct tg_meter_config {
	__u32 generation; /* 0 or 1 */
	__u32 flags;      /* enum tg_meter_flag bits */
	/* Network namespace (inode) of the interfaces in tg_metered_iface: the
	 * cgroup hooks leave packets that cross one of them to that hook. */
	__u32 metered_netns;
	__u32 pad;
};
_Static_assert(sizeof(struct tg_meter_config) == 16, "tg_meter_config size");

/* Key of tg_tenant_cgroup: a cgroup v2 id (its directory's inode) in one generation. */
struct tg_cgroup_key {
	__u64 cgroup_id;
	__u32 generation;
	__u32 pad;
};
_Static_assert(sizeof(struct tg_cgroup_key) == 16, "tg_cgroup_key size");

/* Value of tg_tenant_cgroup: the tenant, and the container's counter slot (0 = not a container). */
struct tg_cgroup_ref {
	__u32 tenant_id;
	__u32 container_slot;
};
_Static_assert(sizeof(struct tg_cgroup_ref) == 8, "tg_cgroup_ref size");

/* LPM-trie keys. prefixlen counts the generation byte: 8 + address prefix. */
struct tg_lpm_v4_key {
	__u32 prefixlen;
	__u8 generation;
	__u8 addr_be[4];
	__u8 pad[3];
};
_Static_assert(sizeof(struct tg_lpm_v4_key) == 12, "tg_lpm_v4_key size");

struct tg_lpm_v6_key {
	__u32 prefixlen;
	__u8 generation;
	__u8 addr_be[16];
	__u8 pad[3];
};
_Static_assert(sizeof(struct tg_lpm_v6_key) == 24, "tg_lpm_v6_key size");

/*
 * Logical key of tg_tenant_iface, an ARRAY of struct tg_tenant_ref whose
 * index is ifindex * 2 + generation (tenant_id 0 in a slot = not owned).
 */
struct tg_iface_key {
	__u32 ifindex;
	__u32 generation;
};
_Static_assert(sizeof(struct tg_iface_key) == 8, "tg_iface_key size");

/* Value of every tenant lookup map. */
struct tg_tenant_ref {
	__u32 tenant_id;
	__u32 flags; /* reserved, 0 */
};
_Static_assert(sizeof(struct tg_tenant_ref) == 8, "tg_tenant_ref size");

/*
 * Key of tg_frag_ports: one fragmented datagram (RFC 791 / RFC 8200: the
 * addresses, protocol and identification), addresses in network order, IPv4
 * in the first 4 bytes of each.
 */
struct tg_frag_key {
	__u8 saddr_be[16];
	__u8 daddr_be[16];
	__u32 id;
	__u8 ip_ver;
	__u8 proto;
	__u8 pad[2];
};
_Static_assert(sizeof(struct tg_frag_key) == 40, "tg_frag_key size");

/* The L4 ports of a fragmented datagram, from its first fragment. */
struct tg_frag_ports {
	__be16 sport_be;
	__be16 dport_be;
};
_Static_assert(sizeof(struct tg_frag_ports) == 4, "tg_frag_ports size");

/* One IPv4 class CIDR kept inline in tg_class_gen. */
struct tg_class_v4_cidr {
	__be32 addr_be;  /* network address, network order */
	__be32 mask_be;  /* netmask, network order */
	__u32 classes;   /* bits of the classes listing exactly this CIDR */
};
_Static_assert(sizeof(struct tg_class_v4_cidr) == 12, "tg_class_v4_cidr size");

enum tg_class_gen_flag {
	/* The generation's IPv4 CIDRs are v4[0..n_v4) below, and tg_class_v4
	 * holds none of them: a few compares on a cache line already loaded
	 * cost less than a trie walk (docs/metering.md, "Cost per packet"). */
	TG_CLASS_V4_INLINE = 1 << 0,
};

/*
 * Traffic classes of one generation (tg_class_gen, indexed by generation).
 * A packet's class is the first class (lowest bit) of
 *   (peer address's mask in tg_class_v4/v6, or any_cidr when no prefix
 *    matches; a prefix's mask already includes any_cidr; with
 *    TG_CLASS_V4_INLINE, an IPv4 peer's mask is any_cidr | the classes of
 *    every inline CIDR containing it, which is the same set)
 *   & tg_class_proto[gen * 256 + protocol]
 *   & (any_port | tg_class_port[gen * 65536 + sport] | ...[dport])
 *   & active
 * mapped to its id by tg_class_ids[gen * TG_MAX_CLASS_RULES + bit];
 * TG_CLASS_DEFAULT when the mask is empty or the packet is not IP.
 */
struct tg_class_gen {
	__u32 active;   /* bits of the classes this generation defines; 0 = no classes */
	__u32 any_cidr; /* classes without a CIDR condition */
	__u32 any_port; /* classes without a port condition */
	__u32 flags;    /* enum tg_class_gen_flag */
	__u32 n_v4;     /* inline IPv4 CIDRs in use (TG_CLASS_V4_INLINE) */
	struct tg_class_v4_cidr v4[TG_CLASS_INLINE_V4];
};
_Static_assert(sizeof(struct tg_class_gen) == 20 + 12 * TG_CLASS_INLINE_V4, "tg_class_gen size");

/*
 * Bits of tg_meter_config.flags: switched at run time with the same array
 * update as the generation, so no program is reloaded.
 */
enum tg_meter_flag {
	TG_METER_FLOWS = 1 << 0, /* record per-flow analytics in tg_flows */
};

/*
 * Key of tg_flows: one flow as one tenant sees it in one direction (the
 * direction and tenant of the billing counter the packet went to, so
 * tenant-to-tenant traffic is one flow of each). Addresses in network order,
 * IPv4 in the first 4 bytes (the rest 0). Ports are TCP/UDP/SCTP ports, 0 for
 * every other protocol (ICMP included) and for a later fragment whose first
 * fragment was not seen.
 */
struct tg_flow_key {
	__u8 saddr_be[16];
	__u8 daddr_be[16];
	__be16 sport_be;
	__be16 dport_be;
	__u32 tenant_id;
	__u8 ip_ver;    /* 4 or 6 */
	__u8 proto;     /* IPv4 protocol / last IPv6 next header */
	__u8 direction; /* enum tg_direction */
	__u8 pad;
};
_Static_assert(sizeof(struct tg_flow_key) == 44, "tg_flow_key size");

/*
 * Value of tg_flows. Analytics, never billing truth: the entry may be evicted
 * at any time (LRU). Times are bpf_ktime_get_ns(): CLOCK_MONOTONIC in
 * nanoseconds, which stops during suspend and restarts at boot.
 */
struct tg_flow {
	__u64 packets;
	__u64 bytes;         /* L3 bytes, as the billing counters count them */
	__u64 first_seen_ns; /* the packet that created the entry */
	__u64 last_seen_ns;  /* the latest packet */
	__u32 class_id;      /* traffic class of the latest packet */
	__u32 pad;
};
_Static_assert(sizeof(struct tg_flow) == 40, "tg_flow size");

/*
 * Index into tg_flow_stats (per-CPU array of __u64). While flows are on,
 * every metered packet bumps exactly one of UPDATED, INSERTED,
 * INSERT_FAILED, LOOKUP_FAILED and NO_ADDR, and possibly FRAG_NO_PORTS.
 * The kernel does not report LRU evictions; the agent derives them as
 * INSERTED minus the entries it finds in the map.
 */
enum tg_flow_stat {
	TG_FLOW_UPDATED = 0,       /* added to an existing flow */
	TG_FLOW_INSERTED = 1,      /* created a flow */
	TG_FLOW_INSERT_FAILED = 2, /* its new flow could not be inserted: in no flow */
	TG_FLOW_LOOKUP_FAILED = 3, /* another CPU created its flow first, which was gone again: in no flow */
	TG_FLOW_NO_ADDR = 4,       /* no trusted IP header (non-IP, cut, malformed): no 5-tuple, in no flow */
	TG_FLOW_FRAG_NO_PORTS = 5, /* a later fragment whose first fragment was not seen: in a flow with ports 0 */
	TG_FLOW_STAT_MAX = 6,
};

/*
 * ---- Quotas enforced in the datapath (docs/billing.md, "Enforcement") ----
 *
 * A quota is a byte budget per tenant and period over some of its billable
 * (class, direction) counters. Each counter index of tg_meter_counters has a
 * struct tg_quota_refs in tg_quota_refs naming up to TG_QUOTA_REFS quota
 * slots its packets consume. The agent writes struct tg_quota_cfg; the
 * programs alone write struct tg_quota_state (the agent only seeds a new
 * slot), with atomic adds, so a budget is never overspent by more than one
 * packet per CPU.
 */
enum tg_quota_limits {
	/* Quota slots; slot 0 means "no quota". */
	TG_MAX_QUOTAS = 1024,
	/* Quotas one (tenant, class, direction) counter can feed. */
	TG_QUOTA_REFS = 4,
	/* Alert thresholds per quota the datapath reports when crossed. */
	TG_QUOTA_MARKS = 4,
	/* tg_quota_cfg.class_id of a quota over every billable class. */
	TG_QUOTA_ALL_CLASSES = 0xffff,
};

/* What happens to a quota's traffic once its budget is spent. */
enum tg_quota_action {
	TG_QUOTA_NONE = 0,     /* counted and reported only */
	TG_QUOTA_THROTTLE = 1, /* policed to tg_quota_cfg.rate */
	TG_QUOTA_BLOCK = 2,    /* dropped until the period renews */
};

/* Value of tg_quota_refs, indexed like tg_meter_counters: 0 = unused. */
struct tg_quota_refs {
	__u16 slot[TG_QUOTA_REFS];
};
_Static_assert(sizeof(struct tg_quota_refs) == 2 * TG_QUOTA_REFS, "tg_quota_refs size");

/*
 * Value of tg_quota_cfg, by slot; written by the agent only. Times are TAI
 * nanoseconds (bpf_ktime_get_tai_ns, CLOCK_TAI), which follow the wall
 * clock, so period boundaries computed from calendar dates hold.
 */
struct tg_quota_cfg {
	__u64 limit;                  /* budget in L3 bytes per period */
	__u64 marks[TG_QUOTA_MARKS];  /* alert thresholds in bytes, ascending; 0 = unused */
	__u64 rate;                   /* THROTTLE: bytes per second once the budget is spent */
	__u64 burst_ns;               /* THROTTLE: how far ahead of the rate a burst may run */
	__u64 period_end_ns;          /* end of the period the agent sees running */
	__u64 next_end_ns;            /* end of the period after it: the datapath renews on its own */
	/* Identity, so a restarted agent finds its slots; the datapath ignores it. */
	__u32 tenant_id;
	__u16 class_id;               /* or TG_QUOTA_ALL_CLASSES */
	__u8 dirs;                    /* bit 1 << enum tg_direction */
	__u8 period;                  /* the agent's period kind */
	__u32 action;                 /* enum tg_quota_action */
	__u32 pad;
};
_Static_assert(sizeof(struct tg_quota_cfg) == 88, "tg_quota_cfg size");

enum tg_quota_state_flag {
	TG_QUOTA_EXHAUSTED = 1 << 0, /* a packet was refused or policed in this period (event sent) */
};

/* Value of tg_quota_state, by slot; written by the programs (atomically). */
struct tg_quota_state {
	__u64 used;           /* L3 bytes let through in the period ending period_end_ns */
	__u64 period_end_ns;  /* TAI; a packet at or after it renews the period */
	__u64 tat_ns;         /* THROTTLE: theoretical arrival time of the rate (GCRA) */
	__u32 flags;          /* enum tg_quota_state_flag */
	__u32 pad;
};
_Static_assert(sizeof(struct tg_quota_state) == 32, "tg_quota_state size");

enum tg_quota_event_kind {
	TG_QEV_THRESHOLD = 0, /* used crossed marks[mark] */
	TG_QEV_EXHAUSTED = 1, /* the first packet refused (BLOCK) or policed (THROTTLE) this period */
	TG_QEV_RENEWED = 2,   /* a new period began: used went back to 0 */
};

/* One record of the tg_quota_events ring buffer. */
struct tg_quota_event {
	__u64 at_ns;          /* TAI */
	__u64 used;           /* the quota's bytes after this packet */
	__u64 period_end_ns;  /* the period the event belongs to */
	__u32 slot;
	__u32 kind;           /* enum tg_quota_event_kind */
	__u32 mark;           /* THRESHOLD: index into tg_quota_cfg.marks */
	__u32 pad;
};
_Static_assert(sizeof(struct tg_quota_event) == 40, "tg_quota_event size");


/*
 * ---- Firewall (docs/security.md) ----
 *
 * The security policy's rules, in document order, are the bits of a struct
 * tg_fw_mask (bit i = rule i; the lowest set bit is the first match). Each
 * condition of a packet (source prefix, destination prefix, protocol,
 * destination port, the tenants on either side) looks up the mask of the
 * rules it satisfies; the AND of those masks holds every rule the packet
 * matches. Everything is kept per generation (0/1): the agent writes the idle
 * one, then flips tg_fw_live, so a packet sees one policy or the other.
 */
/* Value bits of tg_metered_iface (by ifindex): what this datapath does at the interface's hooks. */
enum tg_iface_flag {
	TG_IFACE_METERED = 1 << 0,
	TG_IFACE_FILTERED = 1 << 1,
};

enum tg_fw_limits {
	TG_FW_MASK_WORDS = 4,
	TG_FW_MAX_RULES = 256,       /* 64 * TG_FW_MASK_WORDS */
	/* Hit-counter slots; slot 0 counts the default action. A rule keeps its
	 * slot (by name) across reloads, so its counters stay monotonic. */
	TG_FW_MAX_SLOTS = 1024,
	TG_FW_MAX_PREFIXES = 262144, /* per trie, both generations together */
	TG_FW_MAX_TENANT_KEYS = 8192,
	TG_RL_MAX = 64,              /* rate limits per generation: standing ones first, then rate-limit rules' */
	TG_RL_MAX_STANDING = 16,     /* standing limits (security.rateLimits) a packet is checked against */
	TG_RL_MAX_BUCKETS = 65536,   /* token buckets: sources, destinations, tenants being limited within their fill time */
};

/* What a rule (or the default) does with the packets it matches. */
enum tg_fw_action {
	TG_FW_ALLOW = 0,
	TG_FW_DENY = 1,
	TG_FW_LOG = 2,        /* let through and report */
	TG_FW_RATE_LIMIT = 3,
	TG_FW_REDIRECT = 4,
};

struct tg_fw_mask {
	__u64 w[TG_FW_MASK_WORDS];
};
_Static_assert(sizeof(struct tg_fw_mask) == 8 * TG_FW_MASK_WORDS, "tg_fw_mask size");

enum tg_fw_gen_flag {
	TG_FW_ON = 1 << 0,          /* this generation filters (the policy has a security section) */
	TG_FW_TENANT_KEYS = 1 << 1, /* some rule names a tenant: look up tg_fw_tenant */
	TG_FW_SIDES = 1 << 2,       /* some rule depends on which side is a tenant */
	TG_FW_SRC = 1 << 3,         /* some rule has source prefixes: look up tg_fw_src_* */
	TG_FW_DST = 1 << 4,         /* some rule has destination prefixes: look up tg_fw_dst_* */
	TG_FW_L7 = 1 << 5,          /* L7 signatures: scan TCP payload towards tg_l7_port ports (tc only) */
	TG_FW_PROTO = 1 << 6,       /* some rule has a protocol (or port) condition: look up tg_fw_proto */
	TG_FW_PORTS = 1 << 7,       /* some rule has ports: look up tg_fw_port */
	/* A prefix table (enum tg_fw_pfx_table) kept as exact-match hashes by
	 * length, in tg_fw_pfx_v4/v6, instead of in its trie: TG_FW_HASH_SRC4 << table. */
	TG_FW_HASH_SRC4 = 1 << 8,
	TG_FW_HASH_SRC6 = 1 << 9,
	TG_FW_HASH_DST4 = 1 << 10,
	TG_FW_HASH_DST6 = 1 << 11,
};

/*
 * The four prefix tables of a generation: source and destination, IPv4 and
 * IPv6. A table whose prefixes have at most TG_FW_PFX_LENS distinct lengths
 * is kept as exact-match hashes, looked up once per length, longest first:
 * for a deny list of /32s or /24s that is one hash lookup, where the LPM
 * trie walks a node per prefix bit it shares with its neighbours (about
 * 55 ns against 10 for 10,000 /29s). Other tables stay in the tries.
 */
enum tg_fw_pfx_table {
	TG_FW_PFX_SRC4 = 0,
	TG_FW_PFX_SRC6 = 1,
	TG_FW_PFX_DST4 = 2,
	TG_FW_PFX_DST6 = 3,
	TG_FW_PFX_TABLES = 4,
	TG_FW_PFX_LENS = 4, /* lengths a hashed table may have */
};

/* Keys of tg_fw_pfx_v4 / tg_fw_pfx_v6: a prefix of a hashed table, host bits zero. */
struct tg_fw_pfx_v4_key {
	__u8 generation;
	__u8 table;     /* enum tg_fw_pfx_table */
	__u8 prefixlen; /* 0 .. 32 */
	__u8 pad;
	__u8 addr_be[4];
};
_Static_assert(sizeof(struct tg_fw_pfx_v4_key) == 8, "tg_fw_pfx_v4_key size");

struct tg_fw_pfx_v6_key {
	__u8 generation;
	__u8 table;
	__u8 prefixlen; /* 0 .. 128 */
	__u8 pad;
	__u8 addr_be[16];
};
_Static_assert(sizeof(struct tg_fw_pfx_v6_key) == 20, "tg_fw_pfx_v6_key size");

/* Bits of tg_fw_live (slot 0): one lookup tells the programs whether to filter and with which generation. */
enum tg_fw_live_flag {
	TG_FW_LIVE_GEN = 1 << 0, /* the live generation (0 or 1) */
	TG_FW_LIVE_ON = 1 << 1,  /* the live generation filters: without it the firewall costs one array lookup */
	TG_FW_LIVE_DDOS = 1 << 2,       /* count traffic per destination and source ("Floods and scans") */
	TG_FW_LIVE_SCAN = 1 << 3,       /* count distinct ports per source */
	TG_FW_LIVE_BLOCK_SRC = 1 << 4,  /* tg_block_src may hold entries: look it up */
	TG_FW_LIVE_BLOCK_REFL = 1 << 5, /* tg_block_refl may hold entries */
};

/* Value of tg_fw_gen, indexed by generation. */
struct tg_fw_gen {
	struct tg_fw_mask active;      /* the rules of this generation */
	struct tg_fw_mask any_port;    /* rules without a port condition: all a packet without ports can match */
	struct tg_fw_mask to_tenant;   /* side masks of a tenant no rule names (see struct tg_fw_tenant_key) */
	struct tg_fw_mask from_tenant;
	struct tg_fw_mask any_side;    /* rules that hold whichever side is a tenant, or none */
	__u32 flags;                   /* enum tg_fw_gen_flag */
	__u32 log_rate;                /* events a log rule (or the log default) may send per CPU and second */
	__u8 default_action;           /* enum tg_fw_action: ALLOW, DENY or LOG */
	__u8 standing;                 /* standing rate limits: tg_rl_cfg indices 0 .. standing - 1 */
	__u8 pfx_n[TG_FW_PFX_TABLES];  /* a hashed table's lengths (TG_FW_HASH_SRC4 << table) ... */
	__u8 pfx_lens[TG_FW_PFX_TABLES * TG_FW_PFX_LENS]; /* ... at table * TG_FW_PFX_LENS, longest first */
	__u8 pad[2];
};
_Static_assert(sizeof(struct tg_fw_gen) == 5 * sizeof(struct tg_fw_mask) + 32, "tg_fw_gen size");

/* Value of tg_fw_rules, indexed generation * TG_FW_MAX_RULES + bit. */
struct tg_fw_rule {
	__u32 slot;    /* hit counters (tg_fw_hits) */
	__u8 action;   /* enum tg_fw_action */
	__u8 limit;    /* RATE_LIMIT: 1 + index into this generation's tg_rl_cfg */
	__u8 honeypot; /* REDIRECT: 1 + index into this generation's tg_honeypot */
	__u8 pad;
};
_Static_assert(sizeof(struct tg_fw_rule) == 8, "tg_fw_rule size");

/*
 * Key of tg_fw_tenant: the rules a packet can match because tenant_id is on
 * a side of it. TO: the destination is the tenant (direction ingress, seen
 * from the tenant); FROM: the source is (egress). A tenant without an entry
 * uses tg_fw_gen's to_tenant / from_tenant; tenant 0 (nobody's) uses 0.
 */
enum tg_fw_side {
	TG_FW_TO = 0,
	TG_FW_FROM = 1,
};
struct tg_fw_tenant_key {
	__u32 tenant_id;
	__u8 generation;
	__u8 side;     /* enum tg_fw_side */
	__u8 pad[2];
};
_Static_assert(sizeof(struct tg_fw_tenant_key) == 8, "tg_fw_tenant_key size");

/*
 * Index into tg_fw_stats (per-CPU array of __u64): what the firewall did
 * with the packets it saw. Every filtered packet bumps exactly one verdict
 * (PASSED, DROPPED, REDIRECTED); the other entries say why, several may move.
 */
enum tg_fw_stat {
	TG_FW_PASSED = 0,          /* let through (allow, log, default allow) */
	TG_FW_DROPPED = 1,         /* dropped: by a rule, the default, or one of the reasons below */
	TG_FW_BY_DEFAULT = 2,      /* no rule matched: the default action decided */
	TG_FW_SEEN_BEFORE = 3,     /* egress packet already filtered where it entered: not filtered again */
	TG_FW_NON_IP = 4,          /* not IPv4/IPv6 (ARP, LLDP...): let through */
	TG_FW_SHORT = 5,           /* shorter than an Ethernet header, or cut inside a VLAN tag: dropped */
	TG_FW_BAD_IP = 6,          /* IP header cut off, malformed (ihl < 5, version), or shorter than its tot_len: dropped */
	TG_FW_VLAN_LIMIT = 7,      /* more VLAN tags than TG_MAX_VLAN_DEPTH: dropped */
	TG_FW_EXT_LIMIT = 8,       /* more IPv6 extension headers than TG_MAX_IPV6_EXT, or one cut off: dropped */
	TG_FW_BAD_L4 = 9,          /* TCP/UDP/SCTP/ICMP header cut off, or TCP data offset < 5 or past the datagram: dropped */
	TG_FW_BAD_TCP_FLAGS = 10,  /* SYN with FIN or RST: dropped */
	TG_FW_FRAG_NO_PORTS = 11,  /* later fragment of a datagram whose ports were not seen, where they decide: dropped */
	TG_FW_RATE_LIMITED = 12,   /* over a rate limit (a rate-limit rule's or a standing one's): dropped */
	TG_FW_RL_NO_BUCKET = 13,   /* a rate limit had no bucket left for a new key (TG_RL_MAX_BUCKETS in use): passed unlimited */
	TG_FW_BLOCKED_SOURCE = 14, /* from a source under an automatic block (a scan, a flood): dropped */
	TG_FW_BLOCKED_REFLECTION = 15, /* UDP from a reflection port to a destination under an amplification block: dropped */
	TG_FW_L7_DENIED = 16,      /* its payload matched an L7 signature whose action is deny: dropped, the client reset */
	TG_FW_REDIRECTED = 17,     /* sent to a honeypot (a redirect rule, or a source flagged for it) instead of its destination */
	TG_FW_STAT_MAX = 18,
};

/*
 * ---- Rate limits (docs/security.md, "Rate limits") ----
 *
 * Token buckets in tg_rl_state, one per limit and key (the packet's source or
 * destination address, the limited tenant, or one for the whole limit). A
 * bucket holds tokens in billionths (of a packet, of a byte), so refilling
 * elapsed_ns * rate needs no division.
 */
enum tg_rl_per {
	TG_RL_PER_SOURCE = 0,
	TG_RL_PER_DESTINATION = 1,
	TG_RL_PER_RULE = 2,         /* one bucket for everything the limit applies to */
	TG_RL_PER_TENANT = 3,       /* one bucket per tenant on the limit's side */
};

/* Value of tg_rl_cfg, indexed generation * TG_RL_MAX + index. */
struct tg_rl_cfg {
	__u64 pps;            /* packets per second; 0: no packet limit */
	__u64 pkt_cap;        /* burst in billionths of a packet */
	__u64 pkt_fill_ns;    /* time an empty bucket takes to fill: pkt_cap / pps */
	__u64 bytes_ps;       /* bytes (L3) per second; 0: no byte limit */
	__u64 byte_cap;       /* burst in billionths of a byte */
	__u64 byte_fill_ns;
	__u32 slot;           /* counters (tg_fw_hits, tg_rl_drops) and the bucket's identity across reloads */
	__u32 tenant_id;      /* standing limits: the tenant (0: any tenant) */
	__u8 per;             /* enum tg_rl_per */
	__u8 dirs;            /* standing limits: bit 1 << enum tg_direction, seen from the tenant */
	__u8 pad[6];
};
_Static_assert(sizeof(struct tg_rl_cfg) == 64, "tg_rl_cfg size");

struct tg_rl_key {
	__u32 slot;           /* tg_rl_cfg.slot */
	__u8 ip_ver;          /* 4 or 6 for an address key, 0 otherwise */
	__u8 pad[3];
	__u8 addr_be[16];     /* the address (IPv4 in the first 4 bytes), or the tenant id (u32), or zeros */
};
_Static_assert(sizeof(struct tg_rl_key) == 24, "tg_rl_key size");

/* Value of tg_rl_state. The lock makes a bucket exact across CPUs. */
struct tg_rl_bucket {
	struct bpf_spin_lock lock;
	__u32 pad;
	__u64 pkt_tokens;     /* billionths of a packet */
	__u64 byte_tokens;    /* billionths of a byte */
	__u64 last_ns;        /* bpf_ktime_get_ns() of the last packet: the agent removes buckets idle past their fill time */
};
_Static_assert(sizeof(struct tg_rl_bucket) == 32, "tg_rl_bucket size");

/*
 * ---- SYN floods (docs/security.md, "SYN floods") ----
 *
 * The datapath counts SYNs per destination; the agent engages mitigation for
 * a destination (tg_syn_guard) when they come faster than the policy allows.
 * Then a SYN from a source not yet verified is answered, in place of the
 * server, with a SYN-ACK whose acknowledgment number is a keyed hash of the
 * connection (a cookie) and deliberately wrong: a real TCP stack answers it
 * with a RST carrying the cookie as its sequence number (RFC 793, SYN-SENT)
 * and sends its SYN again at once; the RST verifies the source
 * (tg_syn_verified), whose SYNs then pass. Spoofed sources never answer.
 */
enum tg_syn_limits {
	TG_SYN_MAX_DSTS = 4096,        /* destinations whose SYNs are counted (LRU) */
	TG_SYN_MAX_GUARDED = 1024,     /* destinations under mitigation */
	TG_SYN_MAX_VERIFIED = 65536,   /* verified sources (LRU) */
	/* skb->mark of a challenge the datapath sent: no hook filters or meters it again. */
	TG_SYN_CHALLENGE_MARK = 0x74675359,
};

enum tg_syn_action {
	TG_SYN_CHALLENGE = 0,  /* answer unverified sources with a cookie (syncookie) */
	TG_SYN_DROP = 1,       /* drop SYNs from unverified sources */
	TG_SYN_LOG = 2,        /* only count and report */
};

/* Value of tg_syn_cfg (slot 0). */
struct tg_syn_cfg {
	__u64 key[2];          /* the cookie's secret (SipHash key), set by the agent */
	__u64 verified_ns;     /* how long a verified source stays verified */
	__u32 on;              /* count SYNs (the policy has synflood enabled) */
	__u32 action;          /* enum tg_syn_action */
};
_Static_assert(sizeof(struct tg_syn_cfg) == 32, "tg_syn_cfg size");

/* An address as a map key: tg_syn_*, the flood and scan counters, the automatic blocks. */
struct tg_addr_key {
	__u8 ip_ver;           /* 4 or 6 */
	__u8 pad[3];
	__u8 addr_be[16];      /* IPv4: the first 4 bytes */
};
_Static_assert(sizeof(struct tg_addr_key) == 20, "tg_addr_key size");

/* Value of tg_syn_dst (per CPU): what a destination's SYNs met. */
struct tg_syn_count {
	__u64 syns;            /* SYNs towards it */
	__u64 synacks;         /* SYN-ACKs from it (its answers) */
	__u64 challenged;      /* SYNs answered with a cookie */
	__u64 dropped;         /* SYNs dropped (action drop, or a challenge that could not be sent) */
	__u64 verified;        /* sources verified by their RST */
	__u64 passed;          /* SYNs of verified sources let through during mitigation */
};
_Static_assert(sizeof(struct tg_syn_count) == 48, "tg_syn_count size");

/*
 * ---- Floods and scans (docs/security.md, "Floods and scans") ----
 *
 * With security.ddos the datapath counts what the firewall lets through per
 * destination and per source (and apart, UDP from reflection ports); with
 * security.portscan it counts, per source, the distinct (destination,
 * protocol, port) it sends TCP SYNs and UDP to. The agent reads the counts,
 * and blocks with a time to live: sources (tg_block_src), and reflection
 * traffic towards a destination (tg_block_refl). The datapath checks the
 * expiry itself, so a block ends on time also without an agent. What to do
 * is in tg_fw_live's TG_FW_LIVE_DDOS .. TG_FW_LIVE_BLOCK_REFL bits.
 */
enum tg_guard_limits {
	TG_GUARD_MAX_DSTS = 4096,      /* destinations counted (LRU) */
	TG_GUARD_MAX_SRCS = 16384,     /* sources counted (LRU) */
	TG_GUARD_MAX_PAIRS = 65536,    /* (source, destination, port) seen by the scan counter (LRU) */
	TG_GUARD_MAX_BLOCKS = 65536,   /* automatic blocks of each kind */
};

/* Value of tg_guard_dst and tg_guard_src (per CPU). */
struct tg_traffic {
	__u64 packets;
	__u64 bytes;           /* L3 */
	__u64 refl_packets;    /* UDP from a reflection port (tg_refl_port) */
	__u64 refl_bytes;
	__u64 scan_pairs;      /* tg_guard_src: distinct (destination, protocol, port) it sent to */
};
_Static_assert(sizeof(struct tg_traffic) == 40, "tg_traffic size");

struct tg_scan_key {
	__u8 ip_ver;
	__u8 proto;
	__be16 dport_be;
	__u8 saddr_be[16];
	__u8 daddr_be[16];
};
_Static_assert(sizeof(struct tg_scan_key) == 36, "tg_scan_key size");

/*
 * Where redirected packets go (docs/security.md, "Honeypot"): out of ifindex,
 * to the neighbour via_be (family AF_INET or AF_INET6; 0: the packet's own
 * destination, resolved on that interface). The honeypot accepts any
 * destination address, so the attacker's session completes with it under the
 * original address, and no state is kept per flow.
 */
struct tg_honeypot {
	__u32 ifindex;
	__u32 family;
	__u8 via_be[16];
};
_Static_assert(sizeof(struct tg_honeypot) == 24, "tg_honeypot size");

enum tg_honeypot_limits {
	TG_HONEYPOT_MAX = 16,          /* honeypot targets per generation (tg_honeypot) */
};

/* Value of tg_block_src and tg_block_refl. */
struct tg_block {
	__u64 expires_ns;      /* bpf_ktime_get_ns() after which the block no longer holds */
	__u64 packets;         /* dropped (or redirected) by it (approximate across CPUs) */
	__u64 bytes;           /* their L3 bytes */
	__u64 idle_ns;         /* redirect: each packet moves expires_ns to now + idle_ns, so a flow is never cut over */
	struct tg_honeypot to; /* to.ifindex != 0: redirect there instead of dropping */
};
_Static_assert(sizeof(struct tg_block) == 56, "tg_block size");

/*
 * ---- L7 signatures (docs/security.md, "L7 signatures") ----
 *
 * The signatures' patterns compiled by the agent into one deterministic
 * automaton (Aho-Corasick's, built by subset construction so that
 * case-insensitive letters are byte classes), walked over the first
 * TG_L7_SCAN payload bytes of each TCP segment towards an L7 port, one array
 * lookup per byte. Kept per generation like the rules.
 */
enum tg_l7_limits {
	TG_L7_MAX_STATES = 1024,
	TG_L7_MAX_SIGS = 64,
	TG_L7_SCAN = 512,              /* payload bytes scanned per segment */
	TG_L7_SIG_SHIFT = 16,          /* tg_l7_dfa value: next state | (1 + signature) << TG_L7_SIG_SHIFT */
};

/* Value of tg_l7_sig, indexed generation * TG_L7_MAX_SIGS + signature. */
struct tg_l7_sig {
	__u32 slot;            /* event budget (tg_sev_budget): TG_FW_MAX_SLOTS + signature */
	__u8 action;           /* enum tg_fw_action: LOG or DENY */
	__u8 pad[3];
};
_Static_assert(sizeof(struct tg_l7_sig) == 8, "tg_l7_sig size");

/*
 * ---- Security events (docs/events.md) ----
 *
 * Records of the tg_sev_ring ring buffer, pinned so that events the datapath
 * sends while no agent reads them wait in the ring for the next one. The
 * datapath never waits for the reader: a record that finds the ring full is
 * dropped and counted (TG_SEV_LOST), and enforcement does not change.
 */
enum tg_sev_type {
	TG_SEV_FW_LOG = 1,          /* a packet matched a log rule, or the log default (slot 0) */
	TG_SEV_RATE_LIMITED = 2,    /* a rate limit dropped a packet (slot: the rule's or standing limit's) */
	TG_SEV_L7_MATCH = 3,        /* a segment's payload matched an L7 signature (detail: the signature's index) */
	TG_SEV_REDIRECTED = 4,      /* a redirect rule sent a packet to its honeypot */
};

/* Index into tg_sev_stats (per-CPU array of __u64), monotonic for the life of the pin. */
enum tg_sev_stat {
	TG_SEV_LOST = 0,        /* the ring was full: the record was not sent */
	TG_SEV_SUPPRESSED = 1,  /* over the slot's budget (tg_fw_gen.log_rate per CPU and second): not sent */
	TG_SEV_SENT = 2,        /* records submitted to the ring */
	TG_SEV_STAT_MAX = 3,
};

struct tg_sev {
	__u64 at_ns;          /* TAI */
	__u8 saddr_be[16];    /* IPv4: the first 4 bytes */
	__u8 daddr_be[16];
	__u32 type;           /* enum tg_sev_type */
	__u32 slot;           /* the deciding rule's tg_fw_hits slot (0: the default action) */
	__u32 to_tenant;      /* the tenant receiving the packet (0: none) */
	__u32 from_tenant;    /* the tenant sending it (0: none) */
	__u32 ifindex;        /* where the packet was seen */
	__u32 bytes;          /* L3 length */
	__be16 sport_be;      /* TCP/UDP/SCTP ports; 0 when the packet has none */
	__be16 dport_be;
	__u8 ip_ver;          /* 4 or 6 */
	__u8 proto;
	__u8 action;          /* enum tg_fw_action */
	__u8 hook;            /* enum tg_hook */
	__u32 detail;         /* by type; 0 for TG_SEV_FW_LOG */
	__u32 pad;
};
_Static_assert(sizeof(struct tg_sev) == 80, "tg_sev size");

/* ---- syscall monitoring (bpf/progs/sysmon.bpf.c, docs/isolation.md) ---- */

enum tg_sys_limits {
	/* Syscall numbers counted one by one: x86_64's table ends below 512.
	 * A power of two, so the program can index n[nr & (TG_SYSCALL_NR - 1)]. */
	TG_SYSCALL_NR = 512,
	/* Where a number at or beyond TG_SYSCALL_NR is counted (x32's, or one
	 * a future kernel adds): no x86_64 syscall has it. */
	TG_SYSCALL_OTHER = 511,
	/* Containers monitored at once: slots of tg_sys_counts; slot 0 unused. */
	TG_MAX_SYS_SLOTS = 1024,
	/* Isolation scopes with a syscall policy (tg_sys_scope); scope 0: none. */
	TG_MAX_SYS_SCOPES = 64,
	/* __u64 words of a syscall bitmap (bit nr % 64 of word nr / 64). */
	TG_SYS_DENY_WORDS = 8,
	/* Events one CPU sends per second for a scope; the rest are counted (TG_SEV_SUPPRESSED). */
	TG_SYS_EVENTS_PER_SEC = 1000,
	/* Bytes of an exec event's filename and of its argv (NUL-separated), each cut off there. */
	TG_SYS_PATH_LEN = 256,
	TG_SYS_ARGS_LEN = 512,
	/* Path bytes a sensitive-path prefix may have: an LPM trie key holds at
	 * most 256 bytes of data, 4 of them the scope. */
	TG_SYS_PREFIX_LEN = 252,
	/* Sensitive-path prefixes over all scopes. */
	TG_MAX_SYS_PREFIXES = 4096,
};
_Static_assert(TG_SYS_DENY_WORDS * 64 == TG_SYSCALL_NR, "a bit per syscall number");

enum tg_sys_scope_flag {
	/* A denied syscall kills the process (SIGKILL from the tracepoint); else it is only reported. */
	TG_SYS_ENFORCE = 1,
	/* The scope has sensitive path prefixes (tg_sys_paths): opens are checked. */
	TG_SYS_PATHS = 2,
};

/* Value of tg_sys_scope (array indexed by tg_sys_ref.scope): the scope's syscall policy. */
struct tg_sys_scope {
	__u64 deny[TG_SYS_DENY_WORDS];
	__u32 flags; /* enum tg_sys_scope_flag */
	__u32 pad;
};
_Static_assert(sizeof(struct tg_sys_scope) == 72, "tg_sys_scope size");

enum tg_sys_event_type {
	TG_SYSEV_DENIED = 1, /* a syscall the scope denies */
	TG_SYSEV_EXEC = 2,   /* a monitored task exec'd a program */
	TG_SYSEV_FILE = 3,   /* a monitored task opened a path under a sensitive prefix */
};

enum tg_sys_action {
	TG_SYS_ACT_REPORTED = 0,
	TG_SYS_ACT_KILLED = 1,
};

/*
 * Key of tg_sys_paths (LPM trie): a scope's sensitive path prefix. prefixlen
 * counts bits of scope + path: (4 + bytes) * 8. A lookup with the path a
 * task opens matches every prefix of its bytes (so "/etc/shadow" also
 * matches "/etc/shadow-").
 */
struct tg_sys_path_key {
	__u32 prefixlen;
	__u32 scope;
	char path[TG_SYS_PREFIX_LEN];
};
_Static_assert(sizeof(struct tg_sys_path_key) == 8 + TG_SYS_PREFIX_LEN, "tg_sys_path_key size");

/* Value of tg_sys_paths. */
struct tg_sys_path_rule {
	__u32 flags; /* enum tg_sys_scope_flag: TG_SYS_ENFORCE kills */
	__u32 pad;
};
_Static_assert(sizeof(struct tg_sys_path_rule) == 8, "tg_sys_path_rule size");

/* A record of tg_sys_ring. */
struct tg_sys_event {
	__u64 at_ns;      /* TAI */
	__u64 cgroup_id;  /* the task's own cgroup */
	__u32 type;       /* enum tg_sys_event_type */
	__u32 nr;         /* DENIED, FILE: the syscall number */
	__u32 pid;        /* thread group id (what user space calls the pid) */
	__u32 tid;
	__u32 ppid;       /* the parent's thread group id */
	__u32 uid;
	__u32 slot;       /* the container's tg_sys_counts slot */
	__u32 scope;      /* tg_sys_ref.scope */
	__u32 action;     /* enum tg_sys_action */
	__u32 args_len;   /* EXEC: bytes of args used */
	char comm[16];    /* the task's command (after exec: the new one) */
	char path[TG_SYS_PATH_LEN]; /* EXEC: the file exec'd; FILE: the path opened; NUL-terminated */
	char args[TG_SYS_ARGS_LEN]; /* EXEC: argv, each NUL-terminated */
};
_Static_assert(sizeof(struct tg_sys_event) == 8 * 2 + 4 * 10 + 16 + TG_SYS_PATH_LEN + TG_SYS_ARGS_LEN, "tg_sys_event size");
_Static_assert((TG_SYSCALL_NR & (TG_SYSCALL_NR - 1)) == 0, "TG_SYSCALL_NR is a power of two");

/* Value of tg_sys_cgroup: cgroup local storage of a monitored container's cgroup and of each cgroup below it. */
struct tg_sys_ref {
	__u32 slot;  /* the container's tg_sys_counts slot */
	__u32 scope; /* the policy's isolation scope (index + 1; 0: none) */
	/* Set by the agent each time it gives the slot to a container: a
	 * reading of the slot continues an earlier one only if both the slot
	 * and the lease are the same (the program never reads it). */
	__u32 lease;
	__u32 pad;
};
_Static_assert(sizeof(struct tg_sys_ref) == 16, "tg_sys_ref size");

/* Value of tg_sys_counts (per-CPU, indexed by slot): syscalls entered, by number. */
struct tg_sys_counts {
	__u64 n[TG_SYSCALL_NR];
};
_Static_assert(sizeof(struct tg_sys_counts) == 8 * TG_SYSCALL_NR, "tg_sys_counts size");

/* ---- bandwidth limits (bpf/progs/shaper.bpf.c) ---- */
/*
 * Egress and ingress bandwidth limits per group (one container, or all the
 * containers of a tenant); docs in bpf/progs/shaper.bpf.c. Two mechanisms:
 * a policer on virtual time (GCRA) per group and direction at the
 * cgroup_skb hooks, which holds every packet of the group to rate + burst
 * and queues nothing; and, at egress, TCP's own pacing (SO_MAX_PACING_RATE,
 * set by the sockops program), which spreads each TCP socket's sending
 * over time so that the policer rarely has to refuse anything.
 * The agent writes struct tg_bw_cfg; the programs alone write struct
 * tg_bw_state (the agent only zeroes a slot before giving it to a group).
 */
enum tg_bw_limits {
	/* Group slots; slot 0 is never given out. Indices of tg_bw_cfg,
	 * tg_bw_state and tg_bw_stats are slot * TG_DIR_MAX + enum tg_direction. */
	TG_BW_MAX_GROUPS = 1024,
	/* Cgroups tg_bw_cgroup maps: containers and the cgroups below them. */
	TG_BW_MAX_CGROUPS = 16384,
	/* Packets whose refusal would stall a connection for a timeout (a
	 * zero-window probe or a retransmission timeout, 200 ms or more) pass
	 * while the group is over its burst by at most a grace of
	 * max(burst, TG_BW_GRACE_NS): an egress TCP segment of a socket with
	 * nothing in flight, an ingress TCP retransmission. Packets of at most
	 * TG_BW_SMALL_BYTES L3 bytes (ACKs, requests, answers) pass up to two
	 * graces over, so they still get through while bulk traffic holds
	 * the group at the first. All are counted: the rate holds over time. */
	TG_BW_SMALL_BYTES = 128,
	TG_BW_GRACE_NS = 250000000,
	/* TCP pacing: the group's egress rate is shared by the TCP sockets
	 * that sent data within the last one or two periods of this length. */
	TG_BW_EPOCH_NS = 250000000,
};

/* Bits of tg_bw_cfg.flags. */
enum tg_bw_flag {
	/* Egress: pace the group's TCP sockets (sockops, SO_MAX_PACING_RATE)
	 * at their share of the rate. Without it only the policer acts, and a
	 * TCP socket whose segment it refuses with nothing in flight waits
	 * for its zero-window probe timer (200 ms); see the bench. */
	TG_BW_PACE = 1 << 0,
};

/* Value of tg_bw_cgroup (key: cgroup id, the socket's own cgroup). */
struct tg_bw_ref {
	__u32 group; /* slot, 1 .. TG_BW_MAX_GROUPS - 1 */
	__u32 pad;
};
_Static_assert(sizeof(struct tg_bw_ref) == 8, "tg_bw_ref size");

/*
 * Value of tg_bw_cfg (array, indexed slot * TG_DIR_MAX + direction): one
 * direction's limit; written by the agent only, in place, so a limit
 * changes without touching the group's state or any connection. A packet
 * racing the update may see the new rate with the old burst; each is a
 * limit the agent asked for.
 */
struct tg_bw_cfg {
	__u64 rate_bps;     /* bits (of L3 bytes) per second; 0: this direction is not limited */
	__u64 burst_ns;     /* the burst as time at the rate: burst_bytes * 8e9 / rate_bps */
	__u64 burst_bytes;  /* the burst the policy gave (the programs use burst_ns) */
	__u64 ident;        /* identity of the group (a hash of its name), so a restarted agent finds its slots */
	__u32 flags;        /* enum tg_bw_flag */
	__u32 pad;
};
_Static_assert(sizeof(struct tg_bw_cfg) == 40, "tg_bw_cfg size");

/* Value of tg_bw_state (array, indexed like tg_bw_cfg). */
struct tg_bw_state {
	struct bpf_spin_lock lock;
	__u32 pad;
	/* When the group's traffic so far would have finished at the rate
	 * (bpf_ktime_get_ns); a packet conforms while tat_ns - now <= burst_ns. */
	__u64 tat_ns;
	/* Egress pacing: busy TCP sockets counted in the period that began at
	 * epoch_ns, and in the one before it, which began at prev_epoch_ns
	 * (0 when there was none right before). A socket that closes is taken
	 * off the counts it is in. */
	__u64 epoch_ns;
	__u64 prev_epoch_ns;
	__u32 active_now;
	__u32 active_before;
};
_Static_assert(sizeof(struct tg_bw_state) == 40, "tg_bw_state size");

/* Value of tg_bw_stats (per-CPU array, indexed like tg_bw_cfg); monotonic while a slot belongs to one group. */
struct tg_bw_stats {
	__u64 passed_packets;
	__u64 passed_bytes;    /* L3 bytes, each segment of a GSO/GRO packet with its own headers */
	__u64 dropped_packets;
	__u64 dropped_bytes;
	/* Passed over the burst to spare a connection a stall (small packets,
	 * an egress TCP socket with nothing in flight, ingress TCP
	 * retransmissions); also in passed_*. */
	__u64 protected_packets;
	__u64 pacing_updates;  /* egress: times the sockops program set a socket's pacing rate */
};
_Static_assert(sizeof(struct tg_bw_stats) == 48, "tg_bw_stats size");

/* ---- network isolation (bpf/progs/netiso.bpf.c) ---- */
/*
 * Per-container (or per-tenant) limits on concurrent outbound TCP
 * connections, and destination rules for TCP and UDP connect, UDP sendmsg
 * and, as a backstop at cgroup_skb egress, every other packet (raw sockets,
 * ICMP). The hooks attach at one cgroup covering the containers; a socket's
 * cgroup (the task's for connect/sendmsg, the socket's for packets) is
 * looked up in tg_ni_cgroup, so other cgroups pay one hash lookup.
 *
 * Connections are counted per group (tg_ni_conns, indexed by group slot):
 * one container, or all containers of a tenant's scope. A TCP socket is
 * counted once, at its first connect(), marked in socket storage with the
 * slot and the slot's lease, and released when the socket is closed
 * (cgroup/sock_release). The agent gives a slot a new lease (and a zero
 * count) before it gives the slot to another group: a socket counted under
 * the old lease never releases into the new group.
 *
 * Destination rules are kept per kernel scope id, in two generations
 * (id = generation * TG_NI_SCOPE_GEN + policy index + 1): the agent writes a
 * whole new generation, points the cgroups at it, then deletes the old one,
 * so no connect sees half a policy.
 */
enum tg_ni_limits {
	/* Cgroups tg_ni_cgroup maps: containers and the cgroups below them. */
	TG_NI_MAX_CGROUPS = 16384,
	/* Connection-counting groups (slots of tg_ni_conns and tg_ni_group); slot 0: not counted. */
	TG_NI_MAX_GROUPS = 4096,
	/* Kernel scope ids one generation spans: policy index + 1 in [1, 63]. */
	TG_NI_SCOPE_GEN = 64,
	/* Scope ids over both generations (tg_ni_scope entries). */
	TG_NI_MAX_SCOPES = 128,
	/* Rules a scope holds after splitting long port lists: bits of the
	 * __u64 mask an LPM entry holds. */
	TG_NI_MAX_RULES = 64,
	/* Port ranges one kernel rule holds; a policy rule with more is split
	 * into consecutive kernel rules with the same action and CIDRs (first
	 * match is unchanged). */
	TG_NI_RULE_PORTS = 8,
	/* Entries of each LPM trie (tg_ni_v4, tg_ni_v6) over both generations. */
	TG_NI_MAX_PREFIXES = 65536,
	/* Events one CPU sends per second for a scope; the rest are counted (TG_SEV_SUPPRESSED). */
	TG_NI_EVENTS_PER_SEC = 1000,
};

enum tg_ni_action {
	TG_NI_ALLOW = 0,
	TG_NI_DENY = 1,
};

enum tg_ni_scope_flag {
	/* The scope has destination rules or a deny default: destinations are checked. */
	TG_NI_DEST = 1,
};

/* Value of tg_ni_cgroup (key: cgroup id). */
struct tg_ni_ref {
	__u32 group; /* slot in tg_ni_conns / tg_ni_group; 0: connections not counted */
	__u32 scope; /* kernel scope id (tg_ni_scope index); 0: no destination rules */
};
_Static_assert(sizeof(struct tg_ni_ref) == 8, "tg_ni_ref size");

/* Value of tg_ni_group (array indexed by group slot). The count itself is
 * in tg_ni_conns, which only the programs write (atomically). */
struct tg_ni_group {
	__u32 limit; /* concurrent outbound TCP connections allowed; 0: counted, not limited */
	__u32 lease; /* set by the agent each time it gives the slot to a group */
};
_Static_assert(sizeof(struct tg_ni_group) == 8, "tg_ni_group size");

/* Value of tg_ni_scope (array indexed by kernel scope id). */
struct tg_ni_scope {
	__u32 flags;          /* enum tg_ni_scope_flag */
	__u32 default_action; /* enum tg_ni_action: when no rule matches */
	__u32 n_rules;        /* kernel rules in use, tg_ni_rule[scope * TG_NI_MAX_RULES + 0 ..) */
	__u32 pad;
};
_Static_assert(sizeof(struct tg_ni_scope) == 16, "tg_ni_scope size");

/*
 * Value of tg_ni_rule (array indexed by scope id * TG_NI_MAX_RULES + rule).
 * A destination matches the rule when its address is in one of the rule's
 * CIDRs (the rule's bit in the LPM entry), its protocol's bit is set, and,
 * with n_ports > 0, it has a destination port in one of the ranges.
 */
struct tg_ni_rule {
	__u64 protocols[4];               /* bit p % 64 of word p / 64 for IP protocol p */
	__u16 port_lo[TG_NI_RULE_PORTS];  /* host order, inclusive */
	__u16 port_hi[TG_NI_RULE_PORTS];
	__u16 policy_rule;                /* index in destinations.rules (events) */
	__u8 action;                      /* enum tg_ni_action */
	__u8 n_ports;                     /* ranges in use; 0: any port, and protocols without ports */
	__u32 pad;
};
_Static_assert(sizeof(struct tg_ni_rule) == 32 + 4 * TG_NI_RULE_PORTS + 8, "tg_ni_rule size");

/*
 * Keys of tg_ni_v4 / tg_ni_v6 (LPM tries): a scope's destination prefix.
 * prefixlen counts the scope id: 32 + address prefix. The value (__u64) is
 * the mask of the scope's kernel rules with a CIDR containing this prefix
 * (longer prefixes carry the bits of the shorter ones that contain them, so
 * the longest match alone gives every rule covering an address).
 */
struct tg_ni_v4_key {
	__u32 prefixlen;
	__u32 scope;
	__u8 addr_be[4];
};
_Static_assert(sizeof(struct tg_ni_v4_key) == 12, "tg_ni_v4_key size");

struct tg_ni_v6_key {
	__u32 prefixlen;
	__u32 scope;
	__u8 addr_be[16];
};
_Static_assert(sizeof(struct tg_ni_v6_key) == 24, "tg_ni_v6_key size");

enum tg_ni_event_type {
	TG_NIEV_CONNECT_DENIED = 1, /* connect() to a denied destination (TCP, UDP, ping sockets) */
	TG_NIEV_SENDMSG_DENIED = 2, /* sendmsg() with a denied destination (unconnected UDP) */
	TG_NIEV_EGRESS_DENIED = 3,  /* a packet to a denied destination dropped at egress (raw sockets, ICMP, ...) */
	TG_NIEV_CONN_LIMIT = 4,     /* connect() refused: the group had `limit` connections open */
	TG_NIEV_UNTRACKED = 5,      /* connect() refused: a limited group's socket could not be marked (no memory for socket storage) */
};

/* A record of tg_ni_ring. */
struct tg_ni_event {
	__u64 at_ns;      /* TAI */
	__u64 cgroup_id;  /* the task's cgroup (connect, sendmsg) or the socket's (egress) */
	__u32 type;       /* enum tg_ni_event_type */
	__u32 pid;        /* thread group id of the current task (egress: whoever sent the packet) */
	__u32 tid;
	__u32 uid;
	__u32 group;      /* tg_ni_ref.group */
	__u32 scope;      /* tg_ni_ref.scope (kernel scope id) */
	__u32 rule;       /* the deciding policy rule's index + 1; 0: the scope's default */
	__u32 limit;      /* CONN_LIMIT: the group's limit */
	__u32 sock_type;  /* SOCK_STREAM, SOCK_DGRAM, SOCK_RAW; 0 when unknown */
	__u32 pad;
	__u8 daddr_be[16];/* IPv4: the first 4 bytes */
	__be16 dport_be;  /* 0 when the protocol has no ports or the port is unknown */
	__u8 ip_ver;      /* 4 or 6; 0 when the packet's destination could not be read */
	__u8 proto;       /* IP protocol */
	__u32 pad2;
	char comm[16];
};
_Static_assert(sizeof(struct tg_ni_event) == 8 * 2 + 4 * 10 + 16 + 8 + 16, "tg_ni_event size");

#endif /* TOLLGATE_ABI_H */
