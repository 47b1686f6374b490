import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { NewEvent } from './event.js';
import { EVENT_STORE_APPLICATION_ID, EventStore } from './store.js';

const T0 = Date.UTC(2024, 0, 1); // 2024-01-01T00:00:00.000Z

function ev(over: Partial<NewEvent> = {}): NewEvent {
  return { at: T0, type: 'firewall.log', tenant: 'acme', flow: null, rule: null, action: null, detail: {}, ...over };
}

let dir: string;
let n = 0;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tg-evu-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A fresh store file; closed after the test. */
function fresh(t: { after(fn: () => void): void }): { store: EventStore; path: string } {
  const path = join(dir, `s${++n}.db`);
  const store = EventStore.open(path);
  t.after(() => {
    try {
      store.close();
    } catch {
      // already closed by the test
    }
  });
  return { store, path };
}

const ids = (events: readonly { id: number }[]): number[] => events.map((e) => e.id);

describe('EventStore', () => {
  test('ids start at 1 and increase in append order, within and across batches', (t) => {
    const { store } = fresh(t);
    assert.equal(store.lastId(), 0);
    assert.equal(store.count(), 0);
    const a = store.append([ev({ type: 'a.one' }), ev({ type: 'a.two' }), ev({ type: 'a.three' })]);
    assert.deepEqual(ids(a), [1, 2, 3]);
    assert.deepEqual(a.map((e) => e.type), ['a.one', 'a.two', 'a.three']);
    assert.deepEqual(store.append([]), []);
    const b = store.append([ev({ type: 'b.one' })]);
    assert.deepEqual(ids(b), [4]);
    const c = store.append([ev({ type: 'c.one' }), ev({ type: 'c.two' })]);
    assert.deepEqual(ids(c), [5, 6]);
    assert.equal(store.lastId(), 6);
    assert.equal(store.count(), 6);
    assert.deepEqual(
      store.list({ limit: 100 }).map((e) => [e.id, e.type]),
      [[1, 'a.one'], [2, 'a.two'], [3, 'a.three'], [4, 'b.one'], [5, 'c.one'], [6, 'c.two']],
    );
  });

  test('a batch with an invalid event stores none of it', (t) => {
    const { store } = fresh(t);
    store.append([ev()]);
    assert.throws(() => store.append([ev(), ev({ type: '' })]), /CHECK constraint failed/);
    assert.equal(store.count(), 1);
    assert.deepEqual(ids(store.append([ev()])), [2]);
  });

  test('list: newest `limit` in id order without `after`, oldest after it with `after`', (t) => {
    const { store } = fresh(t);
    store.append([1, 2, 3, 4, 5].map((i) => ev({ at: T0 + i })));
    assert.deepEqual(ids(store.list({ limit: 3 })), [3, 4, 5]);
    assert.deepEqual(ids(store.list({ limit: 1 })), [5]);
    assert.deepEqual(ids(store.list({ limit: 10 })), [1, 2, 3, 4, 5]);
    assert.deepEqual(ids(store.list({ limit: 0 })), []);
    assert.deepEqual(ids(store.list({ after: 1, limit: 2 })), [2, 3]);
    assert.deepEqual(ids(store.list({ after: 0, limit: 2 })), [1, 2]);
    assert.deepEqual(ids(store.list({ after: 3, limit: 10 })), [4, 5]);
    assert.deepEqual(ids(store.list({ after: 5, limit: 10 })), []);
    assert.deepEqual(ids(store.list({ after: 99, limit: 10 })), []);
  });

  test('list filters by type and tenant, alone and together with after/limit', (t) => {
    const { store } = fresh(t);
    store.append([
      ev({ type: 'firewall.log', tenant: 'acme' }), // 1
      ev({ type: 'firewall.drop', tenant: 'acme' }), // 2
      ev({ type: 'firewall.log', tenant: 'globex' }), // 3
      ev({ type: 'events.lost', tenant: null }), // 4
      ev({ type: 'firewall.log', tenant: 'acme' }), // 5
      ev({ type: 'firewall.drop', tenant: 'globex' }), // 6
      ev({ type: 'firewall.log', tenant: 'acme' }), // 7
    ]);
    assert.deepEqual(ids(store.list({ type: 'firewall.log', limit: 100 })), [1, 3, 5, 7]);
    assert.deepEqual(ids(store.list({ type: 'firewall.drop', limit: 100 })), [2, 6]);
    assert.deepEqual(ids(store.list({ type: 'events.lost', limit: 100 })), [4]);
    assert.deepEqual(ids(store.list({ type: 'firewall', limit: 100 })), [], 'type is matched exactly, not as a prefix');
    assert.deepEqual(ids(store.list({ tenant: 'acme', limit: 100 })), [1, 2, 5, 7]);
    assert.deepEqual(ids(store.list({ tenant: 'globex', limit: 100 })), [3, 6]);
    assert.deepEqual(ids(store.list({ tenant: 'initech', limit: 100 })), []);
    assert.deepEqual(ids(store.list({ type: 'firewall.log', tenant: 'acme', limit: 100 })), [1, 5, 7]);
    assert.deepEqual(ids(store.list({ type: 'firewall.log', tenant: 'acme', limit: 2 })), [5, 7], 'newest two matches');
    assert.deepEqual(ids(store.list({ type: 'firewall.log', tenant: 'acme', after: 1, limit: 1 })), [5], 'oldest match after 1');
    assert.deepEqual(ids(store.list({ tenant: 'globex', after: 3, limit: 100 })), [6]);
  });

  test('events round-trip exactly: flow null, flow with null ports, flow with ports, detail JSON', (t) => {
    const { store } = fresh(t);
    const input: NewEvent[] = [
      ev({ at: T0, type: 'events.lost', tenant: null, flow: null, rule: null, action: null, detail: { lost: 12, cpu: 3 } }),
      ev({
        at: T0 + 1,
        type: 'firewall.log',
        tenant: 'acme',
        flow: { protocol: 'icmp', src: '10.0.0.1', sport: null, dst: '10.0.0.2', dport: null },
        rule: 'no-ping',
        action: 'drop',
        detail: {},
      }),
      ev({
        at: T0 + 1234,
        type: 'firewall.log',
        tenant: 'globex',
        flow: { protocol: 'tcp', src: 'fd00::1', sport: 40000, dst: 'fd00::2', dport: 443 },
        rule: 'allow-https',
        action: 'allow',
        detail: { nested: { a: [1, 'two', null, true, { deep: -1.5 }] }, text: 'héllo "quoted"\n✓', empty: {}, zero: 0, no: false },
      }),
    ];
    const out = store.append(input);
    assert.deepEqual(out, [
      { id: 1, at: '2024-01-01T00:00:00.000Z', type: 'events.lost', tenant: null, flow: null, rule: null, action: null, detail: { lost: 12, cpu: 3 } },
      {
        id: 2,
        at: '2024-01-01T00:00:00.001Z',
        type: 'firewall.log',
        tenant: 'acme',
        flow: { protocol: 'icmp', src: '10.0.0.1', sport: null, dst: '10.0.0.2', dport: null },
        rule: 'no-ping',
        action: 'drop',
        detail: {},
      },
      {
        id: 3,
        at: '2024-01-01T00:00:01.234Z',
        type: 'firewall.log',
        tenant: 'globex',
        flow: { protocol: 'tcp', src: 'fd00::1', sport: 40000, dst: 'fd00::2', dport: 443 },
        rule: 'allow-https',
        action: 'allow',
        detail: { nested: { a: [1, 'two', null, true, { deep: -1.5 }] }, text: 'héllo "quoted"\n✓', empty: {}, zero: 0, no: false },
      },
    ]);
    const back = store.list({ limit: 10 });
    assert.deepEqual(back, out);
    assert.equal(back[0]!.flow, null);
    assert.equal(back[1]!.flow!.sport, null);
    assert.equal(back[1]!.flow!.dport, null);
    assert.equal(back[2]!.flow!.sport, 40000);
  });

  test('lastId stays at the highest issued id after prune deletes everything; ids are never reused', (t) => {
    const { store, path } = fresh(t);
    store.append([ev({ at: 1000 }), ev({ at: 2000 }), ev({ at: 3000 })]);
    assert.equal(store.prune(10_000, 1000, 100), 3);
    assert.equal(store.count(), 0);
    assert.equal(store.lastId(), 3);
    assert.deepEqual(store.list({ limit: 10 }), []);
    assert.deepEqual(ids(store.append([ev({ at: 20_000 }), ev({ at: 20_001 })])), [4, 5]);
    assert.equal(store.lastId(), 5);
    // Also across a reopen with the table empty.
    assert.equal(store.prune(1_000_000, 0, 100), 2);
    store.close();
    const again = EventStore.open(path);
    t.after(() => again.close());
    assert.equal(again.count(), 0);
    assert.equal(again.lastId(), 5);
    assert.deepEqual(ids(again.append([ev()])), [6]);
  });

  test('prune by age deletes events older than retentionMs (the boundary is kept)', (t) => {
    const { store } = fresh(t);
    store.append([1000, 2000, 3000, 4000, 5000].map((at) => ev({ at })));
    assert.equal(store.prune(6000, 3000, 100), 2, 'at < 3000');
    assert.deepEqual(ids(store.list({ limit: 10 })), [3, 4, 5]);
    assert.equal(store.prune(6000, 3000, 100), 0, 'nothing more to prune');
    assert.equal(store.prune(6000, 1000, 100), 2, 'at < 5000');
    assert.deepEqual(ids(store.list({ limit: 10 })), [5]);
    assert.equal(store.lastId(), 5);
  });

  test('prune by maxStored keeps the newest maxStored', (t) => {
    const { store } = fresh(t);
    // Out of order timestamps: maxStored goes by id, not by time.
    store.append([5000, 1000, 4000, 2000, 3000].map((at) => ev({ at })));
    assert.equal(store.prune(5000, 1_000_000, 10), 0, 'fewer than maxStored');
    assert.equal(store.prune(5000, 1_000_000, 5), 0, 'exactly maxStored');
    assert.equal(store.prune(5000, 1_000_000, 2), 3);
    assert.deepEqual(ids(store.list({ limit: 10 })), [4, 5]);
    assert.equal(store.count(), 2);
    assert.equal(store.prune(5000, 1_000_000, 0), 2, 'maxStored 0 keeps nothing');
    assert.equal(store.count(), 0);
    assert.equal(store.lastId(), 5);
  });

  test('prune by age and count together returns the sum', (t) => {
    const { store } = fresh(t);
    store.append([1000, 2000, 3000, 4000, 5000, 6000].map((at) => ev({ at })));
    // Age removes 1 and 2 (at < 2500); then 4 are left and maxStored 3 removes 3.
    assert.equal(store.prune(3500, 1000, 3), 3);
    assert.deepEqual(ids(store.list({ limit: 10 })), [4, 5, 6]);
  });

  test('issueAfter(n) makes the next id n+1 and never lowers it', (t) => {
    const { store, path } = fresh(t);
    store.issueAfter(0);
    assert.equal(store.lastId(), 0);
    store.issueAfter(41); // before any event: sqlite_sequence has no row yet
    assert.equal(store.lastId(), 41);
    assert.deepEqual(ids(store.append([ev(), ev()])), [42, 43]);
    store.issueAfter(10);
    assert.equal(store.lastId(), 43, 'not lowered');
    store.issueAfter(43);
    assert.equal(store.lastId(), 43);
    assert.deepEqual(ids(store.append([ev()])), [44]);
    store.issueAfter(100); // with events stored: the row exists and is raised
    assert.equal(store.lastId(), 100);
    assert.deepEqual(ids(store.append([ev()])), [101]);
    assert.deepEqual(ids(store.list({ limit: 10 })), [42, 43, 44, 101]);
    store.issueAfter(200);
    store.close();
    const again = EventStore.open(path);
    t.after(() => again.close());
    assert.equal(again.lastId(), 200, 'kept across a reopen');
    assert.deepEqual(ids(again.append([ev()])), [201]);
  });

  test('getState/setState upsert', (t) => {
    const { store, path } = fresh(t);
    assert.equal(store.getState('lost.reported'), undefined);
    store.setState('lost.reported', '1');
    assert.equal(store.getState('lost.reported'), '1');
    store.setState('lost.reported', '17');
    assert.equal(store.getState('lost.reported'), '17');
    store.setState('other', '');
    assert.equal(store.getState('other'), '');
    assert.equal(store.getState('lost.reported'), '17');
    store.close();
    const raw = new Database(path, { readonly: true });
    t.after(() => raw.close());
    assert.deepEqual(raw.prepare('SELECT key, value FROM state ORDER BY key').all(), [
      { key: 'lost.reported', value: '17' },
      { key: 'other', value: '' },
    ]);
  });

  test('reopening an existing store keeps its events, ids and state', (t) => {
    const path = join(dir, 'reopen.db');
    const first = EventStore.open(path);
    const written = first.append([ev({ type: 'x.one', detail: { k: 'v' } }), ev({ type: 'x.two', flow: { protocol: 'udp', src: '1.1.1.1', sport: 53, dst: '2.2.2.2', dport: 5353 } })]);
    first.setState('k', 'v');
    first.close();
    const second = EventStore.open(path);
    t.after(() => second.close());
    assert.deepEqual(second.list({ limit: 10 }), written);
    assert.equal(second.count(), 2);
    assert.equal(second.lastId(), 2);
    assert.equal(second.getState('k'), 'v');
    assert.deepEqual(ids(second.append([ev()])), [3]);
    const raw = new Database(path, { readonly: true });
    t.after(() => raw.close());
    assert.equal(raw.pragma('application_id', { simple: true }), EVENT_STORE_APPLICATION_ID);
    assert.equal(raw.pragma('user_version', { simple: true }), 1);
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
  });

  test('refuses another SQLite database with a different application_id, leaving it alone', () => {
    const path = join(dir, 'ledger.db');
    const db = new Database(path);
    db.pragma('application_id = 1414745159'); // 'TGLG', the ledger's
    db.exec('CREATE TABLE intervals (id INTEGER PRIMARY KEY)');
    db.close();
    assert.throws(() => EventStore.open(path), {
      message: `${path} is not a tollgate event store (application_id 1414745159)`,
    });
    const check = new Database(path, { readonly: true });
    try {
      assert.deepEqual(check.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all(), [{ name: 'intervals' }]);
      assert.equal(check.pragma('application_id', { simple: true }), 1414745159);
      assert.equal(check.pragma('journal_mode', { simple: true }), 'delete', 'journal mode not switched to WAL');
    } finally {
      check.close();
    }
  });

  test('refuses a foreign SQLite database without an application_id instead of adding tables to it', () => {
    const path = join(dir, 'foreign.db');
    const db = new Database(path);
    db.exec('CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT)');
    db.prepare('INSERT INTO things (name) VALUES (?)').run('keep me');
    db.close();
    assert.throws(() => EventStore.open(path), {
      message: `${path} is not a tollgate event store (application_id 0)`,
    });
    const check = new Database(path, { readonly: true });
    try {
      assert.deepEqual(check.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all(), [{ name: 'things' }]);
      assert.equal(check.pragma('application_id', { simple: true }), 0);
      assert.equal(check.pragma('user_version', { simple: true }), 0);
      assert.equal(check.pragma('journal_mode', { simple: true }), 'delete');
    } finally {
      check.close();
    }
  });

  test('refuses an event store with a newer schema', () => {
    const path = join(dir, 'newer.db');
    EventStore.open(path).close();
    const db = new Database(path);
    db.pragma('user_version = 2');
    db.close();
    assert.throws(() => EventStore.open(path), {
      message: `${path} has event store schema 2; this tollgate knows up to 1`,
    });
  });

  test('refuses a file that is not SQLite at all', () => {
    const path = join(dir, 'audit-by-mistake.jsonl');
    writeFileSync(path, '{"id":1,"type":"firewall.log"}\n'.repeat(200));
    assert.throws(() => EventStore.open(path), /not a database/);
    assert.equal(existsSync(path), true);
  });
});
