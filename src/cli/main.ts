// The `tollgate` command.
import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import pino from 'pino';
import { defaults } from '../paths.js';
import { stringifyExact } from '../json.js';
import { AgentError, AgentUnreachable, callAgent, fetchAgentText, streamAgent } from '../api/client.js';
import type { UsageGrouping } from '../store/index.js';
import { csv } from '../csv.js';
import { table, humanBytes } from './table.js';

const program = new Command();
program
  .name('tollgate')
  .description('eBPF node agent: per-tenant traffic metering for billing, isolation and security policy')
  .option('--socket <path>', "the agent's API socket", defaults.socket)
  .showHelpAfterError();

function positiveInt(name: string, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < 1 || n > max) throw new InvalidArgumentError(`${name} must be an integer from 1 to ${max}`);
    return n;
  };
}

const socket = (): string => program.opts<{ socket: string }>().socket;
const print = (v: unknown): void => {
  process.stdout.write(`${stringifyExact(v, 2)}\n`);
};

program
  .command('agent')
  .description('run the node agent: attach metering, export to the ledger, serve the API')
  .requiredOption('-c, --config <file>', 'policy document (YAML)')
  .option('--db <file>', 'SQLite ledger', defaults.db)
  .option('--pin-root <dir>', 'bpffs directory for pinned maps and links', defaults.pinRoot)
  .option('--interval <duration>', 'export interval (overrides metering.interval), at least 1s')
  .option("--netns <name>", "attach to interfaces of this network namespace (e.g. the lab host); the API stays in the agent's own")
  .option('--listen <host:port>', 'also serve the API and /metrics on this loopback TCP address')
  .option('--tokens <file>', 'require a token on the --listen API (YAML: tokens: [{ name, sha256, tenant? }]; see "tollgate token")')
  .option('--max-tenants <n>', 'size of the tenant counter array', positiveInt('--max-tenants', 1 << 20))
  .option('--max-classes <n>', 'traffic-class capacity of the counter array (class ids are never reused)', positiveInt('--max-classes', 256))
  .option('--flows-db <file>', 'flow analytics store, when metering.flows is enabled (default: flows.db next to the ledger)')
  .option('--events-db <file>', 'security event store (default: events.db next to the ledger)')
  .option('--audit-log <file>', 'append-only JSON-lines audit file of every security event (default: audit.jsonl next to the ledger)')
  .addOption(new Option('--log-level <level>', 'log level').choices(['debug', 'info', 'warn', 'error']).default('info'))
  .action(async (o: { config: string; db: string; pinRoot: string; interval?: string; netns?: string; listen?: string; tokens?: string; maxTenants?: number; maxClasses?: number; flowsDb?: string; eventsDb?: string; auditLog?: string; logLevel: string }) => {
    const { startAgent } = await import('../daemon/agent.js');
    const logger = pino({ name: 'tollgate', level: o.logLevel });
    // Handlers first: a signal while the agent starts (its API may already
    // answer) stops it once it is up, instead of killing it mid-start.
    let stopSignal: string | undefined;
    let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
    const shutdown = (sig: string) => {
      stopSignal ??= sig;
      if (!agent) return;
      logger.info({ sig }, 'stopping: final export, pins stay');
      agent.stop().catch((err: unknown) => logger.error({ err }, 'stop failed'));
    };
    process.once('SIGINT', () => shutdown('SIGINT'));
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGHUP', () => {
      agent?.reload().catch((err: unknown) => logger.error({ err: (err as Error).message }, 'policy not applied, nothing changed'));
    });
    agent = await startAgent({ ...o, socket: socket(), logger });
    if (stopSignal) shutdown(stopSignal);
    await agent.done;
  });

program
  .command('flush')
  .description('make the agent export its counters to the ledger now')
  .option('--json', 'machine-readable output')
  .action(async (o: { json?: boolean }) => {
    const r = await callAgent<{ at: string; rows: number; packets: number; bytes: number; durationMs: number }>(socket(), 'POST', '/v1/flush');
    if (o.json) print(r);
    else console.log(`exported ${r.rows} rows (${r.packets} packets, ${humanBytes(r.bytes)}) in ${r.durationMs.toFixed(1)} ms`);
  });

