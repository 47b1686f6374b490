// The HTTP API over a real ledger (fastify inject, no socket): shapes, exact
// integers, and errors that name the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { Ledger } from '../store/index.js';
import type { Exporter } from '../metering/exporter.js';
import { buildApi } from './server.js';
import { parseTime } from './metering.js';

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'tg-api-'));
  const ledger = Ledger.open(join(dir, 'l.db'), { hostId: 'h1' });
  const ids = ledger.ensureTenants(['alpha', 'beta']);
  const mgmt = ledger.ensureClasses(['mgmt']).get('mgmt')!;
  const epoch = { bootId: 'b1', counterId: '7' };
  ledger.recordInterval({ epoch, at: new Date('2026-11-25T10:00:00Z'), readings: [] });
  ledger.recordInterval({
    epoch,
    at: new Date('2026-11-25T10:00:10Z'),
    readings: [
      { tenantId: ids.get('alpha')!, classId: 0, direction: 'egress', billable: true, packets: 3n, bytes: 9_007_199_254_740_993n },
      { tenantId: ids.get('beta')!, classId: 0, direction: 'ingress', billable: true, packets: 1n, bytes: 60n },
    ],
    containers: [
      { slot: 1, containerId: 'c-alpha', runtime: 'containerd', tenantId: ids.get('alpha')!, direction: 'egress', packets: 3n, bytes: 9_007_199_254_740_993n },
      { slot: 2, containerId: 'c-beta', runtime: 'docker', tenantId: ids.get('beta')!, direction: 'ingress', packets: 1n, bytes: 60n },
    ],
  });
  ledger.recordInterval({
    epoch,
    at: new Date('2026-11-25T10:00:20Z'),
    readings: [{ tenantId: ids.get('alpha')!, classId: mgmt, direction: 'egress', billable: false, packets: 2n, bytes: 120n }],
  });
  let exports = 0;
  const exporter = {
    async exportNow() {
      exports++;
      return { at: new Date(), rows: 0, packets: 0n, bytes: 0n, durationMs: 1 };
    },
  } as unknown as Exporter;
  const app = buildApi({ ledger, exporter, registry: new Registry(), status: () => ({ ok: true }), reload: async () => ({ generation: 1 }) });
  return { app, exportsCount: () => exports, done: () => { ledger.close(); rmSync(dir, { recursive: true, force: true }); } };
}

type Row = {
  tenant?: string; class?: string; billable?: boolean; container?: string; runtime?: string; direction: string; packets: number; bytes: number; billableBytes?: number;
};

async function usage(s: ReturnType<typeof setup>, query: string): Promise<{ by: string; rows: Row[] }> {
  const r = await s.app.inject({ method: 'GET', url: `/v1/usage${query}` });
  assert.equal(r.statusCode, 200, r.body);
  return JSON.parse(r.body) as { by: string; rows: Row[] };
}

test('GET /v1/usage returns exact integers per tenant, class, billable flag and direction', async (t) => {
  const s = setup();
  t.after(s.done);
  const r = await s.app.inject({ method: 'GET', url: '/v1/usage' });
  assert.equal(r.statusCode, 200);
  assert.match(r.body, /"bytes":9007199254740993/, 'a bigint beyond 2^53 is written exactly');
  const body = JSON.parse(r.body) as { by: string; rows: Array<Row & { first: string; last: string }> };
  assert.equal(body.by, 'tenant-class');
  assert.deepEqual(
    body.rows.map((x) => `${x.tenant}/${x.class}/${x.billable}/${x.direction}/${x.packets}`),
    ['alpha/internet/true/egress/3', 'alpha/mgmt/false/egress/2', 'beta/internet/true/ingress/1'],
  );
  assert.deepEqual(Object.keys(body.rows[0]), ['tenant', 'class', 'billable', 'direction', 'packets', 'bytes', 'first', 'last']);
  assert.equal(body.rows[1].first, '2026-11-25T10:00:10.000Z');
  assert.deepEqual((await usage(s, '?tenant=beta')).rows.map((x) => x.tenant), ['beta']);
});

test('GET /v1/usage groups by tenant or class and filters by class and time', async (t) => {
  const s = setup();
  t.after(s.done);
  const byTenant = await usage(s, '?by=tenant');
  assert.equal(byTenant.by, 'tenant');
  assert.deepEqual(
    byTenant.rows.map((x) => [x.tenant, x.direction, x.bytes, x.billableBytes, 'class' in x]),
    [
      ['alpha', 'egress', 9_007_199_254_740_993 + 120, 9_007_199_254_740_993, false],
      ['beta', 'ingress', 60, 60, false],
    ],
  );
  assert.deepEqual(
    (await usage(s, '?by=class')).rows.map((x) => [x.class, x.billable, x.direction, x.packets, 'tenant' in x]),
    [
      ['internet', true, 'ingress', 1, false],
      ['internet', true, 'egress', 3, false],
      ['mgmt', false, 'egress', 2, false],
    ],
  );
  assert.deepEqual((await usage(s, '?class=mgmt')).rows.map((x) => [x.tenant, x.class, x.billable]), [['alpha', 'mgmt', false]]);
  assert.deepEqual((await usage(s, '?class=mgmt&tenant=beta')).rows, []);
  // [since, until) on the interval end: the first interval ended at :10, the second at :20.
  const window = '?since=2026-11-25T10:00:10Z&until=2026-11-25T10:00:20Z';
  assert.deepEqual((await usage(s, window)).rows.map((x) => x.class), ['internet', 'internet']);
  assert.deepEqual((await usage(s, '?until=2026-11-25T10:00:10Z')).rows, []);
});

