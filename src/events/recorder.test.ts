import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditLog } from './audit.js';
import { numbered, type NewEvent, type SecurityEvent } from './event.js';
import { EventHub } from './hub.js';
import { EventRecorder } from './recorder.js';
import { EventStore } from './store.js';
import { eventFiles } from './events.fixture.js';

const T0 = Date.UTC(2024, 0, 1);

function ev(type: string, i = 0): NewEvent {
  return { at: T0 + i, type, tenant: 'acme', flow: null, rule: null, action: null, detail: { i } };
}

const paths = eventFiles('r');

function recorder(t: { after(fn: () => void): void }, opts: ConstructorParameters<typeof EventRecorder>[0]): EventRecorder {
  const r = new EventRecorder(opts);
  t.after(() => {
    try {
      r.close();
    } catch {
      // closed by the test
    }
  });
  return r;
}

const parsed = (path: string): SecurityEvent[] => {
  const text = readFileSync(path, 'utf8');
  assert.ok(text.endsWith('\n'));
  return text.slice(0, -1).split('\n').map((l) => JSON.parse(l) as SecurityEvent);
};
const ids = (events: readonly { id: number }[]): number[] => events.map((e) => e.id);

describe('numbered', () => {
  test('gives the id and an ISO time, and keeps the rest', () => {
    const e: NewEvent = { at: T0 + 1500, type: 'firewall.log', tenant: null, flow: null, rule: 'r', action: 'allow', detail: { a: 1 } };
    assert.deepEqual(numbered(9, e), { id: 9, at: '2024-01-01T00:00:01.500Z', type: 'firewall.log', tenant: null, flow: null, rule: 'r', action: 'allow', detail: { a: 1 } });
  });
});