/** A row of GET /v1/usage; which fields it has depends on the grouping. */
type UsageApiRow = {
  tenant?: string; class?: string; billable?: boolean; container?: string; runtime?: string; direction: string; packets: number; bytes: number;
  billablePackets?: number; billableBytes?: number; first: string | null; last: string | null;
};

/** The fields of a usage row per grouping, in output order (the CSV header). */
const USAGE_FIELDS: Record<UsageGrouping, Array<keyof UsageApiRow>> = {
  'tenant-class': ['tenant', 'class', 'billable', 'direction', 'packets', 'bytes', 'first', 'last'],
  tenant: ['tenant', 'direction', 'packets', 'bytes', 'billablePackets', 'billableBytes', 'first', 'last'],
  class: ['class', 'billable', 'direction', 'packets', 'bytes', 'first', 'last'],
  container: ['tenant', 'container', 'runtime', 'direction', 'packets', 'bytes', 'first', 'last'],
};

/** The usage table for people: no FIRST, billable as yes/no, human bytes after BYTES. */
function usageTable(fields: Array<keyof UsageApiRow>, rows: UsageApiRow[]): string {
  const shown = fields.filter((f) => f !== 'first');
  const headers = shown.flatMap((f) => {
    const h = f.replace(/[A-Z]/g, (c) => ` ${c}`).toUpperCase();
    return f === 'bytes' ? [h, ''] : [h];
  });
  return table(headers, rows.map((r) => shown.flatMap((f) => {
    if (f === 'bytes') return [r.bytes, humanBytes(r.bytes)];
    const v = r[f] ?? null;
    return [typeof v === 'boolean' ? (v ? 'yes' : 'no') : v];
  })));
}

const usageFlags = ['tenant', 'class', 'by', 'since', 'until'] as const;

/** The agent's query parameters are named like the flags: an error about one names the flag the user typed. */
function flagError(err: unknown, flags: readonly string[]): unknown {
  if (!(err instanceof AgentError) || err.field === undefined || !flags.includes(err.field)) return err;
  const { field, message } = err;
  return new Error(`--${field}: ${message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message}`);
}

program
  .command('usage')
  .description('metered usage per tenant, traffic class and direction (seen from the tenant), or per container, from the ledger')
  .option('--tenant <name>', 'only this tenant')
  .option('--class <name>', 'only this traffic class (not with --by container)')
  .addOption(new Option('--by <grouping>', 'tenant-class: per tenant and class; tenant: summed over classes, with the billable part; class: summed over tenants; container: per container, runtime and tenant')
    .choices(Object.keys(USAGE_FIELDS)).default('tenant-class'))
  .option('--since <time>', 'ISO time or age (15m, 2h, 7d); rows whose interval ended at or after it')
  .option('--until <time>', 'ISO time or age; rows whose interval ended before it')
  .addOption(new Option('--json', 'machine-readable output').conflicts('csv'))
  .option('--csv', 'CSV with a header line (RFC 4180)')
  .action(async (o: { tenant?: string; class?: string; by: UsageGrouping; since?: string; until?: string; json?: boolean; csv?: boolean }) => {
    const q = new URLSearchParams();
    for (const f of usageFlags) if (o[f] !== undefined) q.set(f, o[f]);
    const { rows } = await callAgent<{ rows: UsageApiRow[] }>(socket(), 'GET', `/v1/usage?${q}`).catch((err: unknown) => {
      throw flagError(err, usageFlags);
    });
    const fields = USAGE_FIELDS[o.by];
    if (o.json) print(rows);
    else if (o.csv) process.stdout.write(csv(fields, rows.map((x) => fields.map((f) => x[f] ?? null))));
    else console.log(usageTable(fields, rows));
  });

/** A flow of GET /v1/flows/top, and the map's health over the window. */
type TopApiFlow = {
  tenant: string; class: string; direction: string; ipVersion: number; protocol: string;
  src: string; sport: number; dst: string; dport: number; packets: number; bytes: number; first: string; last: string;
};
type FlowCountersJson = { evicted: number; insertFailed: number; lookupFailed: number; noAddr: number; fragNoPorts: number };
type TopApiBody = {
  flows: TopApiFlow[]; intervals: number; distinct: number; unknown: number;
  health: { live: number; capacity: number; window: FlowCountersJson } | null;
};