test('GET /v1/usage?by=container returns usage per tenant, container, runtime and direction', async (t) => {
  const s = setup();
  t.after(s.done);
  const r = await s.app.inject({ method: 'GET', url: '/v1/usage?by=container' });
  assert.equal(r.statusCode, 200, r.body);
  assert.match(r.body, /"bytes":9007199254740993/);
  const body = JSON.parse(r.body) as { by: string; rows: Array<Row & { first: string; last: string }> };
  assert.equal(body.by, 'container');
  assert.deepEqual(Object.keys(body.rows[0]), ['tenant', 'container', 'runtime', 'direction', 'packets', 'bytes', 'first', 'last']);
  assert.deepEqual(
    body.rows.map((x) => [x.tenant, x.container, x.runtime, x.direction, x.packets, x.first, x.last]),
    [
      ['alpha', 'c-alpha', 'containerd', 'egress', 3, '2026-11-25T10:00:00.000Z', '2026-11-25T10:00:10.000Z'],
      ['beta', 'c-beta', 'docker', 'ingress', 1, '2026-11-25T10:00:00.000Z', '2026-11-25T10:00:10.000Z'],
    ],
  );
  assert.deepEqual((await usage(s, '?by=container&tenant=beta')).rows.map((x) => x.container), ['c-beta']);
  assert.deepEqual((await usage(s, '?by=container&since=2026-11-25T10:00:11Z')).rows, []);
});

test('GET /v1/classes lists the issued classes', async (t) => {
  const s = setup();
  t.after(s.done);
  const r = await s.app.inject({ method: 'GET', url: '/v1/classes' });
  assert.deepEqual(JSON.parse(r.body), { classes: [{ id: 0, name: 'internet' }, { id: 1, name: 'mgmt' }] });
});

test('bad queries name the field and change nothing', async (t) => {
  const s = setup();
  t.after(s.done);
  for (const [url, status, field] of [
    ['/v1/usage?since=yesterday', 400, 'since'],
    ['/v1/usage?until=13/13/2026', 400, 'until'],
    ['/v1/usage?since=1h&until=2h', 400, 'until'],
    ['/v1/usage?since=1960-01-01T00:00:00Z', 400, 'since'],
    ['/v1/usage?tenant=nobody', 404, 'tenant'],
    ['/v1/usage?class=nothing', 404, 'class'],
    ['/v1/usage?class=', 400, 'class'],
    ['/v1/usage?by=direction', 400, 'by'],
    ['/v1/usage?by=tenant&by=class', 400, 'by'],
    ['/v1/usage?by=container&class=mgmt', 400, 'class'],
    ['/v1/usage?by=container&tenant=nobody', 404, 'tenant'],
    ['/v1/usage?tenat=alpha', 400, 'tenat'],
  ] as const) {
    const r = await s.app.inject({ method: 'GET', url });
    assert.equal(r.statusCode, status, `${url}: ${r.body}`);
    const body = JSON.parse(r.body) as { error: { code: string; message: string; field?: string } };
    assert.equal(body.error.field, field, url);
    assert.ok(body.error.message.startsWith(`${field}: `), `${url}: ${body.error.message}`);
  }
  const nf = await s.app.inject({ method: 'GET', url: '/v2/nothing' });
  assert.equal(nf.statusCode, 404);
  assert.equal(JSON.parse(nf.body).error.code, 'NOT_FOUND');
});

test('POST /v1/flush exports through the exporter', async (t) => {
  const s = setup();
  t.after(s.done);
  const r = await s.app.inject({ method: 'POST', url: '/v1/flush' });
  assert.equal(r.statusCode, 200);
  assert.equal(s.exportsCount(), 1);
});

test('parseTime: ISO times and ages', () => {
  const now = Date.parse('2026-11-25T12:00:00Z');
  assert.equal(parseTime('15m', 'since', now).toISOString(), '2026-11-25T11:45:00.000Z');
  assert.equal(parseTime('2d', 'since', now).toISOString(), '2026-11-23T12:00:00.000Z');
  assert.equal(parseTime('2026-11-01T00:00:00Z', 'since', now).toISOString(), '2026-11-01T00:00:00.000Z');
  assert.throws(() => parseTime('soon', 'until', now), /until: "soon"/);
});
