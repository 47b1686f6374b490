// Invoice endpoints over a real ledger (fastify inject): formats, stored bytes,
// errors naming the field, and tenant-scoped tokens.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { Billing } from '../billing/index.js';
import type { Exporter } from '../metering/exporter.js';
import { parsePolicy } from '../policy/index.js';
import { DEFAULT_CLASS_ID, Ledger } from '../store/index.js';
import { loadTokens, newToken, type Tokens } from './auth.js';
import { buildApi } from './server.js';

const policy = parsePolicy(`
version: 1
tenants:
  - { name: acme, plan: std, selectors: { cidrs: [198.18.1.0/24] } }
  - { name: globex, plan: std, selectors: { cidrs: [198.18.2.0/24] } }
plans:
  - name: std
    currency: USD
    rates: [{ class: internet, direction: egress, pricePerGB: "0.09" }]
    flatFees: [{ name: "base, monthly", amount: "10" }]
`);

function setup(t: TestContext, tokens?: Tokens) {
  const dir = mkdtempSync(join(tmpdir(), 'tg-api-billing-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const ledger = Ledger.open(join(dir, 'l.db'), { hostId: 'h1' });
  t.after(() => ledger.close());
  const ids = ledger.ensureTenants(['acme', 'globex']);
  const epoch = { bootId: 'b1', counterId: '1', startedAt: new Date('2026-10-01T00:00:00Z') };
  ledger.recordInterval({
    epoch, at: new Date('2026-10-10T00:00:00Z'),
    readings: [{ tenantId: ids.get('acme')!, classId: DEFAULT_CLASS_ID, direction: 'egress', billable: true, packets: 1n, bytes: 25_000_000_000n }],
  });
  const billing = new Billing(ledger, () => policy);
  billing.closeDue(Date.parse('2026-11-02T00:00:00Z'));
  const exporter = {} as Exporter;
  const app = buildApi({ ledger, billing, exporter, registry: new Registry(), status: () => ({}), reload: async () => ({}) }, { tokens });
  return { app, billing };
}

test('GET /v1/invoices/:tenant/:period in JSON (the stored bytes), CSV and HTML', async (t) => {
  const { app, billing } = setup(t);
  const json = await app.inject({ method: 'GET', url: '/v1/invoices/acme/2026-10' });
  assert.equal(json.statusCode, 200, json.body);
  assert.match(json.headers['content-type'] as string, /^application\/json/);
  assert.equal(json.body, billing.invoice('acme', '2026-10').json);
  const doc = JSON.parse(json.body) as { status: string; total: string; lines: Array<{ amount: string }> };
  assert.equal(doc.status, 'closed');
  assert.deepEqual(doc.lines.map((l) => l.amount), ['2.25', '10.00']);
  assert.equal(doc.total, '12.25');

  const csv = await app.inject({ method: 'GET', url: '/v1/invoices/acme/2026-10?format=csv' });
  assert.match(csv.headers['content-type'] as string, /^text\/csv/);
  const rows = csv.body.split('\r\n');
  assert.equal(rows[0], 'tenant,period,status,currency,kind,class,description,quantity,unit,unit_price,amount');
  assert.equal(rows[2], 'acme,2026-10,closed,USD,flat,,"base, monthly",1,period,10,10.00');
  assert.equal(rows.at(-2), 'acme,2026-10,closed,USD,total,,total,,,,12.25');

  const html = await app.inject({ method: 'GET', url: '/v1/invoices/acme/2026-10?format=html' });
  assert.match(html.headers['content-type'] as string, /^text\/html/);
  assert.match(html.body, /<title>Invoice acme 2026-10<\/title>/);
  assert.match(html.body, /12\.25 USD/);

  const list = await app.inject({ method: 'GET', url: '/v1/invoices/acme' });
  const l = JSON.parse(list.body) as { closed: Array<{ period: string; total: string }> };
  assert.deepEqual(l.closed.map((c) => [c.period, c.total]), [['2026-10', '12.25']]);
});

test('bad requests name the field', async (t) => {
  const { app } = setup(t);
  const err = async (url: string, status: number, field: string | undefined, re: RegExp): Promise<void> => {
    const r = await app.inject({ method: 'GET', url });
    assert.equal(r.statusCode, status, r.body);
    const e = (JSON.parse(r.body) as { error: { field?: string; message: string } }).error;
    assert.equal(e.field, field);
    assert.match(e.message, re);
  };
  await err('/v1/invoices/acme/2026-13', 400, 'period', /2026-13/);
  await err('/v1/invoices/acme/2026-10?format=pdf', 400, 'format', /json|csv|html/);
  await err('/v1/invoices/nobody/2026-10', 404, 'tenant', /no tenant named "nobody"/);
  await err('/v1/invoices/acme/2026-09', 404, 'period', /never closed/);
});

test('tokens: none is refused, a tenant token sees only its own invoices, the operator sees all', async (t) => {
  const op = newToken('ops');
  const acme = newToken('acme-portal', 'acme');
  const { app } = setup(t, [op.entry, acme.entry]);
  const get = (url: string, token?: string) => app.inject({ method: 'GET', url, headers: token ? { authorization: `Bearer ${token}` } : {} });
  assert.equal((await get('/v1/invoices/acme/2026-10')).statusCode, 401);
  assert.equal((await get('/v1/invoices/acme/2026-10', 'tg_wrong')).statusCode, 401);
  assert.equal((await get('/v1/invoices/acme/2026-10', acme.token)).statusCode, 200);
  assert.equal((await get('/v1/invoices/acme', acme.token)).statusCode, 200);
  const other = await get('/v1/invoices/globex/2026-10', acme.token);
  assert.equal(other.statusCode, 403);
  assert.match(other.body, /scoped to tenant \\?"acme\\?"/);
  assert.equal((await get('/v1/usage', acme.token)).statusCode, 403);
  assert.equal((await get('/v1/invoices/globex/current', op.token)).statusCode, 200);
  assert.equal((await get('/v1/health')).statusCode, 200, 'health stays open');
});

test('a tokens file is checked: errors name the field', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-tokens-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'tokens.yaml');
  writeFileSync(file, 'tokens:\n  - { name: a, sha256: abc }\n');
  assert.throws(() => loadTokens(file), /tokens\.0\.sha256: must be the hex SHA-256/);
  const e = newToken('a').entry;
  writeFileSync(file, `tokens:\n  - ${JSON.stringify(e)}\n  - ${JSON.stringify(e)}\n`);
  assert.throws(() => loadTokens(file), /tokens\.1\.name: "a" is listed twice/);
  writeFileSync(file, `tokens:\n  - ${JSON.stringify(e)}\n`);
  assert.deepEqual(loadTokens(file), [e]);
});
