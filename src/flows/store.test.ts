import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { FlowTracker } from './delta.js';
import { FlowStore, FLOW_STORE_APPLICATION_ID, type MapState } from './store.js';
import { snapshot, type FlowSpec } from './flows.fixture.js';
import type { FlowCounters } from './counters.js';

const S = 1_000_000_000n;
const T0 = 1_700_000_000_000;

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'tg-flows-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const counters = (inserted: bigint, extra: Partial<FlowCounters> = {}): FlowCounters =>
  ({ updated: 0n, inserted, insertFailed: 0n, lookupFailed: 0n, noAddr: 0n, fragNoPorts: 0n, ...extra });
const state = (c: FlowCounters): MapState => ({ bootId: 'boot', capacity: 1024, counters: c });
const flow = (sport: number, packets: number, last: bigint, extra: Partial<FlowSpec> = {}): FlowSpec =>
  ({ sport, packets: BigInt(packets), bytes: BigInt(packets * 100), first: S, last, ...extra });

/** Reads k (1, 2, ...) at k minutes past T0, monotonic k * 60 s. */
const read = (k: number, flows: FlowSpec[], mapId = 7) =>
  snapshot(flows, { mapId, startNs: BigInt(k * 60) * S, endNs: BigInt(k * 60) * S + 1000n, at: new Date(T0 + k * 60_000) });

test('intervals, top over a window, and the map health over it', (t) => {
  const store = FlowStore.open(join(tempDir(t), 'flows.db'));
  t.after(() => store.close());
  const tr = new FlowTracker('boot', store.resumePoint());
  const base = store.record(tr.next(read(1, [flow(1, 1, 30n * S), flow(2, 1, 30n * S)])), state(counters(2n)));
  assert.deepEqual([base.flows, base.unknown, base.since], [0, 2, null], 'the first read is a baseline');
  const r2 = store.record(tr.next(read(2, [flow(1, 11, 90n * S), flow(2, 3, 90n * S), flow(3, 5, 100n * S, { first: 95n * S, tenant: 2 })])),
    state(counters(3n, { insertFailed: 1n })));
  assert.deepEqual([r2.flows, r2.packets, r2.bytes, r2.since?.getTime()], [3, 17, 1700, T0 + 60_000]);
  // The LRU dropped flow 2 and 3: 6 inserted, 2 live.
  store.record(tr.next(read(3, [flow(1, 21, 150n * S), flow(4, 2, 170n * S, { first: 160n * S })])), state(counters(6n, { insertFailed: 1n, noAddr: 4n })));

  const all = store.top({ by: 'bytes', limit: 10 });
  assert.deepEqual(all.flows.map((f) => [f.sport, f.packets, f.tenantId]), [[1, 20, 1], [3, 5, 2], [2, 2, 1], [4, 2, 1]]);
  assert.deepEqual([all.intervals, all.unknown, all.from?.getTime(), all.to?.getTime()], [3, 2, T0 + 60_000, T0 + 180_000]);
  assert.deepEqual(all.health, {
    live: 2, capacity: 1024,
    window: { updated: 0n, inserted: 6n, insertFailed: 1n, lookupFailed: 0n, noAddr: 4n, fragNoPorts: 0n, evicted: 4n },
    total: { updated: 0n, inserted: 6n, insertFailed: 1n, lookupFailed: 0n, noAddr: 4n, fragNoPorts: 0n, evicted: 4n },
  });

  const last = store.top({ by: 'packets', limit: 10, since: new Date(T0 + 180_000) });
  assert.deepEqual(last.flows.map((f) => [f.sport, f.packets]), [[1, 10], [4, 2]]);
  assert.deepEqual(last.health!.window, { updated: 0n, inserted: 3n, insertFailed: 0n, lookupFailed: 0n, noAddr: 4n, fragNoPorts: 0n, evicted: 4n });
  assert.deepEqual([last.from?.getTime(), last.to?.getTime()], [T0 + 120_000, T0 + 180_000]);

  const middle = store.top({ by: 'bytes', limit: 10, tenantId: 2, since: new Date(T0 + 120_000), until: new Date(T0 + 180_000) });
  assert.deepEqual(middle.flows.map((f) => f.sport), [3]);

  const none = store.top({ by: 'bytes', limit: 10, since: new Date(T0 + 999_000) });
  assert.deepEqual([none.flows, none.intervals, none.health, none.from], [[], 0, null, null]);
});