const topFlags = ['tenant', 'by', 'since', 'until', 'limit'] as const;
const endpoint = (f: TopApiFlow, addr: string, port: number): string => {
  const a = f.ipVersion === 6 ? `[${addr}]` : addr;
  return ['tcp', 'udp', 'sctp'].includes(f.protocol) ? `${a}:${port}` : a;
};

program
  .command('top')
  .description('top talkers: the flows that moved the most bytes or packets over a window (analytics, never billing)')
  .option('--tenant <name>', 'only this tenant')
  .addOption(new Option('--by <order>', 'rank by').choices(['bytes', 'packets']).default('bytes'))
  .option('--since <time>', 'ISO time or age (15m, 2h, 7d); intervals that ended at or after it', '5m')
  .option('--until <time>', 'ISO time or age; intervals that ended before it')
  .option('--limit <n>', 'how many flows', positiveInt('--limit', 1000), 20)
  .option('--json', 'machine-readable output')
  .action(async (o: { tenant?: string; by: string; since: string; until?: string; limit: number; json?: boolean }) => {
    const q = new URLSearchParams();
    for (const f of topFlags) if (o[f] !== undefined) q.set(f, String(o[f]));
    const body = await callAgent<TopApiBody>(socket(), 'GET', `/v1/flows/top?${q}`).catch((err: unknown) => {
      throw flagError(err, topFlags);
    });
    if (o.json) return print(body);
    console.log(table(['TENANT', 'CLASS', 'DIR', 'PROTO', 'SOURCE', 'DESTINATION', 'PACKETS', 'BYTES', '', 'LAST'],
      body.flows.map((f) => [f.tenant, f.class, f.direction, f.protocol, endpoint(f, f.src, f.sport), endpoint(f, f.dst, f.dport),
        f.packets, f.bytes, humanBytes(f.bytes), f.last])));
    const h = body.health;
    console.log(`\n${body.distinct} flows over ${body.intervals} intervals` +
      (body.unknown ? `; ${body.unknown} flows not counted (baselines after a start or restart)` : '') +
      (h ? `\nflow table: ${h.live} live of ${h.capacity}; in the window ${h.window.evicted} evicted, ` +
        `${h.window.insertFailed} insert failures, ${h.window.lookupFailed} lookup failures, ` +
        `${h.window.noAddr} packets without an IP 5-tuple, ${h.window.fragNoPorts} fragments without ports` : ''));
  });

type InvoiceListBody = { tenant: string; plan: string; currency: string; current: string; closed: Array<{ period: string; total: string; sha256: string; closedAt: string }> };
type InvoiceBody = {
  tenant: string; plan: string; currency: string; status: string; asOf: string;
  period: { id: string; start: string; end: string; timeZone: string };
  lines: Array<{ kind: string; class: string | null; description: string; quantity: string; unit: string; unitPrice: string; amount: string }>;
  subtotals: Array<{ class: string | null; amount: string }>; total: string;
};

program
  .command('invoice')
  .description("a tenant's invoice for a billing period from the ledger: line items, subtotals per class, total (docs/billing.md)")
  .requiredOption('--tenant <name>', 'the tenant')
  .option('--period <id>', 'period id in the plan\'s time zone: 2026-11 (month), 2026-11-25 (day), 2026-11-25T13 (hour); default the running one')
  .option('--list', 'the closed periods with their totals, and the running one')
  .addOption(new Option('--json', 'the invoice document (for a closed period, the stored bytes)').conflicts(['csv', 'html', 'list']))
  .addOption(new Option('--csv', 'CSV, one row per line item, then subtotals and total (RFC 4180)').conflicts(['html', 'list']))
  .addOption(new Option('--html', 'a printable HTML page').conflicts('list'))
  .action(async (o: { tenant: string; period?: string; list?: boolean; json?: boolean; csv?: boolean; html?: boolean }) => {
    const tenant = encodeURIComponent(o.tenant);
    const rethrow = (err: unknown): never => {
      throw flagError(err, ['tenant', 'period']);
    };
    if (o.list) {
      const l = await callAgent<InvoiceListBody>(socket(), 'GET', `/v1/invoices/${tenant}`).catch(rethrow);
      console.log(`${l.tenant}: plan ${l.plan} (${l.currency}), running period ${l.current}`);
      console.log(table(['period', 'total', 'closed at', 'sha256'], l.closed.map((c) => [c.period, c.total, c.closedAt, c.sha256.slice(0, 16)])));
      return;
    }
    const format = o.csv ? 'csv' : o.html ? 'html' : 'json';
    const text = await fetchAgentText(socket(), `/v1/invoices/${tenant}/${encodeURIComponent(o.period ?? 'current')}?format=${format}`).catch(rethrow);
    if (o.json || o.csv || o.html) {
      process.stdout.write(text);
      return;
    }
    const d = JSON.parse(text) as InvoiceBody;
    console.log(`Invoice ${d.tenant} ${d.period.id} (${d.period.timeZone}), plan ${d.plan}, ${d.status === 'closed' ? 'closed' : `open, usage up to ${d.asOf}`}`);
    console.log(table(['item', 'class', 'quantity', 'unit', 'unit price', `amount ${d.currency}`],
      d.lines.map((l) => [l.description, l.class, l.quantity, l.unit, l.unitPrice, l.amount])));
    for (const s of d.subtotals) console.log(`subtotal ${s.class ?? 'plan-wide'}: ${s.amount} ${d.currency}`);
    console.log(`total: ${d.total} ${d.currency}`);
  });

