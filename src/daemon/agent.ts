// Composition root of the agent: policy -> compiled maps -> kernel; kernel
// counters -> ledger, metrics, API.
import { connect } from 'node:net';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import pino, { type Logger } from 'pino';
import { ensureBpffs, ifindexOf, RingBufReader, taiOffsetMs, withNetns } from '../kernel/index.js';
import { compileMetering, DEFAULT_CLASS, loadPolicyFile, parseDuration, type Policy } from '../policy/index.js';
import { DEFAULT_CLASS_ID, Ledger } from '../store/index.js';
import { MeteringDatapath } from '../metering/datapath.js';
import { Exporter } from '../metering/exporter.js';
import { FlowRecorder } from '../flows/index.js';
import { cgroupTenants, sameCgroupTenants, type CgroupTenants } from '../metering/cgroup-tenants.js';
import { ContainerSlots } from '../metering/container-slots.js';
import { meteringMetrics } from '../metrics/metering.js';
import type { FastifyInstance } from 'fastify';
import { buildApi, listenUnix, type AgentContext } from '../api/server.js';
import { loadTokens, type Tokens } from '../api/auth.js';
import { Billing, InvoiceCloser, QuotaEnforcer, QuotaWatcher, WebhookSender, quotaClass, type EnforceContext, type QuotaAlert, type QuotaState } from '../billing/index.js';
import { billingMetrics } from '../metrics/billing.js';
import { eventMetrics, securityMetrics } from '../metrics/security.js';
import { AlertStore } from '../store/index.js';
import { lockPinRoot } from './lock.js';
import { Firewall, unenforcedSecurity } from '../firewall/firewall.js';
import { describeSev } from '../firewall/events.js';
import { EventRecorder } from '../events/recorder.js';
import { DatapathEvents } from '../events/datapath.js';
import { SynGuard } from '../firewall/synflood.js';
import { Guards } from '../firewall/guards.js';
import { RulesOverlay } from '../firewall/overlay.js';
import { ApiError } from '../api/errors.js';
import { securityRulesSchema } from '../policy/index.js';
import { cidrContains, parseAddress, parseCidr } from '../policy/cidr.js';
import { Isolation } from '../isolation/isolation.js';
import { ContainerWatcher } from '../containers/index.js';

export interface AgentOptions {
  config: string;
  db: string;
  socket: string;
  pinRoot: string;
  /** Overrides metering.interval from the policy, e.g. "1s". */
  interval?: string;
  /** Run the datapath in this network namespace (name under /run/netns or a path). */
  netns?: string;
  /** Optional loopback TCP address for /metrics and the API, e.g. 127.0.0.1:9465 */
  listen?: string;
  /** Tokens file: the --listen API then needs a token; tenant tokens see only their invoices (src/api/auth.ts). */
  tokens?: string;
  maxTenants?: number;
  /** Class capacity of the counter array (class ids below it). */
  maxClasses?: number;
  /** Flow store (analytics, docs/flows.md); default flows.db next to the ledger. */
  flowsDb?: string;
  /** Security event store (docs/events.md); default events.db next to the ledger. */
  eventsDb?: string;
  /** JSON-lines audit file of every security event; default audit.jsonl next to the ledger. */
  auditLog?: string;
  logger?: Logger;
}

/** --listen: loopback only; without --tokens the API there has no authentication. */
function parseListen(v: string): { host: string; port: number } {
  const m = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\]|localhost):(\d{1,5})$/.exec(v);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new Error(`--listen: must be a loopback host:port such as 127.0.0.1:9465 or [::1]:9465, got "${v}"`);
  }
  return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/** The tenant whose address selectors hold an address (for events), or null. */
function tenantOfAddress(doc: Policy, address: string): string | null {
  const a = parseAddress(address);
  if (!a) return null;
  const host = { ...a, prefix: a.family === 4 ? 32 : 128 };
  return doc.tenants.find((t) => t.selectors.cidrs.some((c) => cidrContains(parseCidr(c), host)))?.name ?? null;
}

