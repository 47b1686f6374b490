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
  const epoch = { bootId: 'b1', counterId: '7' };
  ledger.recordInterval({ epoch, at: new Date('2026-11-25T10:00:00Z'), readings: [] });
  ledger.recordInterval({
    epoch,
    at: new Date('2026-11-25T10:00:10Z'),
    readings: [
      { tenantId: ids.get('alpha')!, direction: 'egress', packets: 3n, bytes: 9_007_199_254_740_993n },
      { tenantId: ids.get('beta')!, direction: 'ingress', packets: 1n, bytes: 60n },
    ],
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

test('GET /v1/usage returns exact integers per tenant and direction', async (t) => {
  const s = setup();
  t.after(s.done);
  const r = await s.app.inject({ method: 'GET', url: '/v1/usage' });
  assert.equal(r.statusCode, 200);
  assert.match(r.body, /"bytes":9007199254740993/, 'a bigint beyond 2^53 is written exactly');
  const rows = (JSON.parse(r.body) as { rows: Array<{ tenant: string; direction: string; packets: number }> }).rows;
  assert.deepEqual(rows.map((x) => `${x.tenant}/${x.direction}/${x.packets}`).sort(), ['alpha/egress/3', 'beta/ingress/1']);
  const only = await s.app.inject({ method: 'GET', url: '/v1/usage?tenant=beta' });
  assert.deepEqual(JSON.parse(only.body).rows.map((x: { tenant: string }) => x.tenant), ['beta']);
});

test('bad queries name the field and change nothing', async (t) => {
  const s = setup();
  t.after(s.done);
  for (const [url, field] of [
    ['/v1/usage?since=yesterday', 'since'],
    ['/v1/usage?until=13/13/2026', 'until'],
    ['/v1/usage?tenant=nobody', 'tenant'],
    ['/v1/usage?tenat=alpha', 'tenat'],
  ] as const) {
    const r = await s.app.inject({ method: 'GET', url });
    assert.ok(r.statusCode === 400 || r.statusCode === 404, `${url}: ${r.statusCode}`);
    const body = JSON.parse(r.body) as { error: { code: string; message: string; field?: string } };
    assert.match(body.error.message, new RegExp(field), url);
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