type QuotaRow = {
  tenant: string; class: string; direction: string; period: string; action: string; budget: number;
  used: number | string; exhausted: boolean; droppedPackets: number | string; ledgerUsed: number | string | null;
};

program
  .command('quotas')
  .description('each quota in its running period: bytes the datapath let through, whether it is spent, what it refused (docs/billing.md)')
  .option('--json', 'machine-readable output')
  .action(async (o: { json?: boolean }) => {
    const r = await callAgent<{ quotas: QuotaRow[] }>(socket(), 'GET', '/v1/quotas');
    if (o.json) return print(r);
    console.log(table(['tenant', 'class', 'direction', 'period', 'action', 'budget', 'used', 'used %', 'state', 'refused packets', 'ledger used'],
      r.quotas.map((q) => [q.tenant, q.class, q.direction, q.period, q.action, String(q.budget), String(q.used),
        (Number(q.used) * 100 / q.budget).toFixed(1), q.exhausted ? 'spent' : 'ok', String(q.droppedPackets), q.ledgerUsed === null ? '-' : String(q.ledgerUsed)])));
  });

program
  .command('alerts')
  .description('the latest alerts (quota thresholds, budgets spent) and their webhook deliveries, newest first')
  .option('--limit <n>', 'how many', positiveInt('--limit', 10_000), 20)
  .option('--json', 'machine-readable output')
  .action(async (o: { limit: number; json?: boolean }) => {
    const r = await callAgent<{ alerts: Array<{ key: string; createdAt: string; alert: { type: string }; deliveries: Array<{ state: string }> }> }>(socket(), 'GET', `/v1/alerts?limit=${o.limit}`);
    if (o.json) return print(r);
    console.log(table(['raised', 'type', 'key', 'deliveries'], r.alerts.map((a) => [a.createdAt, a.alert.type, a.key,
      a.deliveries.map((d) => d.state).join(', ') || '(no webhook)'])));
  });

