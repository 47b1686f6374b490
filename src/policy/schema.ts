// The policy document, version 1: one YAML document, tenant-scoped, covering
// metering, billing, isolation and security. Every object is strict, so a
// typo is an error naming the key. Checks that need the whole document
// (duplicates, references) live in cross-check.ts.
//
// Parsed values are normalised and JSON-serialisable: CIDRs in canonical text,
// durations in milliseconds, sizes in bytes, rates in bits per second,
// amounts as canonical decimal strings, protocols as IANA numbers, ports as
// { from, to }.
import { z } from 'zod';
import { normalizeCidr, parseAddress } from './cidr.js';
import { cgroupGlobProblem } from './cgroup-match.js';
import { closest } from './suggest.js';
import { syscallNames, syscallNumber } from '../sysmon/syscalls.js';
import { parseDecimal, parseDuration, parseRate, parseSize, UnitError } from './units.js';
import { isKnownCurrency } from '../billing/currencies.js';
import { timeZoneProblem } from '../billing/period.js';

/** Why an interface name is not a valid Linux ifname (dev_valid_name), or undefined. */
export function ifnameProblem(name: string): string | undefined {
  if (name.length === 0) return 'interface name is empty';
  if (Buffer.byteLength(name) > 15) return `interface name "${name}" is longer than 15 bytes (IFNAMSIZ)`;
  if (name === '.' || name === '..') return `interface name "${name}" is not allowed`;
  if (/[/:\s]/.test(name)) return `interface name "${name}" must not contain "/", ":" or whitespace`;
  return undefined;
}

const NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const RESERVED_TENANT = 'unattributed';
/** The class every packet that matches no other class falls into. */
export const DEFAULT_CLASS = 'internet';

/** A DNS-label-like name: tenants, classes, plans, rules. */
const label = (what: string) =>
  z.string().check((ctx) => {
    const v = ctx.value;
    if (v.length > 63 || !NAME_RE.test(v)) {
      ctx.issues.push({
        code: 'custom', input: v,
        message: `${what} "${v}" must be 1-63 characters of a-z, 0-9 and "-", starting and ending with a letter or digit`,
      });
    }
  });

const tenantName = label('tenant name').refine((v) => v !== RESERVED_TENANT, {
  message: `"${RESERVED_TENANT}" is reserved for traffic that matches no tenant`,
});

const ifname = z.string().check((ctx) => {
  const p = ifnameProblem(ctx.value);
  if (p) ctx.issues.push({ code: 'custom', input: ctx.value, message: p });
});

const cidr = z.string().transform((v, ctx) => {
  try {
    return normalizeCidr(v);
  } catch (err) {
    ctx.issues.push({ code: 'custom', input: v, message: (err as Error).message });
    return z.NEVER;
  }
});

const cgroupGlob = z.string().check((ctx) => {
  const p = cgroupGlobProblem(ctx.value);
  if (p) ctx.issues.push({ code: 'custom', input: ctx.value, message: `cgroup glob "${ctx.value}" ${p}` });
});

function quantity<T>(parse: (v: string | number, field: string) => T, example: string) {
  return z
    .union([z.string(), z.number()], { error: (iss) => (iss.input === undefined ? 'required' : `expected a string such as "${example}"`) })
    .transform((v, ctx) => {
      try {
        return parse(v, '');
      } catch (err) {
        ctx.issues.push({ code: 'custom', input: v, message: err instanceof UnitError ? err.detail : (err as Error).message });
        return z.NEVER;
      }
    });
}

/** Milliseconds; written "10s", "1m30s". Bare numbers are refused. */
const duration = z
  .string({ error: 'expected a duration string such as "10s"' })
  .transform((v, ctx) => {
    try {
      return parseDuration(v, '');
    } catch (err) {
      ctx.issues.push({ code: 'custom', input: v, message: (err as UnitError).detail ?? String(err) });
      return z.NEVER;
    }
  });
/** Bytes; written "50MB", "1GiB" or an integer. */
const size = quantity(parseSize, '50MB');
/** Bits per second; written "10mbit" or an integer. */
const rate = quantity(parseRate, '10mbit');
/** Exact non-negative decimal; an integer or a decimal string ("0.05"), never a float. */
const amount = quantity(parseDecimal, '0.5');