/** ifindex in the agent's namespace, or undefined when there is no such interface. */
function ifindexIfPresent(name: string): number | undefined {
  try {
    return ifindexOf(name);
  } catch {
    return undefined;
  }
}

/**
 * Ids the ledger would issue: existing ones kept, new names numbered after
 * the highest issued id (never below first). Used to compile a policy before
 * the ledger commits to any new id.
 */
function provisionalIds(issued: ReadonlyArray<{ id: number; name: string }>, wanted: readonly string[], first: number): Map<string, number> {
  const known = new Map(issued.map((t) => [t.name, t.id]));
  let next = Math.max(first, ...issued.map((t) => t.id + 1));
  return new Map(wanted.map((n) => [n, known.get(n) ?? next++]));
}

const CGROUP_RESCAN_MS = 1000;
const BUCKET_SWEEP_MS = 5000;

export interface ReloadResult {
  generation: number;
  tenants: number;
  interfaces: string[];
  detached: string[];
  warnings: string[];
}

export interface RunningAgent {
  stop(): Promise<void>;
  /** Re-reads --config and applies it; a policy that does not load or compile changes nothing. */
  reload(): Promise<ReloadResult>;
  done: Promise<void>;
}

async function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  const log = opts.logger ?? pino({ name: 'tollgate' });
  const policy: Policy = loadPolicyFile(opts.config);
  const intervalMs = opts.interval ? parseDuration(opts.interval, '--interval') : policy.metering.interval;
  if (intervalMs < 1000) throw new RangeError(`--interval: must be at least 1s, got ${opts.interval}`);
  const listen = opts.listen ? parseListen(opts.listen) : undefined;
  const tokens = opts.tokens === undefined ? undefined : loadTokens(opts.tokens);
  if (tokens && !listen) throw new Error('--tokens: only the --listen API takes tokens (the unix socket is the operator\'s); give --listen too');
  if (await socketInUse(opts.socket)) {
    throw new Error(`another agent is already serving ${opts.socket}; stop it or pass --socket`);
  }

  const unlock = lockPinRoot(opts.pinRoot);
  try {
    return await run(opts, { log, policy, intervalMs, listen, tokens, unlock });
  } catch (err) {
    unlock();
    throw err;
  }
}

interface Prepared {
  log: Logger;
  policy: Policy;
  intervalMs: number;
  listen: { host: string; port: number } | undefined;
  tokens: Tokens | undefined;
  unlock: () => void;
}