program
  .command('rules')
  .description('the security rules in policy order with the packets and bytes each decided, then the default action; and what the firewall did (docs/security.md)')
  .option('--json', 'machine-readable output')
  .option('--set <file>', 'replace the policy\'s rules with these (YAML or JSON: { rules: [...], defaultAction? }) until --reset, across reloads and restarts')
  .option('--reset', 'go back to the policy\'s rules')
  .action(async (o: { json?: boolean; set?: string; reset?: boolean }) => {
    if (o.set !== undefined || o.reset) {
      if (o.set !== undefined && o.reset) throw new Error('--set and --reset: give one of them');
      let body: unknown;
      if (o.set !== undefined) {
        const { readFileSync } = await import('node:fs');
        const { parse } = await import('yaml');
        try {
          body = parse(readFileSync(o.set, 'utf8'));
        } catch (err) {
          throw new Error(`--set ${o.set}: ${(err as Error).message}`);
        }
      }
      return print(await callAgent(socket(), o.set !== undefined ? 'PUT' : 'DELETE', '/v1/security/rules', 30_000, body));
    }
    type Counted = { packets: number; bytes: number };
    const r = await callAgent<{
      enabled: boolean; generation: number; defaultAction: string | null; stats: Record<string, number>;
      rules: Array<Counted & { name: string; action: string; limited?: Counted }>;
      limits: Array<Counted & { name: string; tenant: string | null; direction: string; per: string; limited: Counted }>;
      buckets: { used: number; capacity: number } | null;
      guards?: {
        floods: Array<{ destination: string; tenant: string | null; kind: string; since: string; peakPps: number; peakBps: number; blockedSources: number }>;
        blocks: { sources: number; reflection: number };
      };
      synflood?: {
        enabled: boolean; action: string | null; thresholdPps: number | null;
        guarded: Array<{ address: string; tenant: string | null; since: string; rate: number; peak: number; counts: Record<'challenged' | 'verified' | 'passed' | 'dropped', number> }>;
      };
    }>(socket(), 'GET', '/v1/security/rules');
    if (o.json) return print(r);
    if (!r.enabled) {
      console.log('the firewall is off: the policy has no security section');
      return;
    }
    console.log(table(['rule', 'action', 'packets', 'bytes', 'rate-limited'], r.rules.map((x) =>
      [x.name, x.action === 'default' ? `default (${r.defaultAction})` : x.action, String(x.packets), String(x.bytes), x.limited ? String(x.limited.packets) : ''])));
    if (r.limits.length) {
      console.log('');
      console.log(table(['rate limit', 'tenant', 'direction', 'per', 'packets', 'rate-limited'], r.limits.map((l) =>
        [l.name, l.tenant ?? 'any', l.direction, l.per, String(l.packets), String(l.limited.packets)])));
    }
    if (r.buckets && (r.buckets.used > 0 || r.limits.length || r.rules.some((x) => x.limited))) console.log(`\nrate-limit buckets: ${r.buckets.used} of ${r.buckets.capacity} in use`);
    if (r.guards && (r.guards.floods.length || r.guards.blocks.sources || r.guards.blocks.reflection)) {
      console.log(`\nautomatic blocks: ${r.guards.blocks.sources} source(s), ${r.guards.blocks.reflection} reflection target(s)`);
      for (const f of r.guards.floods) {
        console.log(`  ${f.kind} flood to ${f.destination}${f.tenant ? ` (${f.tenant})` : ''} since ${f.since}: peak ${f.peakPps} pps, ${f.peakBps} bit/s${f.blockedSources ? `, ${f.blockedSources} source(s) blocked` : ''}`);
      }
    }
    const syn = r.synflood;
    if (syn?.enabled) {
      console.log(`\nSYN floods: ${syn.action} above ${syn.thresholdPps} SYN/s per destination; ${syn.guarded.length ? 'under mitigation:' : 'no destination under mitigation'}`);
      for (const g of syn.guarded) {
        console.log(`  ${g.address}${g.tenant ? ` (${g.tenant})` : ''} since ${g.since}: ${g.rate} SYN/s (peak ${g.peak}), challenged ${g.counts.challenged}, verified ${g.counts.verified}, passed ${g.counts.passed}, dropped ${g.counts.dropped}`);
      }
    }
    const reasons = Object.entries(r.stats).filter(([k, v]) => !['passed', 'dropped'].includes(k) && Number(v) > 0);
    console.log(`\npassed ${r.stats.passed}, dropped ${r.stats.dropped}${reasons.length ? `; ${reasons.map(([k, v]) => `${k} ${v}`).join(', ')}` : ''} (generation ${r.generation})`);
  });

interface EventRow {
  id: number;
  at: string;
  type: string;
  tenant: string | null;
  flow: { protocol: string; src: string; sport: number | null; dst: string; dport: number | null } | null;
  rule: string | null;
  action: string | null;
  detail: Record<string, unknown>;
}
const eventFlags = ['type', 'tenant', 'after', 'limit'] as const;
const eventEndpoint = (host: string, port: number | null) => (port === null ? host : host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
const eventCells = (e: EventRow): string[] => [
  String(e.id), e.at, e.type, e.tenant ?? '-',
  e.flow ? `${e.flow.protocol} ${eventEndpoint(e.flow.src, e.flow.sport)} > ${eventEndpoint(e.flow.dst, e.flow.dport)}` : '-',
  e.rule ?? '-', e.action ?? '-',
  e.flow ? '' : Object.entries(e.detail).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' '),
];
const EVENT_HEADER = ['id', 'time', 'type', 'tenant', 'packet', 'rule', 'action', 'detail'];