export const PROTOCOLS = { icmp: 1, tcp: 6, udp: 17, gre: 47, esp: 50, ah: 51, icmpv6: 58, sctp: 132 } as const;
/** Protocols that have ports. */
export const PORT_PROTOCOLS: ReadonlySet<number> = new Set([PROTOCOLS.tcp, PROTOCOLS.udp, PROTOCOLS.sctp]);

const protocol = z
  .union([z.string(), z.number()], { error: `expected a protocol name (${Object.keys(PROTOCOLS).join(', ')}) or number 0-255` })
  .transform((v, ctx) => {
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 255) return v;
    if (typeof v === 'string' && Object.hasOwn(PROTOCOLS, v)) return PROTOCOLS[v as keyof typeof PROTOCOLS];
    ctx.issues.push({
      code: 'custom', input: v,
      message: `unknown protocol ${JSON.stringify(v)}; use ${Object.keys(PROTOCOLS).join(', ')} or a number 0-255`,
    });
    return z.NEVER;
  });

export interface PortRange { from: number; to: number }

const port = z
  .union([z.string(), z.number()], { error: 'expected a port (e.g. 443) or a range string (e.g. "1000-2000")' })
  .transform((v, ctx): PortRange => {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(String(v).trim());
    const from = m ? Number(m[1]) : NaN;
    const to = m ? Number(m[2] ?? m[1]) : NaN;
    if (!m || from > 65535 || to > 65535 || from > to) {
      ctx.issues.push({
        code: 'custom', input: v,
        message: `${JSON.stringify(v)} is not a port or range; use 0-65535 or "low-high" with low <= high`,
      });
      return z.NEVER;
    }
    return { from, to };
  });

/** Shared 5-tuple-ish match used by classes, destination rules and security rules. */
const portsNeedPortProtocol = (m: { protocols: number[]; ports: PortRange[] }, ctx: z.RefinementCtx): void => {
  if (m.ports.length > 0 && m.protocols.length > 0 && !m.protocols.some((p) => PORT_PROTOCOLS.has(p))) {
    ctx.addIssue({ code: 'custom', path: ['ports'], message: 'ports need a protocol with ports (tcp, udp or sctp) in protocols' });
  }
};

const direction = z.enum(['ingress', 'egress', 'both']);

// ---- metering -------------------------------------------------------------

export const ATTACH_MODES = ['tc', 'xdp-generic', 'xdp-native'] as const;

/** Per-flow analytics (docs/flows.md); never billing. */
const flowsSchema = z.strictObject({
  enabled: z.boolean().default(false),
  /** Capacity of the kernel's flow LRU, preallocated; takes effect when the agent starts. */
  maxFlows: z.number().int().min(1024).max(16_777_216).default(65_536),
  interval: duration.refine((ms) => ms >= 1000, { message: 'must be at least 1s' }).default(60_000),
  retention: duration.refine((ms) => ms >= 1000, { message: 'must be at least 1s' }).default(3_600_000),
  maxStoreBytes: size.refine((b) => b >= 1 << 20, { message: 'must be at least 1MiB' }).default(256 * 1024 * 1024),
});

const meteringSchema = z.strictObject({
  interval: duration
    .refine((ms) => ms >= 1000, { message: 'must be at least 1s' })
    .default(10_000),
  interfaces: z
    .array(z.strictObject({ name: ifname, mode: z.enum(ATTACH_MODES).default('tc') }))
    .default([]),
  flows: flowsSchema.prefault({}),
});

// ---- tenants --------------------------------------------------------------

const labelKey = z.string().regex(/^[A-Za-z0-9]([-A-Za-z0-9_./]{0,61}[A-Za-z0-9])?$/, {
  message: 'label keys are 1-63 characters of letters, digits, "-", "_", "." and "/"',
});

const tenantSchema = z.strictObject({
  name: tenantName,
  /** Pricing plan (plans[].name). */
  plan: label('plan name').optional(),
  selectors: z
    .strictObject({
      cidrs: z.array(cidr).default([]),
      cgroups: z.array(cgroupGlob).default([]),
      interfaces: z.array(ifname).default([]),
    })
    .refine((s) => s.cidrs.length + s.cgroups.length + s.interfaces.length > 0, {
      message: 'needs at least one selector: cidrs, cgroups or interfaces',
    }),
  labels: z.record(labelKey, z.string({ error: 'label values are strings (quote numbers and booleans)' })).default({}),
});

