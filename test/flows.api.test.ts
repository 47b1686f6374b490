// GET /v1/flows/top (fastify inject) and `tollgate top` over a unix socket,
// against a real flow store and ledger: names, ranking, the map's health,
// and errors that name the field or flag.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { buildApi, listenUnix } from '../src/api/server.js';
import type { Exporter } from '../src/metering/exporter.js';
import { Ledger } from '../src/store/index.js';
import { FlowStore, FlowTracker } from '../src/flows/index.js';
import { snapshot, type FlowSpec } from '../src/flows/flows.fixture.js';
import { runCli } from './helpers/agent.js';

const S = 1_000_000_000n;
const dir = mkdtempSync(join(tmpdir(), 'tg-flows-api-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const ledger = Ledger.open(join(dir, 'ledger.db'), { hostId: 'h1' });
const ids = ledger.ensureTenants(['alpha', 'beta']);
const mgmt = ledger.ensureClasses(['mgmt']).get('mgmt')!;
const store = FlowStore.open(join(dir, 'flows.db'));
test.after(() => {
  store.close();
  ledger.close();
});

const ALPHA = ids.get('alpha')!;
const BETA = ids.get('beta')!;
const flow = (sport: number, packets: number, bytes: number, last: bigint, extra: Partial<FlowSpec> = {}): FlowSpec =>
  ({ sport, packets: BigInt(packets), bytes: BigInt(bytes), first: S, last, tenant: ALPHA, ...extra });
{
  const tr = new FlowTracker('boot');
  const now = Date.now();
  const read = (k: number, flows: FlowSpec[]) => snapshot(flows, { startNs: BigInt(k * 60) * S, endNs: BigInt(k * 60) * S + 1000n, at: new Date(now - (3 - k) * 60_000) });
  const counters = { updated: 10n, inserted: 5n, insertFailed: 1n, lookupFailed: 0n, noAddr: 2n, fragNoPorts: 0n };
  for (const [k, flows] of [
    [1, [flow(1, 0, 0, S), flow(22, 0, 0, S, { cls: mgmt, tenant: BETA, proto: 6 })]],
    [2, [flow(1, 10, 5000, 110n * S, { proto: 17, dport: 53 }), flow(22, 100, 9000, 110n * S, { cls: mgmt, tenant: BETA }),
      flow(3, 4, 400, 115n * S, { first: 100n * S, src: '2001:2:0:1::5', dst: '2001:2::9', proto: 58, sport: 0, dport: 0 })]],
  ] as const) store.record(tr.next(read(k, [...flows])), { bootId: 'boot', capacity: 4096, counters });
}

const exporter = {} as Exporter;
const app = buildApi({ ledger, exporter, registry: new Registry(), status: () => ({}), reload: async () => ({}), flows: store });
const off = buildApi({ ledger, exporter, registry: new Registry(), status: () => ({}), reload: async () => ({}) });
test.after(() => Promise.all([app.close(), off.close()]));

async function get(path: string, a = app): Promise<{ status: number; body: any }> {
  const r = await a.inject({ method: 'GET', url: path });
  return { status: r.statusCode, body: JSON.parse(r.body) };
}

test('GET /v1/flows/top ranks flows by bytes with tenant and class names', async () => {
  const r = await get('/v1/flows/top');
  assert.equal(r.status, 200);
  assert.equal(r.body.by, 'bytes');
  assert.deepEqual(r.body.flows.map((f: any) => [f.tenant, f.class, f.protocol, f.src, f.sport, f.dst, f.dport, f.packets, f.bytes]), [
    ['beta', 'mgmt', 'tcp', '198.18.1.1', 22, '198.19.0.1', 443, 100, 9000],
    ['alpha', 'internet', 'udp', '198.18.1.1', 1, '198.19.0.1', 53, 10, 5000],
    ['alpha', 'internet', 'icmpv6', '2001:2:0:1::5', 0, '2001:2::9', 0, 4, 400],
  ]);
  assert.deepEqual([r.body.intervals, r.body.distinct, r.body.bytes, r.body.unknown], [2, 3, 14400, 2]);
  assert.deepEqual(r.body.health, {
    live: 3, capacity: 4096,
    window: { updated: 10, inserted: 5, insertFailed: 1, lookupFailed: 0, noAddr: 2, fragNoPorts: 0, evicted: 2 },
    total: { updated: 10, inserted: 5, insertFailed: 1, lookupFailed: 0, noAddr: 2, fragNoPorts: 0, evicted: 2 },
  });
  assert.match(r.body.flows[0].last, /^\d{4}-\d\d-\d\dT/);
});

test('by packets, tenant, limit', async () => {
  const r = await get('/v1/flows/top?by=packets&tenant=alpha&limit=1');
  assert.deepEqual(r.body.flows.map((f: any) => [f.tenant, f.packets]), [['alpha', 10]]);
  assert.equal(r.body.distinct, 2);
});

test('errors name the field; an agent without flows says so', async () => {
  const cases: Array<[string, number, string]> = [
    ['/v1/flows/top?by=flows', 400, 'by'],
    ['/v1/flows/top?limit=0', 400, 'limit'],
    ['/v1/flows/top?limit=1001', 400, 'limit'],
    ['/v1/flows/top?since=yesterday', 400, 'since'],
    ['/v1/flows/top?tenant=gamma', 404, 'tenant'],
    ['/v1/flows/top?color=red', 400, 'color'],
  ];
  for (const [url, status, field] of cases) {
    const r = await get(url);
    assert.equal(r.status, status, url);
    assert.equal(r.body.error.field, field, url);
  }
  const r = await get('/v1/flows/top', off);
  assert.equal(r.status, 404);
  assert.match(r.body.error.message, /records no flows/);
});

test('tollgate top: a table with the flow table\'s health; --json; flag errors', async () => {
  const socket = join(dir, 'api.sock');
  const served = buildApi({ ledger, exporter, registry: new Registry(), status: () => ({}), reload: async () => ({}), flows: store });
  await listenUnix(served, socket);
  try {
    const r = await runCli(['--socket', socket, 'top']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.match(lines[0]!, /^TENANT\s+CLASS\s+DIR\s+PROTO\s+SOURCE\s+DESTINATION\s+PACKETS\s+BYTES/);
    assert.match(lines[2]!, /^beta\s+mgmt\s+egress\s+tcp\s+198\.18\.1\.1:22\s+198\.19\.0\.1:443\s+100\s+9000\s+9\.0 kB/);
    assert.match(r.stdout, /alpha\s+internet\s+egress\s+icmpv6\s+\[2001:2:0:1::5\]\s+\[2001:2::9\]\s+4\s+400/);
    assert.match(r.stdout, /3 flows over 2 intervals; 2 flows not counted/);
    assert.match(r.stdout, /flow table: 3 live of 4096; in the window 2 evicted, 1 insert failures, 0 lookup failures/);

    const j = await runCli(['--socket', socket, 'top', '--json', '--by', 'packets', '--tenant', 'alpha']);
    assert.equal(j.code, 0, j.stderr);
    assert.deepEqual(JSON.parse(j.stdout).flows.map((f: any) => f.protocol), ['udp', 'icmpv6']);

    const bad = await runCli(['--socket', socket, 'top', '--tenant', 'gamma']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--tenant: no tenant named "gamma"/);
    const badSince = await runCli(['--socket', socket, 'top', '--since', 'soon']);
    assert.match(badSince.stderr, /--since: "soon" is neither an ISO 8601 time nor an age/);
    const badLimit = await runCli(['--socket', socket, 'top', '--limit', '0']);
    assert.match(badLimit.stderr, /--limit must be an integer from 1 to 1000/);
  } finally {
    await served.close();
  }
});
