// The webhook outbox against a real HTTP server on loopback: retries with
// backoff until a 2xx, the same idempotency key on every attempt, one alert
// per key, giving up after the last attempt, and resuming after a restart.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AlertStore, Ledger } from '../store/index.js';
import { WebhookSender } from './webhook.js';

interface Seen { key: string; attempt: string; body: string }

/** A receiver that answers `statuses` in turn (then 200) and records every request. */
async function receiver(t: TestContext, statuses: number[]): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      seen.push({ key: String(req.headers['idempotency-key']), attempt: String(req.headers['x-tollgate-attempt']), body });
      res.statusCode = statuses.shift() ?? 200;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/hook`, seen };
}

function ledger(t: TestContext, dir = mkdtempSync(join(tmpdir(), 'tg-webhook-'))): { l: Ledger; dir: string } {
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const l = Ledger.open(join(dir, 'ledger.db'), { hostId: 'h' });
  t.after(() => l.close());
  return { l, dir };
}

test('retries until a 2xx with the same idempotency key, backing off; one alert per key', async (t) => {
  const { url, seen } = await receiver(t, [500, 503]);
  const store = new AlertStore(ledger(t).l);
  let now = 1_000_000;
  const sender = new WebhookSender(store, { backoffMs: 1000, now: () => now });
  const body = JSON.stringify({ type: 'quota.threshold', tenant: 'acme', percent: 80 });
  assert.equal(store.record('acme/q0/2026-11/80', body, [url], now), true);
  assert.equal(store.record('acme/q0/2026-11/80', body, [url], now), false, 'the same key is one alert');

  let r = await sender.runNow();
  assert.deepEqual(r.failed.map((f) => [f.attempt, f.error, f.gaveUp]), [[1, 'HTTP 500', false]]);
  assert.equal((await sender.runNow()).failed.length + (await sender.runNow()).delivered, 0, 'not due again before the backoff');
  now += 1000;
  r = await sender.runNow();
  assert.deepEqual(r.failed.map((f) => [f.attempt, f.error]), [[2, 'HTTP 503']]);
  now += 1999;
  assert.equal((await sender.runNow()).failed.length, 0, 'the second backoff is twice the first');
  now += 1;
  r = await sender.runNow();
  assert.equal(r.delivered, 1);
  assert.deepEqual(seen.map((s) => [s.key, s.attempt, s.body]), [1, 2, 3].map((a) => ['acme/q0/2026-11/80', String(a), body]));
  now += 1_000_000;
  assert.deepEqual(await sender.runNow(), { delivered: 0, failed: [] }, 'delivered once');
  assert.deepEqual(store.backlog(), { pending: 0, abandoned: 0 });
});

test('gives up after the last attempt; an unreachable webhook is an error, not a crash', async (t) => {
  const store = new AlertStore(ledger(t).l);
  let now = 0;
  const sender = new WebhookSender(store, { maxAttempts: 3, backoffMs: 10, now: () => now });
  store.record('k1', '{}', ['http://127.0.0.1:9/nothing-listens'], now);
  const errors: string[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await sender.runNow();
    errors.push(...r.failed.map((f) => `${f.attempt}${f.gaveUp ? ' gave up' : ''}`));
    now += 1000;
  }
  assert.deepEqual(errors, ['1', '2', '3 gave up']);
  assert.deepEqual(store.backlog(), { pending: 0, abandoned: 1 });
});

test('an alert recorded before a crash is delivered by the next agent', async (t) => {
  const { url, seen } = await receiver(t, []);
  const { l, dir } = ledger(t);
  new AlertStore(l).record('before-crash', '{"n":1}', [url, `${url}?second`], 5);
  l.close(); // the agent dies before delivering
  const again = Ledger.open(join(dir, 'ledger.db'), { hostId: 'h' });
  t.after(() => again.close());
  const r = await new WebhookSender(new AlertStore(again), { now: () => 10 }).runNow();
  assert.equal(r.delivered, 2);
  assert.deepEqual(seen.map((s) => s.key), ['before-crash', 'before-crash']);
});