// ---- classes (traffic classes) -------------------------------------------

const matchSchema = z
  .strictObject({
    /** Peer addresses: the destination of egress, the source of ingress traffic. */
    cidrs: z.array(cidr).default([]),
    protocols: z.array(protocol).default([]),
    /** Either port of the packet in range. */
    ports: z.array(port).default([]),
  })
  .superRefine(portsNeedPortProtocol)
  .refine((m) => m.cidrs.length + m.protocols.length + m.ports.length > 0, {
    message: 'an empty match would match everything; give cidrs, protocols or ports',
  });

const classSchema = z
  .strictObject({
    name: label('class name'),
    billable: z.boolean().default(true),
    match: matchSchema.optional(),
  })
  .superRefine((c, ctx) => {
    if (c.name === DEFAULT_CLASS && c.match) {
      ctx.addIssue({ code: 'custom', path: ['match'], message: `"${DEFAULT_CLASS}" is the fallback class for traffic no other class matches; it takes no match` });
    }
    if (c.name !== DEFAULT_CLASS && !c.match) {
      ctx.addIssue({ code: 'custom', path: ['match'], message: 'required: which traffic belongs to this class' });
    }
  });

// ---- plans (billing) ------------------------------------------------------
// Prices and fees are exact decimals in the plan currency's major unit
// ("0.05" EUR per GB); invoices round each line item once to minor units
// (docs/billing.md).

const tierSchema = z.strictObject({
  /** Upper bound (inclusive) of this tier in bytes per period, counted after the free allowance; absent on the last tier. */
  upTo: size.optional(),
  pricePerGB: amount,
});

const rateSchema = z
  .strictObject({
    class: label('class name'),
    direction,
    pricePerGB: amount.optional(),
    tiers: z.array(tierSchema).min(1).optional(),
    /** Free allowance per period, before the first tier. */
    free: size.optional(),
  })
  .superRefine((r, ctx) => {
    if ((r.pricePerGB === undefined) === (r.tiers === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['pricePerGB'], message: 'give exactly one of pricePerGB or tiers' });
    }
    const tiers = r.tiers ?? [];
    tiers.forEach((t, i) => {
      const last = i === tiers.length - 1;
      if (!last && t.upTo === undefined) {
        ctx.addIssue({ code: 'custom', path: ['tiers', i, 'upTo'], message: 'only the last tier may be open-ended; give upTo' });
      }
      if (last && t.upTo !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['tiers', i, 'upTo'], message: 'the last tier must be open-ended (no upTo), or traffic beyond it would have no price' });
      }
      const prev = tiers[i - 1]?.upTo;
      if (i > 0 && t.upTo !== undefined && prev !== undefined && t.upTo <= prev) {
        ctx.addIssue({ code: 'custom', path: ['tiers', i, 'upTo'], message: `tiers overlap: upTo must be greater than the previous tier's (${prev} bytes)` });
      }
      if (i === 0 && t.upTo === 0) ctx.addIssue({ code: 'custom', path: ['tiers', i, 'upTo'], message: 'a tier must hold at least one byte' });
    });
  });

/** Burstable billing: the 95th percentile of the sampled rate, a committed rate and an overage price. */
const percentile95Schema = z.strictObject({
  class: label('class name').default(DEFAULT_CLASS),
  /** Which rate is sampled: one direction, their sum, or the greater of the two percentiles. */
  direction: z.enum(['ingress', 'egress', 'sum', 'greater']).default('greater'),
  sampleInterval: duration
    .refine((ms) => ms >= 1000 && 3_600_000 % ms === 0, { message: 'must be at least 1s and divide an hour evenly (e.g. 1m, 5m, 15m)' })
    .default(300_000),
  /** Committed rate, paid whatever the traffic. */
  commit: rate.default(0),
  /** Per Mbit/s (10^6 bits per second) of the commit, per period. */
  commitPricePerMbit: amount.default('0'),
  /** Per Mbit/s of the 95th percentile above the commit, per period. */
  overagePricePerMbit: amount,
});