async function run(opts: AgentOptions, { log, policy, intervalMs, listen, tokens, unlock }: Prepared): Promise<RunningAgent> {
  ensureBpffs();
  // Only interface lookups and attaching happen inside --netns; the API, its
  // loopback listener and everything else stay in the agent's own namespace.
  const inNetns = <T>(fn: () => T): T => (opts.netns ? withNetns(opts.netns, fn) : fn());
  inNetns(() => undefined); // a missing namespace fails here, before anything is created

  mkdirSync(dirname(opts.db), { recursive: true });
  const ledger = Ledger.open(opts.db);
  const names = new Map<number, string>();
  const idOfTenant = new Map<string, number>(); // names, the other way round
  const tenantName = (id: number): string => names.get(id) ?? `tenant-id-${id}`;

  const datapath = MeteringDatapath.open({
    pinRoot: opts.pinRoot, maxTenants: opts.maxTenants, maxClasses: opts.maxClasses, maxFlows: policy.metering.flows.maxFlows,
  });
  if (datapath.replacedPins.length) log.warn({ maps: datapath.replacedPins }, 'pinned maps of another shape (an upgrade or a new capacity) were replaced; billing counters were adopted as they are');
  /** Billable flag and name of every class id any applied policy defined (the latest policy wins). */
  const billable = new Map<number, boolean>();
  const classNames = new Map<number, string>();
  let liveClasses: ReadonlyArray<{ name: string; id: number; billable: boolean }> = [];
  let exporter: Exporter | undefined;
  let recorder: FlowRecorder | undefined;
  let closer: InvoiceCloser | undefined;
  let quotaWatcher: QuotaWatcher | undefined;
  let webhooks: WebhookSender | undefined;
  let quotaEvents: RingBufReader | undefined;
  let secEvents: DatapathEvents | undefined;
  let pruneEvents: NodeJS.Timeout | undefined;
  let sweepBuckets: NodeJS.Timeout | undefined;
  const apps: FastifyInstance[] = [];
  let eventLog: EventRecorder | undefined;
  let synGuard: SynGuard | undefined;
  let guards: Guards | undefined;
  let isolation: Isolation | undefined;

  /**
   * Compiles and applies a policy: the idle generation is written, then made
   * live in one update; interfaces are attached (or adopted) and those no
   * longer configured detached. A policy that does not compile changes
   * nothing, not even the ledger's tenant and class lists: it is compiled
   * once with provisional ids before any id is handed out.
   */
  const slots = ContainerSlots.open(join(dirname(opts.db), 'container-slots.json'), datapath.counterId());
  const enforcer = new QuotaEnforcer(datapath.quotas, taiOffsetMs());
  const firewall = new Firewall(datapath.firewall, join(dirname(opts.db), 'firewall-slots.json'));
  const overlay = new RulesOverlay(join(dirname(opts.db), 'security-rules.json'));
  if (overlay.current) log.warn({ rules: overlay.current.rules.length, since: overlay.current.at }, 'security rules set through the API replace the policy\'s (DELETE /v1/security/rules to go back)');
  const ifindexHere = (name: string) => inNetns(() => ifindexIfPresent(name));
  const enforceContext = (): EnforceContext => ({ tenantIds: idOfTenant, classes: liveClasses, maxClasses: datapath.maxClasses });
  let live: { doc: Policy; cgroups: CgroupTenants } | undefined;
  const applyIsolation = (doc: Policy, cgroups: CgroupTenants): void => {
    const { syscalls, network, bandwidth } = isolation?.apply(doc, cgroups) ?? {};
    if (syscalls) log.info({ ...syscalls }, 'containers monitored');
    if (syscalls?.unassigned.length) log.warn({ containers: syscalls.unassigned }, 'no syscall slot left: these containers are not monitored');
    if (network) log.info({ ...network }, 'container network rules live');
    if (network?.unassigned.length) log.warn({ containers: network.unassigned }, 'no connection slot left: these containers\' connections are neither limited nor checked');
    if (network?.uncovered.length) log.warn({ containers: network.uncovered }, 'outside the cgroup the network hooks cover: not limited or checked');
    if (bandwidth) log.info({ ...bandwidth }, 'container bandwidth limits live');
  };
  const apply = (doc: Policy, cgroups = cgroupTenants(doc)): ReloadResult => {
    const assigned = slots.assign(cgroups.containers);
    if (assigned.unassigned.length) log.warn({ containers: assigned.unassigned }, 'no container counter slot left: billed to the tenant, missing from the per-container breakdown');
    const declared = (doc.classes ?? []).map((c) => c.name).filter((n) => n !== DEFAULT_CLASS);
    const compile = (tenantIds: ReadonlyMap<string, number>, classIds: ReadonlyMap<string, number>) =>
      compileMetering(doc, {
        tenantIds, classIds, cgroupTenants: cgroups.tenants, containerSlots: assigned.slots, ifindexOf: ifindexIfPresent,
        maxTenants: datapath.maxTenants, maxClasses: datapath.maxClasses,
        generation: datapath.liveGeneration() === 0 ? 1 : 0,
      });
    const provisionalTenants = provisionalIds(ledger.tenants(), doc.tenants.map((t) => t.name), 1);
    const dry = inNetns(() => compile(provisionalTenants, provisionalIds(ledger.classes(), declared, DEFAULT_CLASS_ID + 1)));
    enforcer.check(doc, { tenantIds: provisionalTenants, classes: dry.classes, maxClasses: datapath.maxClasses }, Date.now());
    firewall.check(overlay.effective(doc), provisionalTenants, ifindexHere);
    isolation?.check(doc, cgroups);
    const tenantIds = ledger.ensureTenants(doc.tenants.map((t) => t.name));
    const classIds = ledger.ensureClasses(declared);
    for (const t of ledger.tenants()) {
      names.set(t.id, t.name);
      idOfTenant.set(t.name, t.id);
    }
    const { plan, attachments, detached, cgroupRoot } = inNetns(() => {
      const compiled = compile(tenantIds, classIds);
      return { plan: compiled, ...datapath.install(compiled) };
    });
    const fw = firewall.apply(overlay.effective(doc), tenantIds, ifindexHere);
    synGuard?.apply(doc.security?.synflood);
    guards?.apply(doc.security, ifindexHere);
    applyIsolation(doc, cgroups);
    live = { doc, cgroups };
    for (const c of plan.classes) {
      billable.set(c.id, c.billable);
      classNames.set(c.id, c.name);
    }
    liveClasses = plan.classes;
    for (const a of attachments) log.info({ ...a }, `${a.adopted ? 'adopted pinned' : 'attached'} ${a.metered ? 'metering and filtering' : 'filtering'} links`);
    if (doc.security) log.info({ generation: fw.generation, rules: fw.rules }, 'security rules live');
    for (const part of unenforcedSecurity(doc.security)) log.warn({ part }, 'accepted but not enforced by this version yet');
    for (const w of plan.warnings) log.warn(w);
    if (detached.length) log.info({ detached }, 'detached interfaces no longer in the policy');
    if (cgroupRoot !== undefined) log.info({ cgroupRoot, cgroups: plan.cgroups.length }, 'cgroup hooks attached');
    return { generation: plan.generation, tenants: plan.tenants.length, interfaces: plan.attach.map((a) => a.ifname), detached, warnings: plan.warnings };
  };

  try {
    const events = new EventRecorder({
      db: opts.eventsDb ?? join(dirname(opts.db), 'events.db'),
      audit: opts.auditLog ?? join(dirname(opts.db), 'audit.jsonl'),
      onAuditError: (err) => log.error({ err }, 'writing the audit file failed; the event store has the events, and the next write catches the file up'),
    });
    eventLog = events;
    synGuard = new SynGuard(datapath.synMaps(), {
      tenantOf: (address) => tenantOfAddress(live?.doc ?? policy, address),
      record: (list) => {
        for (const e of events.record(list)) log.warn({ ...e.detail, tenant: e.tenant }, e.type === 'synflood.start' ? 'SYN flood: mitigation engaged' : 'SYN flood: mitigation ended');
      },
      onError: (err) => log.error({ err }, 'SYN-flood poll failed; the next one retries'),
    });
    guards = new Guards(datapath.firewall, datapath.guardMaps(), {
      tenantOf: (address) => tenantOfAddress(live?.doc ?? policy, address),
      record: (list) => {
        for (const e of events.record(list)) log.warn({ ...e.detail, tenant: e.tenant }, e.type);
      },
      onError: (err) => log.error({ err }, 'flood and scan poll failed; the next one retries'),
    });
    if (events.caughtUp) log.warn({ events: events.caughtUp }, 'audit file caught up with events the store recorded before a crash');
    const iso = (isolation = Isolation.open({ pinRoot: opts.pinRoot, syscallsDb: join(dirname(opts.db), 'syscalls.db') }));
    const first = apply(policy);
    iso.start((err) => log.error({ err }, 'moving syscall counts into the store failed; the next round retries'));
    // Detection runs from the start: before the API answers, the agent is already watching.
    synGuard.start();
    guards.start();
    const flows = new FlowRecorder(datapath, opts.flowsDb ?? join(dirname(opts.db), 'flows.db'), {
      onExport(r) {
        metrics.flowExportDuration.observe(r.durationMs / 1000);
        log.debug({ flows: r.flows, live: r.live, ms: r.durationMs }, 'flows exported');
      },
      onError(err) {
        log.error({ err }, 'flow export failed; the next interval catches up (billing is not affected)');
      },
    });
    recorder = flows;
    const applyFlows = async (doc: Policy): Promise<void> => {
      const f = doc.metering.flows;
      if (f.maxFlows !== datapath.maxFlows) log.warn({ maxFlows: f.maxFlows, current: datapath.maxFlows }, 'metering.flows.maxFlows takes effect when the agent restarts');
      await flows.apply({ enabled: f.enabled, intervalMs: f.interval, retentionMs: f.retention, maxStoreBytes: f.maxStoreBytes });
    };
    const metrics = meteringMetrics(datapath, {
      tenant: tenantName,
      class: (id) => classNames.get(id) ?? `class-id-${id}`,
      classes: () => liveClasses,
      flows: () => flows.last,
    });
    exporter = new Exporter(datapath, ledger, intervalMs, (id) => billable.get(id) ?? true, {
      containers: () => {
        return datapath.readContainerCounters().flatMap((r) => {
          const o = slots.owner(r.slot);
          const tenantId = o && idOfTenant.get(o.tenant);
          return o && tenantId !== undefined ? [{ ...r, containerId: o.containerId, runtime: o.runtime, tenantId }] : [];
        });
      },
      onExport(r) {
        metrics.exportDuration.observe(r.durationMs / 1000);
        metrics.ledgerRows.inc(r.rows);
        log.debug({ rows: r.rows, ms: r.durationMs }, 'exported');
      },
      onError(err) {
        metrics.exportFailures.inc();
        log.error({ err }, 'export failed; the next interval catches up');
      },
    });
    const billing = new Billing(ledger, () => live?.doc ?? policy);
    closer = new InvoiceCloser(billing, {
      onExport({ closed, failed }) {
        for (const c of closed) log.info({ ...c }, 'billing period closed');
        for (const f of failed) log.error(f, 'billing period not closed; the next check retries');
      },
      onError(err) {
        log.error({ err }, 'closing billing periods failed; the next check retries');
      },
    });
    securityMetrics(metrics.registry, () => ({ ...firewall.status(), synflood: synGuard!.status(), guards: guards!.status() }));
    eventMetrics(metrics.registry, { counts: events.counts, kernel: () => secEvents?.stats(), streams: () => events.hub.subscribers });
    const alertStore = new AlertStore(ledger);
    let quotaStates: readonly QuotaState[] = [];
    const bm = billingMetrics(metrics.registry, { quotas: () => quotaStates, enforced: () => enforcer.status(), deliveries: () => alertStore.backlog() });
    const raisedAlert = (a: QuotaAlert, from: string): void => {
      bm.alertsRaised.inc({ type: a.type });
      log.warn({ ...a, from }, a.type === 'quota.exhausted' ? 'quota exhausted' : 'quota threshold crossed');
    };
    /** Quotas into the datapath, seeded from the ledger's usage (states: QuotaWatcher.states of the same policy). */
    const enforce = (doc: Policy, states: readonly QuotaState[]): void => {
      const { seeded } = enforcer.apply(doc, enforceContext(), Date.now(), (i) => states[i]?.used ?? 0n);
      for (const s of seeded) log.info({ tenant: s.quota.tenant, class: quotaClass(s.quota), direction: s.quota.direction, period: s.period.id, used: String(states[s.index]?.used ?? 0n) }, 'quota period seeded in the datapath');
    };
    quotaWatcher = new QuotaWatcher(ledger, () => live?.doc ?? policy, intervalMs, {
      onExport({ states, raised }) {
        quotaStates = states;
        for (const a of raised) raisedAlert(a, 'ledger');
        try {
          enforce(live?.doc ?? policy, states); // new periods' ends and seeds
        } catch (err) {
          log.error({ err }, 'quota enforcement update failed; the next interval retries');
        }
      },
      onError(err) {
        log.error({ err }, 'quota check failed; the next interval retries');
      },
    });
    webhooks = new WebhookSender(alertStore, { maxAttempts: policy.alerts?.maxAttempts }, {
      onExport({ failed }) {
        for (const f of failed) {
          bm.webhookFailures.inc();
          log[f.gaveUp ? 'error' : 'warn']({ ...f }, f.gaveUp ? 'alert webhook gave up' : 'alert webhook failed; retrying');
        }
      },
      onError(err) {
        log.error({ err }, 'alert delivery round failed; the next one retries');
      },
    });
    const started = new Date();
    const exp = exporter;
    const reload = async (): Promise<ReloadResult> => {
      const doc = loadPolicyFile(opts.config); // a bad document throws here and nothing changes
      const r = apply(doc);
      await exp.exportNow(); // new quotas are seeded from a ledger that is up to date
      enforce(doc, quotaWatcher!.states(Date.now(), doc));
      await applyFlows(doc);
      log.info({ ...r }, 'policy reloaded');
      return r;
    };
    const ctx: AgentContext = {
      get flows() {
        return flows.store;
      },
      ledger,
      billing,
      quotas: () => {
        const fromLedger = new Map(quotaStates.map((q) => [`${q.tenant}/${q.class}/${q.direction}`, q.used]));
        return enforcer.status().map((q) => ({ ...q, ledgerUsed: fromLedger.get(`${q.tenant}/${q.class}/${q.direction}`) ?? null }));
      },
      alerts: (limit) => alertStore.recent(limit),
      isolation: {
        containers: () => iso.containers(live?.cgroups),
        resolve: (id) => iso.resolve(id),
        syscalls: (id, since) => iso.syscalls(id, since),
      },
      security: () => ({ ...firewall.status(), rulesFrom: overlay.current ? 'api' : 'policy', synflood: synGuard!.status(), guards: guards!.status() }),
      setRules: async (body) => {
        const t0 = performance.now();
        const parsed = securityRulesSchema.safeParse(body);
        if (!parsed.success) {
          const issue = parsed.error.issues[0]!;
          const field = issue.path.join('.') || 'body';
          throw new ApiError('BAD_REQUEST', `${field}: ${issue.message}`, field);
        }
        const next = { ...parsed.data, at: new Date().toISOString() };
        const doc = overlay.effective(live?.doc ?? policy, next);
        try {
          firewall.check(doc, idOfTenant, ifindexHere);
        } catch (err) {
          throw new ApiError('BAD_REQUEST', `rules not applied, nothing changed: ${(err as Error).message}`, 'rules');
        }
        overlay.save(next);
        const r = firewall.apply(doc, idOfTenant, ifindexHere);
        const ms = Math.round((performance.now() - t0) * 1000) / 1000;
        log.info({ rules: r.rules, generation: r.generation, ms }, 'security rules set through the API');
        return { ...r, ms };
      },
      clearRules: async () => {
        overlay.clear();
        const r = firewall.apply(live?.doc ?? policy, idOfTenant, ifindexHere);
        log.info({ rules: r.rules, generation: r.generation }, 'security rules back to the policy\'s');
        return r;
      },
      events: { store: events.store, hub: events.hub },
      exporter: exp,
      reload,
      registry: metrics.registry,
      status: () => ({
        started: started.toISOString(),
        intervalMs,
        pinRoot: opts.pinRoot,
        netns: opts.netns ?? null,
        adoptedCounters: datapath.adopted,
        counterId: datapath.counterId(),
        generation: datapath.liveGeneration(),
        attachments: datapath.listAttachments(),
        lastExport: exp.last ? { at: exp.last.at.toISOString(), rows: exp.last.rows, durationMs: exp.last.durationMs } : null,
        exportFailures: exp.failures,
        reasons: datapath.readReasons(),
        flows: {
          enabled: datapath.flowsEnabled(),
          lastExport: flows.last ? { at: flows.last.at, flows: flows.last.flows, live: flows.last.live, evicted: flows.last.evicted, durationMs: flows.last.durationMs } : null,
          exportFailures: flows.failures,
        },
      }),
    };
    // One server per listener: the unix socket for the CLI, loopback TCP for Prometheus.
    const unixApi = buildApi(ctx);
    apps.push(unixApi);
    await listenUnix(unixApi, opts.socket);
    if (listen) {
      const tcpApi = buildApi(ctx, { tokens });
      apps.push(tcpApi);
      await tcpApi.listen(listen);
    }
    exp.start();
    // Cgroups matching a tenant's glob that appear outside an already mapped
    // cgroup need a map entry, and containers come and go: rescan when
    // inotify says a container cgroup appeared or went (tens of ms), and
    // every second in any case, re-applying what changed.
    const rescanCgroups = (): void => {
      if (!live || !live.doc.tenants.some((t) => t.selectors.cgroups.length > 0)) return;
      try {
        const now = cgroupTenants(live.doc);
        if (!sameCgroupTenants(now, live.cgroups)) log.info({ ...apply(live.doc, now) }, 'cgroups changed, policy re-applied');
        else {
          applyIsolation(live.doc, now); // the same tenants' cgroups, maybe other cgroups below containers
          live = { doc: live.doc, cgroups: now };
        }
      } catch (err) {
        log.error({ err }, 'cgroup rescan failed; the next one retries');
      }
    };
    const rescan = setInterval(rescanCgroups, CGROUP_RESCAN_MS);
    rescan.unref();
    const containerWatch = new ContainerWatcher({ rescanMs: 60_000 });
    containerWatch.on('error', (err) => log.warn({ err }, 'container watcher: the one-second rescan still notices containers'));
    try {
      containerWatch.start(); // its 'added' for the containers already there come before the listeners below
    } catch (err) {
      log.warn({ err }, 'container watcher did not start: containers are noticed by the one-second rescan');
    }
    let rescanSoon: NodeJS.Immediate | undefined;
    const onContainer = (): void => {
      rescanSoon ??= setImmediate(() => {
        rescanSoon = undefined;
        rescanCgroups(); // one rescan for a burst of containers
      });
    };
    containerWatch.on('added', onContainer).on('removed', onContainer);
    await exp.exportNow(); // opens the interval: first checkpoint right away
    enforce(policy, quotaWatcher.states(Date.now(), policy));
    const qev = datapath.quotaEvents();
    quotaEvents = new RingBufReader(qev.events, { lostCounter: { map: qev.lost, index: 0 } });
    quotaEvents.on('records', (records) => {
      const doc = live?.doc ?? policy;
      let raised = false;
      for (const r of records) {
        const info = enforcer.describe(r, doc);
        if (info?.type === 'renewed') log.info({ ...info }, 'quota period renewed in the datapath');
        if (info?.type !== 'alert') continue;
        if (alertStore.record(info.alert.key, JSON.stringify(info.alert), doc.alerts?.webhooks ?? [], Date.now())) {
          raisedAlert(info.alert, 'datapath');
          raised = true;
        }
      }
      if (raised) webhooks?.runNow().catch(() => undefined); // deliver now rather than at the next tick
    });
    quotaEvents.on('lost', (n) => log.warn({ lost: String(n) }, 'quota events lost (ring buffer full); the ledger check raises their alerts'));
    quotaEvents.on('error', (err) => log.error({ err }, 'quota event reader failed'));
    await quotaEvents.ready;
    const ifnames = new Map<number, string>();
    /** A datapath ring was full: an alert (once per loss total), also to the webhooks. */
    const eventsLost = (what: 'security' | 'isolation', ringId: number, lost: bigint, total: bigint): void => {
      const at = new Date().toISOString();
      const alert = { type: `${what}.events.lost`, key: `${what}.events.lost:${ringId}:${total}`, lost: String(lost), total: String(total), at };
      log.error(alert, `${what} events lost: the datapath found its event ring full (enforcement was not affected)`);
      if (alertStore.record(alert.key, JSON.stringify(alert), (live?.doc ?? policy).alerts?.webhooks ?? [], Date.now())) {
        webhooks?.runNow().catch(() => undefined);
      }
    };
    const sev = datapath.securityEvents();
    const taiMs = taiOffsetMs();
    secEvents = await DatapathEvents.start({
      ...sev,
      recorder: events,
      describe: (r) => describeSev(r, {
        rule: (slot) => firewall.ruleAt(slot),
        signature: (i) => firewall.signatureAt(i),
        tenant: (id) => names.get(id) ?? `tenant-id-${id}`,
        iface: (ifindex) => {
          if (!ifnames.has(ifindex)) for (const a of datapath.listAttachments()) ifnames.set(a.ifindex, a.ifname); // attachments change with reloads
          return ifnames.get(ifindex) ?? null;
        },
      }, taiMs),
      onLost: (lost, total) => eventsLost('security', sev.ring.id, lost, total),
      onError: (err) => log.error({ err }, 'security event reader failed; events stay in the ring for the next read'),
    });
    await iso.startEvents({
      recorder: events,
      taiOffsetMs: taiMs,
      onLost: (lost, total, ringId) => eventsLost('isolation', ringId, lost, total),
      onError: (err) => log.error({ err }, 'isolation event reader failed; events stay in the ring for the next read'),
    });
    const prune = () => {
      const ev = (live?.doc ?? policy).security?.events;
      try {
        const n = events.store.prune(Date.now(), ev?.retention ?? 7 * 86_400_000, ev?.maxStored ?? 1_000_000);
        if (n) log.debug({ events: n }, 'old security events pruned from the store');
      } catch (err) {
        log.error({ err }, 'pruning the event store failed; the next round retries');
      }
    };
    prune();
    pruneEvents = setInterval(prune, 60_000);
    pruneEvents.unref();
    // Rate-limit buckets that are full again take room a new source may need.
    sweepBuckets = setInterval(() => {
      try {
        firewall.sweepBuckets(process.hrtime.bigint());
      } catch (err) {
        log.error({ err }, 'sweeping rate-limit buckets failed; the next round retries');
      }
    }, BUCKET_SWEEP_MS);
    sweepBuckets.unref();
    await applyFlows(policy);
    closer.start();
    await closer.runNow().catch(() => undefined); // reported by onError
    quotaWatcher.start();
    webhooks.start();
    log.info({ socket: opts.socket, intervalMs, tenants: first.tenants }, 'agent running');

    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    let stopping: Promise<void> | undefined;
    const stop = (): Promise<void> => {
      stopping ??= (async () => {
        clearInterval(rescan);
        containerWatch.stop();
        clearImmediate(rescanSoon);
        await closer?.stop();
        await quotaWatcher?.stop();
        await webhooks?.stop();
        await quotaEvents?.stop();
        clearInterval(pruneEvents);
        clearInterval(sweepBuckets);
        synGuard?.stop(); // guards stay pinned: mitigation goes on, the next agent ends it
        guards?.stop(); // blocks stay pinned and expire by themselves
        await secEvents?.stop();
        await flows.stop(); // the kernel keeps recording flows for the next agent, like the counters
        await exp.stop();
        try {
          await exp.exportNow(); // the final partial interval
        } catch (err) {
          log.error({ err }, 'final export failed; counters stay in the pinned maps for the next agent');
        }
        for (const a of apps) await a.close();
        datapath.close(); // pins stay: counting goes on without us
        try {
          await isolation?.stop(); // monitoring stays pinned too; the store gets the last counts
        } catch (err) {
          log.error({ err }, 'storing the last syscall counts failed; the next agent moves them from the kernel');
        }
        ledger.close();
        events.close();
        unlock();
        resolveDone();
      })();
      return stopping;
    };
    return { stop, done, reload };
  } catch (err) {
    for (const a of apps) await a.close().catch(() => undefined);
    await exporter?.stop();
    await recorder?.stop();
    await closer?.stop();
    await quotaWatcher?.stop();
    await webhooks?.stop();
    await quotaEvents?.stop();
    clearInterval(pruneEvents);
    clearInterval(sweepBuckets);
    synGuard?.stop();
    guards?.stop();
    await secEvents?.stop();
    datapath.close();
    try {
      await isolation?.stop();
    } catch {
      // the error that stopped the start matters more
    }
    ledger.close();
    eventLog?.close();
    throw err;
  }
}
