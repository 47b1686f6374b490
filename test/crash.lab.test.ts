// Exactly once through crashes, end to end: the real agent meters continuous
// lab traffic of known size and is killed with SIGKILL over and over: while
// it starts (loading programs, adopting pins, applying the policy), at random
// moments once it serves, while a flush is in flight, and (TOLLGATE_TEST_FAULT)
// between reading the counters and committing, and right after committing.
// Each restarted agent adopts the pinned counter map. Afterwards the ledger
// equals what the traffic drivers sent, per tenant, class and direction, and
// the usage table holds every interval once. The ledger-level crash test with
// a writer fixture is src/store/crash.test.ts; this one runs the whole agent.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import {
  examplePolicyYaml, findNode, labDown, labUp, pinDirPath, ping, tenantNodes, trafgenBurst, udpBurst, type EndpointNode, type Family, type Topology,
} from '../lab/index.js';
import { FAULT_ENV, type FaultPoint } from '../src/metering/exporter.js';
import { cleanupAgentDir, flushedClassUsage, flushedUsage, runCli, startAgentProcess, usageDelta, type AgentProcess, type UsageTable } from './helpers/agent.js';

const prefix = `tgcr${Math.random().toString(36).slice(2, 4)}`;
/** Counter arrays sized for the lab (3 tenant ids, 3 class ids): a full-size array takes ~0.5 s per export to read. */
const SMALL_MAPS = ['--max-tenants', '8', '--max-classes', '4'];
type KillKind = 'starting' | 'random' | 'in-flush' | FaultPoint;
/** How many kills of each kind, run in a shuffled order. */
const PLAN: Record<KillKind, number> = { starting: 14, random: 8, 'in-flush': 10, 'after-read': 12, 'after-commit': 8 };
/** Hard bound on the traffic, whatever happens to the kill loop. */
const TRAFFIC_MAX_MS = 900_000;

const rand = (lo: number, hi: number): number => lo + Math.floor(Math.random() * (hi - lo + 1));

