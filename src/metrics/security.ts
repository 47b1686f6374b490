// Prometheus series for the firewall. Cardinality: one series per rule of
// the policy (plus the default action) and one per enum tg_fw_stat entry.
// Counters live in the kernel, so each series is a gauge filled from one
// read per scrape (the _total names say they only grow while a rule exists).
import { Gauge, type Registry } from 'prom-client';
import type { FirewallStatus } from '../firewall/firewall.js';
import type { SynfloodStatus } from '../firewall/synflood.js';
import type { GuardStatus } from '../firewall/guards.js';

export function securityMetrics(registry: Registry, status: () => FirewallStatus & { synflood?: SynfloodStatus; guards?: GuardStatus }): void {
  const bytes = new Gauge({ name: 'tollgate_security_rule_bytes_total', help: 'L3 bytes each security rule (or the default action, rule "(default)") decided', labelNames: ['rule', 'action'] as const, registers: [] });
  const packets = new Gauge({ name: 'tollgate_security_packets_total', help: 'Packets the firewall let through or dropped, and why (enum tg_fw_stat: by_default, bad_ip, frag_no_ports, ...)', labelNames: ['what'] as const, registers: [] });
  new Gauge({
    name: 'tollgate_security_rule_packets_total',
    help: 'Packets each security rule (or the default action, rule "(default)") decided',
    labelNames: ['rule', 'action'] as const,
    registers: [registry],
    collect() {
      for (const g of [this, bytes, packets, limited, applied]) g.reset();
      const s = status();
      for (const r of s.rules) {
        this.set({ rule: r.name, action: r.action }, Number(r.packets));
        bytes.set({ rule: r.name, action: r.action }, Number(r.bytes));
      }
      for (const [what, n] of Object.entries(s.stats)) packets.set({ what }, Number(n));
      for (const r of s.rules) if (r.limited) limited.set({ limit: r.name, kind: 'rule' }, Number(r.limited.packets));
      for (const l of s.limits) {
        limited.set({ limit: l.name, kind: 'standing' }, Number(l.limited.packets));
        applied.set({ limit: l.name }, Number(l.packets));
      }
      buckets.set(s.buckets.used);
      capacity.set(s.buckets.capacity);
      if (s.guards) {
        floods.set(s.guards.floods.length);
        blocks.set({ kind: 'source' }, s.guards.blocks.sources);
        blocks.set({ kind: 'reflection' }, s.guards.blocks.reflection);
      }
      if (s.synflood) {
        guarded.set(s.synflood.guarded.length);
        for (const [what, n] of Object.entries(s.synflood.totals)) syn.set({ what }, Number(n));
      }
    },
  });
  const floods = new Gauge({ name: 'tollgate_security_floods', help: 'Destinations under a flood (ddos) right now', registers: [] });
  const blocks = new Gauge({ name: 'tollgate_security_auto_blocks', help: 'Automatic blocks in force: sources (scanners, flooders), reflection traffic to a destination', labelNames: ['kind'] as const, registers: [] });
  const guarded = new Gauge({ name: 'tollgate_security_synflood_guarded', help: 'Destinations under SYN-flood mitigation', registers: [] });
  const syn = new Gauge({ name: 'tollgate_security_syn_packets_total', help: 'SYN-flood counters over all destinations: syns, synacks (answers), challenged, verified (sources), passed, dropped', labelNames: ['what'] as const, registers: [] });
  const limited = new Gauge({ name: 'tollgate_security_rate_limited_packets_total', help: 'Packets a rate limit dropped (a rate-limit rule\'s, kind="rule", or a standing one\'s)', labelNames: ['limit', 'kind'] as const, registers: [] });
  const applied = new Gauge({ name: 'tollgate_security_rate_limit_packets_total', help: 'Packets a standing rate limit applied to (passed or dropped)', labelNames: ['limit'] as const, registers: [] });
  const buckets = new Gauge({ name: 'tollgate_security_rate_limit_buckets', help: 'Token buckets in use (sources, destinations or tenants being limited)', registers: [] });
  const capacity = new Gauge({ name: 'tollgate_security_rate_limit_buckets_capacity', help: 'Token buckets that fit; a new key beyond them passes unlimited (what="rl_no_bucket")', registers: [] });
  for (const g of [bytes, packets, limited, applied, buckets, capacity, guarded, syn, floods, blocks]) registry.registerMetric(g);
}

export interface EventMetricsSource {
  /** Events recorded by this agent, by type. */
  counts: ReadonlyMap<string, number>;
  /** The kernel's totals for the event ring (undefined before the reader runs). */
  kernel(): { sent: bigint; lost: bigint; suppressed: bigint } | undefined;
  streams(): number;
}

/** The security event stream: what was recorded, and what the datapath could not send. */
export function eventMetrics(registry: Registry, src: EventMetricsSource): void {
  new Gauge({
    name: 'tollgate_security_events_total',
    help: 'Security events recorded by this agent since it started, by type',
    labelNames: ['type'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [type, n] of src.counts) this.set({ type }, n);
    },
  });
  const kernel = (name: 'sent' | 'lost' | 'suppressed', help: string) => new Gauge({
    name: `tollgate_security_events_${name}_total`,
    help,
    registers: [registry],
    collect() {
      const k = src.kernel();
      if (k) this.set(Number(k[name]));
    },
  });
  kernel('sent', 'Event records the datapath put into its ring (for the life of the ring\'s pin)');
  kernel('lost', 'Event records the datapath dropped because its ring was full; each raises an events.lost event and alert');
  kernel('suppressed', 'Events a log rule did not send because it was over security.events.logRate');
  new Gauge({ name: 'tollgate_security_event_streams', help: 'Clients following the live event stream', registers: [registry], collect() {
    this.set(src.streams());
  } });
}