describe('EventRecorder', () => {
  test('record numbers events, writes store and file, counts by type and publishes in order', (t) => {
    const p = paths();
    const errors: Error[] = [];
    const r = recorder(t, { ...p, onAuditError: (err) => errors.push(err) });
    assert.equal(r.caughtUp, 0);
    const seen: number[][] = [];
    r.hub.subscribe((events) => seen.push(ids(events)));

    const a = r.record([ev('firewall.log', 1), ev('firewall.drop', 2), ev('firewall.log', 3)]);
    assert.deepEqual(a, [
      { id: 1, at: '2024-01-01T00:00:00.001Z', type: 'firewall.log', tenant: 'acme', flow: null, rule: null, action: null, detail: { i: 1 } },
      { id: 2, at: '2024-01-01T00:00:00.002Z', type: 'firewall.drop', tenant: 'acme', flow: null, rule: null, action: null, detail: { i: 2 } },
      { id: 3, at: '2024-01-01T00:00:00.003Z', type: 'firewall.log', tenant: 'acme', flow: null, rule: null, action: null, detail: { i: 3 } },
    ]);
    assert.deepEqual(r.record([]), []);
    const b = r.record([ev('events.lost', 4)]);
    assert.deepEqual(ids(b), [4]);

    assert.deepEqual(seen, [[1, 2, 3], [4]], 'one publish per non-empty record, in order');
    assert.deepEqual([...r.counts].sort(), [['events.lost', 1], ['firewall.drop', 1], ['firewall.log', 2]]);
    assert.deepEqual(r.store.list({ limit: 100 }), [...a, ...b]);
    assert.deepEqual(parsed(p.audit), [...a, ...b]);
    assert.deepEqual(errors, []);
  });

  test('subscribers see the events already in store and file', (t) => {
    const p = paths();
    const r = recorder(t, p);
    const observed: Array<{ stored: number[]; filed: number[] }> = [];
    r.hub.subscribe(() => observed.push({ stored: ids(r.store.list({ limit: 100 })), filed: ids(parsed(p.audit)) }));
    r.record([ev('a.b')]);
    r.record([ev('a.b'), ev('a.c')]);
    assert.deepEqual(observed, [
      { stored: [1], filed: [1] },
      { stored: [1, 2, 3], filed: [1, 2, 3] },
    ]);
  });

  test('a throwing subscriber does not break record and is dropped', (t) => {
    const p = paths();
    const r = recorder(t, p);
    const seen: number[] = [];
    r.hub.subscribe(() => {
      throw new Error('client gone');
    });
    r.hub.subscribe((events) => seen.push(...ids(events)));
    assert.equal(r.hub.subscribers, 2);
    assert.deepEqual(ids(r.record([ev('a.b')])), [1]);
    assert.equal(r.hub.subscribers, 1);
    r.record([ev('a.b')]);
    assert.deepEqual(seen, [1, 2]);
    assert.deepEqual(ids(parsed(p.audit)), [1, 2]);
  });

  test('an invalid event throws and records nothing of its batch', (t) => {
    const p = paths();
    const r = recorder(t, p);
    const seen: number[] = [];
    r.hub.subscribe((events) => seen.push(...ids(events)));
    assert.throws(() => r.record([ev('a.b'), ev('')]), /CHECK constraint failed/);
    assert.equal(r.store.count(), 0);
    assert.deepEqual(seen, []);
    assert.equal(r.counts.size, 0);
    assert.equal(existsSync(p.audit), false);
  });

  test('at construction, the file catches up with events the store has beyond it', (t) => {
    const p = paths();
    const store = EventStore.open(p.db);
    new AuditLog(p.audit).append(store.append([ev('x.a', 1), ev('x.b', 2)]));
    store.append([ev('x.c', 3), ev('x.d', 4), ev('x.e', 5)]); // crash before the file got these
    store.close();

    const r = recorder(t, p);
    assert.equal(r.caughtUp, 3);
    assert.equal(r.counts.size, 0, 'counts are of this process only');
    assert.deepEqual(ids(parsed(p.audit)), [1, 2, 3, 4, 5]);
    assert.deepEqual(parsed(p.audit), r.store.list({ limit: 100 }));
    assert.deepEqual(ids(r.record([ev('x.f', 6)])), [6]);
    assert.deepEqual(ids(parsed(p.audit)), [1, 2, 3, 4, 5, 6]);
    r.close();

    const again = recorder(t, p);
    assert.equal(again.caughtUp, 0, 'in line: nothing to catch up');
    assert.deepEqual(ids(parsed(p.audit)), [1, 2, 3, 4, 5, 6]);
  });

  test('a rotated audit file (renamed away) gets only new events, not the whole store again', (t) => {
    const p = paths();
    const r = recorder(t, p);
    r.record([ev('x.a', 1), ev('x.b', 2), ev('x.c', 3)]);
    r.close();
    renameSync(p.audit, `${p.audit}.1`); // logrotate without copytruncate
    const again = recorder(t, p);
    assert.equal(again.caughtUp, 0);
    assert.equal(existsSync(p.audit), false, 'no copy of the store in the new file');
    again.record([ev('x.d', 4)]);
    assert.deepEqual(ids(parsed(p.audit)), [4]);
    assert.deepEqual(ids(parsed(`${p.audit}.1`)), [1, 2, 3]);
  });

  test('a failing catch-up at construction throws and names the audit file', (t) => {
    const p = paths();
    const store = EventStore.open(p.db);
    store.append([ev('x.a')]);
    store.close();
    mkdirSync(p.audit); // the audit path is a directory
    assert.throws(() => new EventRecorder(p), (err: Error) => {
      assert.match(err.message, new RegExp(`^audit file ${p.audit.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*EISDIR`));
      assert.equal((err.cause as NodeJS.ErrnoException).code, 'EISDIR');
      return true;
    });
    rmSync(p.audit, { recursive: true });
    // The store was closed and the file can be caught up by the next start.
    const r = recorder(t, p);
    assert.equal(r.caughtUp, 1);
  });

  test('an unwritable audit file: reported, events still stored and published, then caught up once writable', (t) => {
    const p = paths();
    const errors: Error[] = [];
    const r = recorder(t, { ...p, onAuditError: (err) => errors.push(err) });
    const seen: number[] = [];
    r.hub.subscribe((events) => seen.push(...ids(events)));

    r.record([ev('a.x', 1), ev('a.y', 2)]);
    assert.deepEqual(ids(parsed(p.audit)), [1, 2]);

    // The path becomes a directory: every write fails.
    const aside = `${p.audit}.aside`;
    renameSync(p.audit, aside);
    mkdirSync(p.audit);
    assert.deepEqual(ids(r.record([ev('a.x', 3)])), [3]);
    assert.equal(errors.length, 1);
    assert.equal((errors[0] as NodeJS.ErrnoException).code, 'EISDIR');
    assert.deepEqual(ids(r.record([ev('a.y', 4)])), [4], 'still failing: the catch-up attempt fails too');
    assert.equal(errors.length, 2);
    assert.equal((errors[1] as NodeJS.ErrnoException).code, 'EISDIR');

    assert.deepEqual(seen, [1, 2, 3, 4], 'the hub got every event');
    assert.deepEqual(ids(r.store.list({ limit: 100 })), [1, 2, 3, 4]);
    assert.deepEqual([...r.counts].sort(), [['a.x', 2], ['a.y', 2]]);

    // Writable again (the old file back in place): the next record catches up.
    rmSync(p.audit, { recursive: true });
    renameSync(aside, p.audit);
    assert.deepEqual(ids(r.record([ev('a.z', 5)])), [5]);
    assert.equal(errors.length, 2, 'no new error');
    assert.deepEqual(ids(parsed(p.audit)), [1, 2, 3, 4, 5]);
    assert.deepEqual(parsed(p.audit), r.store.list({ limit: 100 }));

    // And back to plain appends.
    r.record([ev('a.z', 6)]);
    assert.deepEqual(ids(parsed(p.audit)), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6]);
  });

  test('an audit path whose parent is a regular file: reported, then caught up from the start', (t) => {
    const p = paths();
    const parent = `${p.db}.blocker`;
    writeFileSync(parent, 'not a directory\n');
    const audit = join(parent, 'audit.jsonl');
    const errors: Error[] = [];
    const r = recorder(t, { db: p.db, audit, onAuditError: (err) => errors.push(err) });
    assert.equal(r.caughtUp, 0, 'an empty store has nothing to write');

    r.record([ev('b.a', 1)]);
    r.record([ev('b.b', 2), ev('b.c', 3)]);
    assert.deepEqual(errors.map((e) => (e as NodeJS.ErrnoException).code), ['ENOTDIR', 'ENOTDIR']);
    assert.equal(r.store.count(), 3);

    rmSync(parent);
    mkdirSync(parent);
    r.record([ev('b.d', 4)]);
    assert.equal(errors.length, 2);
    assert.deepEqual(ids(parsed(audit)), [1, 2, 3, 4]);
    assert.deepEqual(parsed(audit), r.store.list({ limit: 100 }));
  });

  test('without onAuditError, a failed audit write is silent and record still returns', (t) => {
    const p = paths();
    const r = recorder(t, p);
    mkdirSync(p.audit);
    assert.deepEqual(ids(r.record([ev('c.a')])), [1]);
    assert.equal(r.store.count(), 1);
  });
});