const currency = z.string().check((ctx) => {
  const v = ctx.value;
  if (!/^[A-Z]{3}$/.test(v)) ctx.issues.push({ code: 'custom', input: v, message: `currency "${v}" must be an ISO 4217 code: three capital letters such as EUR or USD` });
  else if (!isKnownCurrency(v)) ctx.issues.push({ code: 'custom', input: v, message: `unknown currency "${v}": not an active ISO 4217 code` });
});

const timeZone = z.string().check((ctx) => {
  const p = timeZoneProblem(ctx.value);
  if (p) ctx.issues.push({ code: 'custom', input: ctx.value, message: p });
});

const planSchema = z.strictObject({
  name: label('plan name'),
  currency,
  /** Billing periods follow this zone's calendar (IANA name). */
  timeZone: timeZone.default('UTC'),
  period: z.enum(['hour', 'day', 'month']).default('month'),
  /** How long after its end a period closes; usage recorded later goes to an adjustment on a later invoice. */
  closeAfter: duration.default(3_600_000),
  /** Per class and direction, per GB (10^9 bytes). */
  rates: z.array(rateSchema).default([]),
  percentile95: percentile95Schema.optional(),
  /** Time-based charges: per hour with traffic of the tenant (active) or per hour the tenant existed (provisioned). */
  hourly: z.array(z.strictObject({ name: z.string().min(1).max(100), basis: z.enum(['active', 'provisioned']), pricePerHour: amount })).default([]),
  /** Charged once per period. */
  flatFees: z.array(z.strictObject({ name: z.string().min(1).max(100), amount })).default([]),
});

// ---- alerts ---------------------------------------------------------------

const webhookUrl = z.string().check((ctx) => {
  let u: URL | undefined;
  try {
    u = new URL(ctx.value);
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) {
    ctx.issues.push({ code: 'custom', input: ctx.value, message: `"${ctx.value}" is not an http:// or https:// URL` });
  }
});

/** Where alerts (quota thresholds) are POSTed; see docs/billing.md. */
const alertsSchema = z.strictObject({
  webhooks: z.array(webhookUrl).default([]),
  /** Attempts per alert and webhook before giving up. */
  maxAttempts: z.int().min(1).max(100).default(10),
});

// ---- quotas ---------------------------------------------------------------

const quotaSchema = z
  .strictObject({
    tenant: label('tenant name'),
    /** A class name; absent = every billable class. */
    class: label('class name').optional(),
    direction: direction.default('both'),
    budget: size,
    period: z.enum(['hour', 'day', 'month']).default('month'),
    /** Alert at these percentages of the budget (the datapath reports up to four as they are crossed). */
    thresholds: z.array(z.int().min(1).max(1000)).max(4).default([80, 100]),
    action: z.enum(['none', 'throttle', 'block']).default('none'),
    throttleRate: rate.optional(),
    /** How far a burst may run ahead of throttleRate; default: 100 ms of the rate, at least 128 KiB. */
    throttleBurst: size.optional(),
  })
  .superRefine((q, ctx) => {
    if (q.action === 'throttle' && q.throttleRate === undefined) {
      ctx.addIssue({ code: 'custom', path: ['throttleRate'], message: 'required when action is throttle' });
    }
    if (q.throttleRate !== undefined && q.throttleRate < 8) {
      ctx.addIssue({ code: 'custom', path: ['throttleRate'], message: 'must be at least 8bit (one byte per second); to stop traffic use action: block' });
    }
    for (const key of ['throttleRate', 'throttleBurst'] as const) {
      if (q.action !== 'throttle' && q[key] !== undefined) {
        ctx.addIssue({ code: 'custom', path: [key], message: 'only applies when action is throttle' });
      }
    }
    q.thresholds.forEach((t, i) => {
      if (i > 0 && t <= q.thresholds[i - 1]) {
        ctx.addIssue({ code: 'custom', path: ['thresholds', i], message: 'thresholds must be strictly increasing' });
      }
    });
  });

// ---- isolation ------------------------------------------------------------