test('a restarted agent resumes where the store left off', (t) => {
  const path = join(tempDir(t), 'flows.db');
  const first = FlowStore.open(path);
  const tr = new FlowTracker('boot');
  first.record(tr.next(read(1, [flow(1, 1, 30n * S)])), state(counters(1n)));
  first.close();
  const again = FlowStore.open(path);
  t.after(() => again.close());
  const resume = again.resumePoint()!;
  assert.deepEqual(resume, { bootId: 'boot', mapId: 7, startNs: 60n * S, endNs: 60n * S + 1000n, at: new Date(T0 + 60_000) });
  const iv = new FlowTracker('boot', resume).next(read(2, [flow(1, 4, 90n * S), flow(2, 3, 100n * S, { first: 95n * S })]));
  const r = again.record(iv, state(counters(2n)));
  assert.deepEqual([r.flows, r.unknown, r.packets], [1, 1, 3], 'flow 2 is new since; flow 1 moved by an unknown amount');
});

test('a new flow map restarts the window counters from its creation', (t) => {
  const store = FlowStore.open(join(tempDir(t), 'flows.db'));
  t.after(() => store.close());
  const tr = new FlowTracker('boot');
  store.record(tr.next(read(1, [flow(1, 1, 30n * S)])), state(counters(50n)));
  store.record(tr.next(read(2, [flow(1, 1, 90n * S)], 8)), state(counters(2n)));
  const top = store.top({ by: 'bytes', limit: 5, since: new Date(T0 + 120_000) });
  assert.equal(top.health!.window.inserted, 2n);
  assert.equal(top.health!.window.evicted, 1n);
});

test('retention: by age and by bytes, the newest interval always kept, chunks go with their interval', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'flows.db');
  const byAge = FlowStore.open(path, { retentionMs: 150_000 });
  const tr = new FlowTracker('boot');
  const moving = (k: number) => [flow(1, k, BigInt(k * 60 - 5) * S), flow(2, k, BigInt(k * 60 - 5) * S)];
  byAge.record(tr.next(read(1, moving(1))), state(counters(2n)));
  for (let k = 2; k <= 5; k++) byAge.record(tr.next(read(k, moving(k))), state(counters(2n)));
  assert.deepEqual(byAge.top({ by: 'bytes', limit: 5 }).intervals, 3, 'minutes 3, 4, 5: within 150 s of the newest');
  byAge.close();

  const bySize = FlowStore.open(path, { maxBytes: 200 });
  const r = bySize.record(tr.next(read(6, moving(6))), state(counters(2n)));
  assert.equal(r.storedBytes, 160);
  assert.equal(r.pruned, 3, 'all three older ones: two intervals of 160 bytes do not fit 200');
  const r7 = bySize.record(tr.next(read(7, [...moving(7), flow(3, 1, 415n * S, { first: 410n * S })])), state(counters(3n)));
  assert.equal(r7.storedBytes, 240);
  assert.equal(bySize.top({ by: 'bytes', limit: 5 }).intervals, 1, 'the newest stays even when it alone is too big');
  bySize.close();

  const db = new Database(path, { readonly: true });
  t.after(() => db.close());
  assert.deepEqual(db.prepare('SELECT count(*) AS n, sum(records) AS r FROM flow_chunks').get(), { n: 1, r: 3 });
});

test('opens only flow stores, and says why', (t) => {
  const dir = tempDir(t);
  const ledgerLike = join(dir, 'ledger.db');
  const db = new Database(ledgerLike);
  db.pragma('application_id = 1414745159'); // 'TGLG', the ledger's
  db.pragma('journal_mode = WAL'); // as the ledger is
  db.exec('CREATE TABLE usage (x)');
  db.close();
  assert.throws(() => FlowStore.open(ledgerLike), /ledger\.db is not a tollgate flow store \(application_id 1414745159\)/);
  const left = new Database(ledgerLike, { readonly: true });
  assert.equal(left.pragma('journal_mode', { simple: true }), 'wal', 'a refused file keeps its journal mode');
  left.close();
  const other = join(dir, 'other.db');
  const o = new Database(other);
  o.exec('CREATE TABLE t (x)');
  o.close();
  assert.throws(() => FlowStore.open(other), /is not a tollgate flow store \(application_id 0\)/);

  const mine = join(dir, 'flows.db');
  FlowStore.open(mine).close();
  const check = new Database(mine, { readonly: true });
  assert.equal(check.pragma('application_id', { simple: true }), FLOW_STORE_APPLICATION_ID);
  check.close();
  assert.throws(() => FlowStore.open(mine, { retentionMs: 0 }), /retentionMs must be a positive integer, got 0/);
  assert.throws(() => FlowStore.open(mine, { maxBytes: 1.5 }), /maxBytes must be a positive integer, got 1.5/);
});