describe('EventHub', () => {
  const e = (id: number): SecurityEvent => numbered(id, ev('h.x', id));

  test('subscribers get each batch in subscription order; unsubscribe works', () => {
    const hub = new EventHub();
    assert.equal(hub.subscribers, 0);
    const calls: string[] = [];
    const offA = hub.subscribe((events) => calls.push(`a:${ids(events).join(',')}`));
    const offB = hub.subscribe((events) => calls.push(`b:${ids(events).join(',')}`));
    assert.equal(hub.subscribers, 2);
    hub.publish([e(1), e(2)]);
    hub.publish([]);
    hub.publish([e(3)]);
    assert.deepEqual(calls, ['a:1,2', 'b:1,2', 'a:3', 'b:3']);

    offA();
    assert.equal(hub.subscribers, 1);
    hub.publish([e(4)]);
    assert.deepEqual(calls.slice(4), ['b:4']);
    offA(); // twice: harmless
    assert.equal(hub.subscribers, 1);
    offB();
    assert.equal(hub.subscribers, 0);
    hub.publish([e(5)]);
    assert.equal(calls.length, 5);
  });

  test('a listener that throws is dropped; the others still get that batch and later ones', () => {
    const hub = new EventHub();
    const got: number[][] = [];
    let thrown = 0;
    hub.subscribe((events) => got.push(ids(events)));
    hub.subscribe(() => {
      thrown++;
      throw new Error('boom');
    });
    hub.subscribe((events) => got.push(ids(events).map((i) => -i)));
    assert.equal(hub.subscribers, 3);
    hub.publish([e(1)]);
    assert.equal(thrown, 1);
    assert.equal(hub.subscribers, 2);
    hub.publish([e(2)]);
    assert.equal(thrown, 1, 'not called again');
    assert.deepEqual(got, [[1], [-1], [2], [-2]]);
  });

  test('the same function subscribed twice is one subscriber', () => {
    const hub = new EventHub();
    let calls = 0;
    const l = (): void => {
      calls++;
    };
    const off1 = hub.subscribe(l);
    hub.subscribe(l);
    assert.equal(hub.subscribers, 1);
    hub.publish([e(1)]);
    assert.equal(calls, 1);
    off1();
    assert.equal(hub.subscribers, 0);
  });

  test('a listener may unsubscribe itself while being called', () => {
    const hub = new EventHub();
    const got: string[] = [];
    const off = hub.subscribe((events) => {
      got.push(`once:${ids(events).join(',')}`);
      off();
    });
    hub.subscribe((events) => got.push(`always:${ids(events).join(',')}`));
    hub.publish([e(1)]);
    hub.publish([e(2)]);
    assert.deepEqual(got, ['once:1', 'always:1', 'always:2']);
    assert.equal(hub.subscribers, 1);
  });
});