const destRuleSchema = z
  .strictObject({
    action: z.enum(['allow', 'deny']),
    cidrs: z.array(cidr).min(1),
    protocols: z.array(protocol).default([]),
    ports: z.array(port).default([]),
  })
  .superRefine(portsNeedPortProtocol);

/** Programs that are shells: starting one in a container raises an alert unless the scope says otherwise. */
export const SHELLS = ['sh', 'bash', 'dash', 'zsh', 'ash', 'ksh', 'mksh', 'csh', 'tcsh', 'fish'] as const;

/** A syscall name of this architecture's table (x86_64). */
const syscallName = z.string().check((ctx) => {
  if (syscallNumber(ctx.value) !== undefined) return;
  const close = closest(ctx.value, syscallNames());
  ctx.issues.push({ code: 'custom', input: ctx.value, message: `unknown syscall ${JSON.stringify(ctx.value)}${close ? `; did you mean "${close}"?` : ''} (x86_64 names, e.g. "ptrace")` });
});

/** A token bucket: rate from 8kbit to 100gbit per second, burst at least one full-size packet. */
const bandwidthLimit = z.strictObject({
  rate: rate.refine((r) => r >= 8_000 && r <= 100e9, { message: 'must be from 8kbit to 100gbit per second' }),
  burst: size.refine((b) => b >= 1514 && b <= 1024 ** 3, { message: 'must be from 1514 bytes (one full-size frame) to 1GiB' }),
});

/** The datapath matches at most 251 bytes of a path (TG_SYS_PREFIX_LEN - 1). */
const sensitivePath = z.string().regex(/^\/[^\0]*$/, { message: 'must be an absolute path such as "/etc/shadow"' })
  .refine((p) => Buffer.byteLength(p) <= 251, { message: 'must be at most 251 bytes long' });

const isolationSchema = z.strictObject({
  tenant: label('tenant name'),
  /** Cgroup glob: when set, limits apply to each matching container on its own; else to the tenant as a whole. */
  containers: cgroupGlob.optional(),
  /** Bandwidth per direction, seen from the container: egress is what it sends. */
  bandwidth: z
    .strictObject({ egress: bandwidthLimit.optional(), ingress: bandwidthLimit.optional() })
    .refine((b) => b.egress !== undefined || b.ingress !== undefined, { message: 'give egress, ingress or both' })
    .optional(),
  maxConnections: z.int().min(1).optional(),
  destinations: z
    .strictObject({ default: z.enum(['allow', 'deny']).default('allow'), rules: z.array(destRuleSchema).default([]) })
    .optional(),
  syscalls: z
    .strictObject({
      mode: z.enum(['audit', 'enforce']).default('audit'),
      deny: z.array(syscallName).min(1),
    })
    .optional(),
  /** Programs started in the container: every exec an event (log), and execs of these programs an alert event. */
  execs: z
    .strictObject({
      log: z.boolean().default(false),
      /** Basenames ("bash") or absolute paths ("/usr/bin/curl") of programs whose start raises an alert. */
      alert: z.array(z.string().regex(/^(\/[^\0]+|[^/\0]+)$/, { message: 'must be a program name such as "bash" or an absolute path' })).default([...SHELLS]),
    })
    .default({ log: false, alert: [...SHELLS] }),
  /** Absolute path prefixes whose opening is reported (audit) or kills the process (enforce); a plain list is audit. */
  sensitivePaths: z
    .union([z.array(sensitivePath).min(1), z.strictObject({ mode: z.enum(['audit', 'enforce']).default('audit'), paths: z.array(sensitivePath).min(1) })])
    .transform((v) => (Array.isArray(v) ? { mode: 'audit' as const, paths: v } : v))
    .optional(),
});

// ---- security -------------------------------------------------------------

/** One IPv4 or IPv6 host address, kept in its canonical text. */
const hostAddress = z.string().check((ctx) => {
  if (!parseAddress(ctx.value)) ctx.issues.push({ code: 'custom', input: ctx.value, message: `expected an IPv4 or IPv6 address such as 198.18.0.1, got ${JSON.stringify(ctx.value)}` });
});