program
  .command('events')
  .description('security events from the event store, oldest first; --follow then streams new ones as they happen (docs/events.md)')
  .option('--type <type>', 'only this event type (firewall.log, events.lost, ...)')
  .option('--tenant <name>', 'only events about this tenant')
  .option('--after <id>', 'only events after this id (default: the latest --limit)')
  .option('--limit <n>', 'at most this many stored events', positiveInt('--limit', 10_000), 20)
  .option('-f, --follow', 'keep streaming new events until interrupted (resumes where it left off if the agent restarts)')
  .option('--json', 'one JSON object per line')
  .action(async (o: { type?: string; tenant?: string; after?: string; limit: number; follow?: boolean; json?: boolean }) => {
    const q = new URLSearchParams();
    for (const f of eventFlags) if (o[f] !== undefined) q.set(f, String(o[f]));
    const { events, lastId } = await callAgent<{ events: EventRow[]; lastId: number }>(socket(), 'GET', `/v1/security/events?${q}`).catch((err: unknown) => {
      throw flagError(err, eventFlags);
    });
    const show = (list: EventRow[], header: boolean) => {
      if (o.json) for (const e of list) process.stdout.write(`${stringifyExact(e)}\n`);
      else if (header) console.log(table(EVENT_HEADER, list.map(eventCells)));
      else for (const e of list) console.log(eventCells(e).filter((c) => c !== '').join('  '));
    };
    if (events.length > 0) show(events, true);
    else if (!o.json && !o.follow) console.log('no security events');
    if (!o.follow) return;
    const stop = new AbortController();
    process.once('SIGINT', () => stop.abort());
    process.once('SIGTERM', () => stop.abort());
    const s = new URLSearchParams();
    if (o.type) s.set('type', o.type);
    if (o.tenant) s.set('tenant', o.tenant);
    let resume = String(events.length ? events[events.length - 1]!.id : Math.max(lastId, Number(o.after ?? 0)));
    while (!stop.signal.aborted) {
      try {
        resume = (await streamAgent(socket(), `/v1/security/events/stream?${s}`, (e) => show([e as EventRow], false), { lastEventId: resume, signal: stop.signal })) ?? resume;
      } catch (err) {
        if (!(err instanceof AgentUnreachable)) throw err;
      }
      if (!stop.signal.aborted) await new Promise((r) => setTimeout(r, 1000)); // the agent restarts or sent us away: resume
    }
  });

type ContainerRow = {
  id: string; runtime: string; cgroup: string; cgroupId: string; pod: { uid: string; qos: string } | null; tenant: string | null; monitored: boolean;
  isolation: { index: number; bandwidth?: Partial<Record<'egress' | 'ingress', { rate: number; burst: number }>>; maxConnections?: number; destinations?: { default: string; rules: unknown[] }; syscalls?: { mode: string; deny: string[] }; sensitivePaths?: string[] } | null;
};

/** The isolation scope's limits in one cell: "bw 100mbit/256KiB, conns 2000, ...". */
function limitsCell(i: ContainerRow['isolation']): string {
  if (!i) return '-';
  const parts = [`scope ${i.index}`];
  for (const dir of ['egress', 'ingress'] as const) {
    const b = i.bandwidth?.[dir];
    if (b) parts.push(`${dir} ${b.rate / 1e6}mbit burst ${humanBytes(b.burst)}`);
  }
  if (i.maxConnections !== undefined) parts.push(`connections ${i.maxConnections}`);
  if (i.destinations) parts.push(`destinations ${i.destinations.default} + ${i.destinations.rules.length} rules`);
  if (i.syscalls) parts.push(`syscalls ${i.syscalls.mode} ${i.syscalls.deny.join(',')}`);
  if (i.sensitivePaths) parts.push(`paths ${i.sensitivePaths.length}`);
  return parts.join(', ');
}