function shuffled<T>(xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rand(0, i);
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

function add(t: UsageTable, key: string, packets: number, bytes: number): void {
  const v = t.get(key) ?? { packets: 0, bytes: 0 };
  t.set(key, { packets: v.packets + packets, bytes: v.bytes + bytes });
}

function assertExact(got: UsageTable, want: UsageTable, what: string): void {
  const keys = [...new Set([...got.keys(), ...want.keys()])].sort();
  const zero = { packets: 0, bytes: 0 };
  assert.deepEqual(
    Object.fromEntries(keys.map((k) => [k, got.get(k) ?? zero])),
    Object.fromEntries(keys.map((k) => [k, want.get(k) ?? zero])),
    `${what}: ledger differs from ground truth`,
  );
}

/** Ground truth keyed "tenant/class/direction" summed to "tenant/direction". */
function byTenant(t: UsageTable): UsageTable {
  const out: UsageTable = new Map();
  for (const [k, v] of t) {
    const [tenant, , direction] = k.split('/');
    add(out, `${tenant}/${direction}`, v.packets, v.bytes);
  }
  return out;
}

/** One run of a traffic driver: what it put on the wire, as [tenant/class/direction, packets, IP bytes]. */
type Driver = () => Promise<Array<[string, number, number]>>;

/**
 * Runs every driver back to back, all at once, until stop() or
 * TRAFFIC_MAX_MS, and adds each run's exact size to the truth.
 */
function runTraffic(drivers: Driver[]) {
  const truth: UsageTable = new Map();
  const deadline = Date.now() + TRAFFIC_MAX_MS;
  let stopping = false;
  let runs = 0;
  let failure: unknown;
  const done = Promise.all(drivers.map(async (drive) => {
    while (!stopping && Date.now() < deadline) {
      try {
        for (const [key, packets, bytes] of await drive()) add(truth, key, packets, bytes);
        runs++;
      } catch (err) {
        failure ??= err;
        stopping = true;
      }
    }
  }));
  return {
    truth,
    runs: () => runs,
    failure: () => failure,
    /** True while every driver is still sending (none hit the deadline or failed). */
    running: () => !stopping && Date.now() < deadline,
    async stop(): Promise<void> {
      stopping = true;
      await done;
    },
  };
}

/** Resolves with true once the agent process has exited, false after timeoutMs. */
function exited(a: AgentProcess, timeoutMs: number): Promise<boolean> {
  if (a.child.exitCode !== null || a.child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), timeoutMs);
    a.child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

describe('exactly once through 50+ agent crashes under continuous traffic', { concurrency: false }, () => {
  let topo: Topology;
  let dir: string;
  let policy: string;
  let agent: AgentProcess | undefined;
  let traffic: ReturnType<typeof runTraffic> | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tollgate-crash-'));
    topo = await labUp({ prefix, tenants: 2 });
    policy = join(dir, 'policy.yaml');
    writeFileSync(policy, examplePolicyYaml(topo));
  });

  after(async () => {
    await agent?.kill().catch(() => undefined);
    await traffic?.stop().catch(() => undefined);
    if (agent) cleanupAgentDir(agent);
    await labDown(prefix).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  /** Starts an agent on the shared ledger and pins; with `fault`, the agent gets TOLLGATE_TEST_FAULT. */
  function start(fault?: string): Promise<AgentProcess> {
    return startAgentProcess({
      config: policy, netns: topo.hostNetns, pinRoot: pinDirPath(prefix), dir, interval: '1s', extraArgs: SMALL_MAPS,
      env: fault ? { [FAULT_ENV]: fault } : {},
    });
  }


  test('kill -9 while starting, at random moments, during flushes, between read and commit, after commit: the ledger equals ground truth', { timeout: 1_200_000 }, async (t: TestContext) => {
    const t0 = performance.now();
    const [a, b] = tenantNodes(topo);
    const internet = findNode(topo, 'internet');
    let port = 30000;
    // Light on the CPU (the verifier of each restarting agent needs it):
    // ping and trafgen are small C programs. Requests and replies both count.
    const echo = (from: EndpointNode, to: EndpointNode, family: Family, cls: string): Driver => async () => {
      const p = await ping(from, family === 4 ? to.ipv4 : to.ipv6, 500, rand(0, 1400)); // 100/s
      const sides: Array<[EndpointNode, 'egress' | 'ingress', 'ingress' | 'egress']> = [[from, 'egress', 'ingress'], [to, 'ingress', 'egress']];
      return sides.filter(([n]) => n.role === 'tenant').flatMap(([n, req, rep]): Array<[string, number, number]> => [
        [`${n.name}/${cls}/${req}`, p.packets, p.ipBytes],
        [`${n.name}/${cls}/${rep}`, p.replies.packets, p.replies.ipBytes],
      ]);
    };
    const drivers: Driver[] = [
      echo(a, internet, 4, 'internet'),
      echo(internet, b, 6, 'internet'),
      echo(a, b, 6, 'internal'),
      async () => { // DNS-port datagrams from a packet socket, ~1000/s: management
        const r = await trafgenBurst(a, internet, 3000, rand(0, 1400), { port: 53, gapUs: 1000 });
        assert.equal(r.received?.packets, r.packets, 'every trafgen datagram reached the internet node');
        return [[`${a.name}/management/egress`, r.packets, r.ipBytes]];
      },
      async () => { // UDP sockets, paced, with pauses
        await sleep(rand(500, 2000));
        const r = await udpBurst(internet, b, port++, [rand(0, 1400), rand(0, 1400)], rand(100, 300), { burst: 1 });
        return [[`${b.name}/internet/ingress`, r.packets, r.ipBytes]];
      },
    ];

    const firstStart = performance.now();
    agent = await start();
    const firstStartMs = performance.now() - firstStart;
    const first = await agent.call<{ counterId: string; adoptedCounters: boolean }>('GET', '/v1/status');
    assert.equal(first.adoptedCounters, false, 'the first agent creates the counter map');
    const baseClass = await flushedClassUsage(agent);
    const baseTenant = await flushedUsage(agent);
    const exportMs = (await agent.call<{ durationMs: number }>('POST', '/v1/flush')).durationMs;
    traffic = runTraffic(drivers);
    await agent.kill(); // every agent below starts on a ledger and maps with traffic in flight
    // The same agent as start(), for runCli, which SIGKILLs it when its timeout expires.
    const agentArgs = ['--socket', agent.socket, 'agent', '--config', policy, '--db', agent.db, '--pin-root', agent.pinRoot,
      '--interval', '1s', '--log-level', 'warn', '--netns', topo.hostNetns, ...SMALL_MAPS];

    const kinds = shuffled(Object.entries(PLAN).flatMap(([k, n]) => Array<KillKind>(n).fill(k as KillKind)));
    const done = Object.fromEntries(Object.keys(PLAN).map((k) => [k, 0])) as Record<KillKind, number>;
    const startMs: number[] = [];
    for (const [i, kind] of kinds.entries()) {
      assert.ok(traffic.running(), `traffic stopped before kill ${i} (${String(traffic.failure() ?? 'deadline')})`);
      if (kind === 'starting') {
        const r = await runCli(agentArgs, rand(100, Math.ceil(firstStartMs)));
        assert.equal(r.code, null, `agent ${i} ended on its own instead of being killed while starting:\n${r.stderr}`);
        done[kind]++;
        continue;
      }
      const s0 = performance.now();
      agent = await start(kind === 'after-read' || kind === 'after-commit' ? `${kind}:${[1, 0.5, 0.3][rand(0, 2)]}` : undefined);
      startMs.push(performance.now() - s0);
      const s = await agent.call<{ counterId: string; adoptedCounters: boolean }>('GET', '/v1/status');
      assert.deepEqual([s.counterId, s.adoptedCounters], [first.counterId, true], `restart ${i} adopted the pinned counter map`);
      if (kind === 'random') {
        await sleep(rand(0, 2200)); // crosses 0-2 interval exports
        await agent.kill();
      } else if (kind === 'in-flush') {
        await sleep(rand(0, 1000));
        const flush = agent.call('POST', '/v1/flush').catch(() => undefined);
        await sleep(rand(0, Math.ceil(2 * exportMs) + 3));
        await agent.kill();
        await flush;
      } else {
        // The interval timer exports every second; extra flushes make the
        // fault come sooner. Each export dies with the fault's probability.
        const victim: AgentProcess = agent;
        let dead = false;
        const death = exited(victim, 20_000).finally(() => (dead = true));
        while (!dead) {
          await Promise.race([victim.call('POST', '/v1/flush').catch(() => undefined), death]);
          if (!dead) await Promise.race([sleep(rand(0, 400)), death]);
        }
        assert.ok(await death, `agent ${i} with a ${kind} fault still runs after 20 s`);
        assert.equal(victim.child.signalCode, 'SIGKILL', `agent ${i} died of its ${kind} fault:\n${victim.output()}`);
        assert.match(victim.output(), new RegExp(`${FAULT_ENV}: SIGKILL ${kind}`), `agent ${i} died at ${kind}`);
      }
      done[kind]++;
    }
    const killsMs = performance.now() - t0;
    await traffic.stop();
    assert.equal(traffic.failure(), undefined, `traffic: ${String(traffic.failure())}`);

    // One clean run: adopt, export everything, stop with the final export.
    agent = await start();
    const last = await agent.call<{ counterId: string }>('GET', '/v1/status');
    assert.equal(last.counterId, first.counterId);
    assertExact(usageDelta(baseClass, await flushedClassUsage(agent)), traffic.truth, 'per tenant, class and direction');
    assertExact(usageDelta(baseTenant, await flushedUsage(agent)), byTenant(traffic.truth), 'per tenant and direction');
    assert.equal(await agent.stop(), 0, 'clean stop');

    const db = new Database(agent.db, { readonly: true, fileMustExist: true });
    try {
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
      // The same interval of a counter twice would be a duplicate key; a
      // re-export of an interval with a moved end would overlap instead.
      assert.deepEqual(
        db.prepare(`SELECT host, epoch_id, tenant_id, class_id, direction, interval_end, count(*) AS n FROM usage
                    GROUP BY host, epoch_id, tenant_id, class_id, direction, interval_end HAVING n > 1`).all(),
        [], 'no duplicate (host, epoch, tenant, class, direction, interval) rows',
      );
      const epochs = db.prepare('SELECT id, started_at, checkpoint_at FROM epochs').all() as Array<{ id: number; started_at: number; checkpoint_at: number }>;
      assert.equal(epochs.length, 1, 'one epoch: every agent adopted the same counter map on the same boot');
      const intervals = db.prepare('SELECT DISTINCT epoch_id, interval_start, interval_end FROM usage ORDER BY epoch_id, interval_end')
        .all() as Array<{ epoch_id: number; interval_start: number; interval_end: number }>;
      intervals.forEach((x, k) => {
        const prev = intervals[k - 1];
        assert.ok(x.interval_start < x.interval_end, `interval ${x.interval_start}..${x.interval_end} is not empty`);
        if (prev?.epoch_id === x.epoch_id) {
          assert.ok(x.interval_start >= prev.interval_end, `interval ${x.interval_start}..${x.interval_end} overlaps ${prev.interval_start}..${prev.interval_end}`);
        }
      });
      assert.ok(intervals.every((x) => x.interval_end <= epochs[0].checkpoint_at), 'no row after the checkpoint');
      const seq = db.prepare('SELECT count(*) AS n, count(DISTINCT seq) AS distinct_n, min(seq) AS lo, max(seq) AS hi FROM usage').get() as Record<string, number>;
      const lastSeq = db.prepare('SELECT last_seq FROM outbox_seq').pluck().all();
      assert.deepEqual({ ...seq, lastSeq }, { n: seq.n, distinct_n: seq.n, lo: 1, hi: seq.n, lastSeq: [seq.n] }, 'outbox sequence 1..N without gaps or duplicates');
      // Rows of each counter sum to its checkpoint (one epoch, which started at zero).
      const mismatched = db.prepare(`
        SELECT c.tenant_id, c.class_id, c.direction, c.packets, c.bytes, sum(u.packets) AS rp, sum(u.bytes) AS rb
        FROM checkpoints c LEFT JOIN usage u USING (epoch_id, tenant_id, class_id, direction)
        GROUP BY c.epoch_id, c.tenant_id, c.class_id, c.direction
        HAVING rp IS NOT c.packets OR rb IS NOT c.bytes`).all();
      assert.deepEqual(mismatched, [], 'rows sum to the checkpoints');
      t.diagnostic(`${seq.n} usage rows in ${intervals.length} intervals`);
    } finally {
      db.close();
    }

    const total = Object.values(done).reduce((x, y) => x + y, 0);
    assert.ok(total >= 50, `${total} kills`);
    assert.ok(done['after-read'] >= 10, `${done['after-read']} kills between read and commit`);
    const sent = [...byTenant(traffic.truth).values()].reduce((x, y) => x + y.packets, 0);
    const avg = startMs.reduce((x, y) => x + y, 0) / startMs.length;
    t.diagnostic(`kills: ${total} (${Object.entries(done).map(([k, n]) => `${k} ${n}`).join(', ')}) in ${(killsMs / 1000).toFixed(1)} s`);
    t.diagnostic(`agent start: mean ${avg.toFixed(0)} ms, max ${Math.max(...startMs).toFixed(0)} ms; export ${exportMs.toFixed(1)} ms`);
    t.diagnostic(`traffic: ${traffic.runs()} driver runs, ${sent} packets (both sides of tenant-to-tenant traffic)`);
  });
});