const limitShape = {
  pps: z.int().min(1).max(1_000_000_000).optional(),
  bps: rate.optional(),
  /** Packets a bucket holds (allowed at once above pps); default one second's worth. */
  burst: z.int().min(1).max(1_000_000_000).optional(),
  /** Bytes a bucket holds for bps; default one second's worth, at most 1GB. */
  burstBytes: size.refine((b) => b >= 64 && b <= 1_000_000_000, { message: 'must be from 64 bytes to 1GB' }).optional(),
  /** One bucket per source address, per destination address, per tenant on the limit's side, or one for the whole rule or limit. */
  per: z.enum(['source', 'destination', 'rule', 'tenant']).default('source'),
};
type LimitInput = { pps?: number; bps?: number; burst?: number; burstBytes?: number };
const checkLimit = (l: LimitInput, ctx: z.RefinementCtx): void => {
  if (l.pps === undefined && l.bps === undefined) ctx.addIssue({ code: 'custom', message: 'give pps, bps or both' });
  if (l.burst !== undefined && l.pps === undefined) ctx.addIssue({ code: 'custom', path: ['burst'], message: 'a packet burst needs pps' });
  if (l.burstBytes !== undefined && l.bps === undefined) ctx.addIssue({ code: 'custom', path: ['burstBytes'], message: 'a byte burst needs bps' });
  if (l.bps !== undefined && (l.bps < 8 || l.bps > 8e12)) ctx.addIssue({ code: 'custom', path: ['bps'], message: 'must be from 8bit to 8tbit per second' });
};
const limitSchema = z.strictObject(limitShape).superRefine(checkLimit);

const ruleSchema = z
  .strictObject({
    name: label('rule name'),
    action: z.enum(['allow', 'deny', 'log', 'rate-limit', 'redirect']),
    direction: direction.default('ingress'),
    tenant: label('tenant name').optional(),
    src: z.array(cidr).default([]),
    dst: z.array(cidr).default([]),
    protocols: z.array(protocol).default([]),
    /** Destination ports. */
    ports: z.array(port).default([]),
    rateLimit: limitSchema.optional(),
    /** Interface that receives redirected packets (a honeypot). */
    redirectTo: ifname.optional(),
    /** The honeypot's address on that interface (its MAC comes from the host's neighbour table); without it, the packet's own destination is resolved on that interface. */
    redirectVia: hostAddress.optional(),
  })
  .superRefine(portsNeedPortProtocol)
  .superRefine((r, ctx) => {
    if (r.action === 'rate-limit' && !r.rateLimit) ctx.addIssue({ code: 'custom', path: ['rateLimit'], message: 'required when action is rate-limit' });
    if (r.action !== 'rate-limit' && r.rateLimit) ctx.addIssue({ code: 'custom', path: ['rateLimit'], message: 'only applies when action is rate-limit' });
    if (r.action === 'redirect' && !r.redirectTo) ctx.addIssue({ code: 'custom', path: ['redirectTo'], message: 'required when action is redirect' });
    if (r.action !== 'redirect' && r.redirectTo) ctx.addIssue({ code: 'custom', path: ['redirectTo'], message: 'only applies when action is redirect' });
    if (r.action !== 'redirect' && r.redirectVia) ctx.addIssue({ code: 'custom', path: ['redirectVia'], message: 'only applies when action is redirect' });
  });

/** Built-in L7 signature sets (their patterns: src/firewall/l7.ts). */
export const L7_SET_NAMES = ['sql-injection', 'path-traversal', 'xss', 'shell-injection'] as const;

/** Rules one policy may have: each is a bit of the datapath's masks (TG_FW_MAX_RULES). */
export const MAX_SECURITY_RULES = 256;