program
  .command('containers')
  .description('the containers on this host (from the cgroup v2 tree): id, runtime, cgroup, tenant, the isolation scope that governs them and its limits, whether their syscalls are monitored (docs/isolation.md)')
  .option('--json', 'machine-readable output')
  .action(async (o: { json?: boolean }) => {
    const r = await callAgent<{ containers: ContainerRow[] }>(socket(), 'GET', '/v1/containers');
    if (o.json) return print(r);
    if (r.containers.length === 0) return console.log('no containers');
    console.log(table(['CONTAINER', 'RUNTIME', 'TENANT', 'MONITORED', 'CGROUP', 'LIMITS'],
      r.containers.map((c) => [c.id.slice(0, 12), c.runtime, c.tenant, c.monitored ? 'yes' : 'no', c.cgroup, limitsCell(c.isolation)])));
  });

/** An API error about the container id or since, as the CLI flag that carried it. */
const containerFlagError = (err: unknown): unknown => {
  if (err instanceof AgentError && err.field === 'id') return new Error(`--container: ${err.message.replace(/^id: /, '')}`);
  return flagError(err, ['since']);
};

type SyscallsBody = {
  container: { id: string; runtime: string; tenant: string; cgroup: string }; since: string | null;
  syscalls: Array<{ name: string | null; nr: number; count: string | number; firstSeen: string; lastSeen: string }>;
};

program
  .command('syscalls')
  .description("what a monitored container's processes asked the kernel for: syscalls by count, first and last seen, kept across agent and container restarts (docs/isolation.md)")
  .requiredOption('--container <id>', 'container id or a unique prefix of it')
  .option('--since <time>', 'ISO time or age (15m, 2h, 7d): only syscalls seen at or after it')
  .option('--json', 'machine-readable output')
  .action(async (o: { container: string; since?: string; json?: boolean }) => {
    const q = new URLSearchParams(o.since ? { since: o.since } : {});
    const r = await callAgent<SyscallsBody>(socket(), 'GET', `/v1/containers/${encodeURIComponent(o.container)}/syscalls?${q}`).catch((err: unknown) => {
      throw containerFlagError(err);
    });
    if (o.json) return print(r);
    console.log(`${r.container.id.slice(0, 12)} (${r.container.runtime}, tenant ${r.container.tenant}) ${r.container.cgroup}`);
    console.log(table(['SYSCALL', 'NR', 'COUNT', 'FIRST SEEN', 'LAST SEEN'],
      r.syscalls.map((c) => [c.name ?? '(unknown)', c.nr, BigInt(c.count), c.firstSeen, c.lastSeen])));
    console.log(`\n${r.syscalls.length} distinct syscalls${r.since ? ` since ${r.since}` : ''}`);
  });

const seccomp = program.command('seccomp').description('seccomp profiles learned from what containers were seen doing (docs/isolation.md)');
seccomp
  .command('generate')
  .description("an OCI seccomp profile (docker/podman --security-opt seccomp=FILE, Kubernetes localhost profiles) allowing exactly the syscalls monitored containers were seen making, EPERM for every other; observations are kept across agent and container restarts")
  .requiredOption('--container <id...>', 'container id or a unique prefix of it; several merge (the containers of one workload, e.g. before and after Kubernetes restarted it)')
  .option('--since <time>', 'ISO time or age (15m, 2h, 7d): only syscalls seen at or after it (default: everything ever seen)')
  .option('-o, --output <file>', 'write the profile there instead of to standard output')
  .action(async (o: { container: string[]; since?: string; output?: string }) => {
    type Generated = { container: { id: string }; profile: { syscalls: Array<{ names: string[] }> }; unnamed: number[] };
    const q = new URLSearchParams(o.since ? { since: o.since } : {});
    const all: Generated[] = [];
    for (const id of o.container) {
      all.push(await callAgent<Generated>(socket(), 'GET', `/v1/containers/${encodeURIComponent(id)}/seccomp?${q}`).catch((err: unknown) => {
        throw containerFlagError(err);
      }));
    }
    // One allow rule: the union of every container's.
    const names = [...new Set(all.flatMap((g) => g.profile.syscalls.flatMap((r) => r.names)))].sort();
    const profile = { ...all[0]!.profile, syscalls: names.length ? [{ ...all[0]!.profile.syscalls[0], names, action: 'SCMP_ACT_ALLOW' }] : [] };
    const text = `${stringifyExact(profile, 2)}\n`;
    if (o.output) writeFileSync(o.output, text);
    else process.stdout.write(text);
    const ids = all.map((g) => g.container.id.slice(0, 12)).join(', ');
    console.error(`${ids}: ${names.length} syscalls allowed${o.output ? `, written to ${o.output}` : ''}`);
    const unnamed = [...new Set(all.flatMap((g) => g.unnamed))].sort((a, b) => a - b);
    if (unnamed.length) console.error(`warning: syscall numbers ${unnamed.join(', ')} were seen but have no name on this architecture; the profile cannot allow them (they will fail with EPERM)`);
  });