const securitySchema = z.strictObject({
  /** Interfaces filtered without being metered (metering.interfaces are always filtered). */
  interfaces: z
    .array(z.strictObject({ name: ifname, mode: z.enum(ATTACH_MODES).default('tc') }))
    .default([]),
  defaultAction: z.enum(['allow', 'deny', 'log']).default('allow'),
  /** Evaluated in order; the first match decides. */
  rules: z.array(ruleSchema).max(MAX_SECURITY_RULES, { message: `at most ${MAX_SECURITY_RULES} rules; put prefixes that share a verdict into one rule's src or dst` }).default([]),
  /** The security event stream (docs/events.md). */
  events: z
    .strictObject({
      /** Events a log rule (or the log default) may send per second and CPU; the rest are counted as suppressed. */
      logRate: z.int().min(1).max(1_000_000).default(1000),
      /** Events older than this are deleted from the event store (the audit file keeps everything). */
      retention: duration.default(7 * 86_400_000),
      /** Events kept in the store at most, oldest deleted first. */
      maxStored: z.int().min(1000).max(100_000_000).default(1_000_000),
    })
    .prefault({}),
  /** Standing rate limits, independent of rules. */
  rateLimits: z
    .array(
      z
        .strictObject({ name: label('rate limit name'), tenant: label('tenant name').optional(), direction: direction.default('ingress'), ...limitShape })
        .superRefine(checkLimit),
    )
    .max(16, { message: 'at most 16 standing rate limits' })
    .default([]),
  synflood: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** SYNs per second towards one destination before mitigation starts. */
      thresholdPps: z.int().min(1).max(100_000_000),
      /** syncookie: unverified sources must answer a cookie; drop: their SYNs are dropped; log: events only. */
      action: z.enum(['syncookie', 'drop', 'log']).default('syncookie'),
      /** How long the rate must stay below the threshold before mitigation ends. */
      holdFor: duration.refine((ms) => ms >= 1000 && ms <= 3_600_000, { message: 'must be from 1s to 1h' }).default(10_000),
      /** How long a source that answered a cookie keeps passing. */
      verifiedFor: duration.refine((ms) => ms >= 1000 && ms <= 86_400_000, { message: 'must be from 1s to 24h' }).default(600_000),
    })
    .optional(),
  ddos: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Per destination address: packets (or bits) per second the firewall lets through before it is a flood. */
      thresholdPps: z.int().min(1).optional(),
      thresholdBps: rate.optional(),
      /** The rates are measured over this window. */
      window: duration.refine((ms) => ms >= 200 && ms <= 60_000, { message: 'must be from 200ms to 1m' }).default(1000),
      /** block-source: block the sources sending most (and reflection traffic); log: events only. */
      mitigation: z.enum(['block-source', 'rate-limit', 'log']).default('block-source'),
      /** Time to live of an automatic block, renewed while the flood lasts. */
      holdFor: duration.refine((ms) => ms >= 1000 && ms <= 86_400_000, { message: 'must be from 1s to 24h' }).default(60_000),
      /** UDP source ports of reflection/amplification attacks (DNS, NTP, SSDP, memcached, ...). */
      reflectionPorts: z.array(z.int().min(1).max(65535)).max(1024).default([17, 19, 53, 111, 123, 137, 161, 389, 1900, 3283, 3702, 5353, 11211]),
    })
    .refine((d) => d.thresholdPps !== undefined || d.thresholdBps !== undefined, { message: 'give thresholdPps, thresholdBps or both' })
    .optional(),
  portscan: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Distinct (destination, protocol, port) one source may send TCP SYNs or UDP to within window. */
      threshold: z.int().min(2).max(1_000_000).default(100),
      window: duration.refine((ms) => ms >= 1000 && ms <= 3_600_000, { message: 'must be from 1s to 1h' }).default(10_000),
      /** log: an event; block: an event and the source is dropped for blockFor; redirect: its traffic goes to the honeypot instead. */
      action: z.enum(['log', 'block', 'redirect']).default('log'),
      /** block: how long; redirect: how long after the source's last packet (a flow in progress is never cut over). */
      blockFor: duration.refine((ms) => ms >= 1000 && ms <= 86_400_000, { message: 'must be from 1s to 24h' }).default(600_000),
      redirectTo: ifname.optional(),
      redirectVia: hostAddress.optional(),
    })
    .superRefine((s, ctx) => {
      if (s.action === 'redirect' && !s.redirectTo) ctx.addIssue({ code: 'custom', path: ['redirectTo'], message: 'required when action is redirect' });
      if (s.action !== 'redirect' && (s.redirectTo || s.redirectVia)) ctx.addIssue({ code: 'custom', path: [s.redirectTo ? 'redirectTo' : 'redirectVia'], message: 'only applies when action is redirect' });
    })
    .optional(),
  l7: z
    .strictObject({
      signatures: z.array(
        z.strictObject({
          name: label('signature name'),
          protocol: z.enum(['http']).default('http'),
          /** Destination ports whose TCP payload is scanned. */
          ports: z.array(port).min(1).default([{ from: 80, to: 80 }]),
          /** Literal byte strings searched in the first payload bytes of each segment: one, several, or a built-in set. */
          pattern: z.string().min(1).max(64).optional(),
          patterns: z.array(z.string().min(1).max(64)).min(1).max(256).optional(),
          set: z.enum(L7_SET_NAMES).optional(),
          caseInsensitive: z.boolean().default(true),
          /** log: an event; deny: an event, the segment dropped and the client reset. */
          action: z.enum(['log', 'deny']).default('log'),
        }).superRefine((sig, ctx) => {
          const given = ['pattern', 'patterns', 'set'].filter((k) => sig[k as 'pattern' | 'patterns' | 'set'] !== undefined);
          if (given.length !== 1) ctx.addIssue({ code: 'custom', message: `give exactly one of pattern, patterns or set${given.length ? ` (got ${given.join(' and ')})` : ''}` });
        }),
      ).max(64, { message: 'at most 64 signatures' }),
    })
    .optional(),
});

/**
 * The body of PUT /v1/security/rules: rules (and optionally the default
 * action) that replace the policy's until DELETE (docs/security.md, "Rules
 * through the API").
 */
export const securityRulesSchema = z.strictObject({
  defaultAction: z.enum(['allow', 'deny', 'log']).optional(),
  rules: z.array(ruleSchema).max(MAX_SECURITY_RULES, { message: `at most ${MAX_SECURITY_RULES} rules; put prefixes that share a verdict into one rule's src or dst` }),
}).superRefine((b, ctx) => {
  const seen = new Map<string, number>();
  b.rules.forEach((r, i) => {
    const first = seen.get(r.name);
    if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['rules', i, 'name'], message: `duplicate rule name "${r.name}" (first defined at rules[${first}])` });
    else seen.set(r.name, i);
  });
});
export type SecurityRules = z.output<typeof securityRulesSchema>;

/** A security section with every default: what API-managed rules are added to when the policy has none. */
export const emptySecurity = (): z.output<typeof securitySchema> => securitySchema.parse({});

// ---- the document ---------------------------------------------------------

export const policySchema = z.strictObject({
  version: z.literal(1, {
    error: (iss) => (iss.input === undefined ? 'required: this document format is version 1' : `unsupported version ${JSON.stringify(iss.input)}; this agent reads version 1`),
  }),
  metering: meteringSchema.prefault({}),
  tenants: z.array(tenantSchema).default([]),
  classes: z.array(classSchema).optional(),
  plans: z.array(planSchema).optional(),
  quotas: z.array(quotaSchema).optional(),
  alerts: alertsSchema.optional(),
  /** At most 63: the datapath has a syscall policy slot per scope (TG_MAX_SYS_SCOPES - 1). */
  isolation: z.array(isolationSchema).max(63).optional(),
  security: securitySchema.optional(),
});

export type Policy = z.output<typeof policySchema>;
export type PolicyInput = z.input<typeof policySchema>;
export type MeteringSection = Policy['metering'];
export type MeteringInterface = MeteringSection['interfaces'][number];
export type AttachMode = MeteringInterface['mode'];
export type Tenant = Policy['tenants'][number];
export type TrafficClass = NonNullable<Policy['classes']>[number];
export type Plan = NonNullable<Policy['plans']>[number];
export type Quota = NonNullable<Policy['quotas']>[number];
export type AlertsSection = NonNullable<Policy['alerts']>;
export type IsolationScope = NonNullable<Policy['isolation']>[number];
export type SecuritySection = NonNullable<Policy['security']>;

/** Sections this version acts on (plans: invoices; quotas: alerts and enforcement in the datapath; security: rules, see src/firewall; isolation: src/isolation). */
export const ENFORCED_SECTIONS = ['version', 'metering', 'tenants', 'classes', 'plans', 'quotas', 'alerts', 'security', 'isolation'] as const;