program
  .command('token')
  .description('make an API token for the --listen API; prints the token once and the line for the --tokens file')
  .requiredOption('--name <name>', 'who holds it (shown in errors and logs)')
  .option('--tenant <name>', 'scope: only this tenant\'s invoices (default: operator, everything)')
  .action(async (o: { name: string; tenant?: string }) => {
    const { newToken } = await import('../api/auth.js');
    const { token, entry } = newToken(o.name, o.tenant);
    console.log(`token (give it to the caller; it is not stored): ${token}`);
    console.log('add to the tokens file under "tokens:":');
    console.log(`  - ${JSON.stringify(entry)}`);
  });

program
  .command('reload')
  .description('make the agent re-read and apply its policy file (same as SIGHUP); a bad policy changes nothing')
  .action(async () => print(await callAgent(socket(), 'POST', '/v1/reload')));

program
  .command('status')
  .description("the agent's attachments, generation and last export")
  .action(async () => print(await callAgent(socket(), 'GET', '/v1/status')));

program
  .command('doctor')
  .description('check that this host supports everything tollgate needs')
  .option('--json', 'machine-readable output')
  .action(async (o: { json?: boolean }) => {
    const { runDoctor, formatDoctorTable } = await import('../doctor/index.js');
    const report = await runDoctor();
    if (o.json) print(report);
    else console.log(formatDoctorTable(report));
    if (!report.ok) process.exitCode = 1;
  });

const policyCmd = program.command('policy').description('policy documents');
policyCmd
  .command('check <file>')
  .description('validate a policy document; errors name the field and line')
  .action(async (file: string) => {
    const { loadPolicyFile } = await import('../policy/index.js');
    const p = loadPolicyFile(file);
    console.log(`${file}: ok (${p.tenants.length} tenants)`);
  });
policyCmd
  .command('schema')
  .description('print the policy document as JSON Schema (for editors and linters)')
  .action(async () => {
    const { policyJsonSchema } = await import('../policy/index.js');
    print(policyJsonSchema());
  });

const lab = program.command('lab').description('a network-namespace lab: a host, tenants, internet, attacker, honeypot');
lab
  .command('up')
  .option('--prefix <p>', 'name prefix (1-6 chars) so several labs coexist', 'tg')
  .option('--tenants <n>', 'number of tenant containers', positiveInt('--tenants', 50), 3)
  .option('--write-policy <file>', 'write the example policy for this lab')
  .option('--json', 'print the topology as JSON')
  .action(async (o: { prefix: string; tenants: number; writePolicy?: string; json?: boolean }) => {
    const { labUp, examplePolicyYaml } = await import('../../lab/index.js');
    const topo = await labUp({ prefix: o.prefix, tenants: o.tenants });
    if (o.writePolicy) writeFileSync(o.writePolicy, examplePolicyYaml(topo));
    if (o.json) return print(topo);
    console.log(table(['NODE', 'ROLE', 'NETNS', 'HOST IFACE', 'IPV4', 'IPV6', 'CGROUP'],
      topo.nodes.map((n) => [n.name, n.role, n.netns, n.hostIface, n.ipv4, n.ipv6, n.cgroup])));
  });
lab
  .command('down')
  .option('--prefix <p>', 'name prefix', 'tg')
  .action(async (o: { prefix: string }) => {
    const { labDown } = await import('../../lab/index.js');
    await labDown(o.prefix);
  });
lab
  .command('status')
  .option('--prefix <p>', 'name prefix', 'tg')
  .option('--json', 'machine-readable output')
  .action(async (o: { prefix: string; json?: boolean }) => {
    const { labStatus } = await import('../../lab/index.js');
    print(await labStatus(o.prefix));
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  const e = err as Error & { issues?: unknown };
  process.stderr.write(`tollgate: ${e.message}\n`);
  process.exitCode = process.exitCode || 1;
});
