import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { AuditLog } from './audit.js';
import type { NewEvent, SecurityEvent } from './event.js';
import { EventStore } from './store.js';
import { eventFiles } from './events.fixture.js';

const T0 = Date.UTC(2024, 0, 1);

function ev(i: number, over: Partial<NewEvent> = {}): NewEvent {
  return {
    at: T0 + i,
    type: i % 2 ? 'firewall.log' : 'firewall.drop',
    tenant: 'acme',
    flow: { protocol: 'tcp', src: '10.0.0.1', sport: 1000 + i, dst: '10.0.0.2', dport: 80 },
    rule: 'r',
    action: 'drop',
    detail: { i },
    ...over,
  };
}
const batch = (from: number, to: number): NewEvent[] => Array.from({ length: to - from + 1 }, (_, k) => ev(from + k));

const paths = eventFiles('a');

function openStore(t: { after(fn: () => void): void }, path: string): EventStore {
  const s = EventStore.open(path);
  t.after(() => {
    try {
      s.close();
    } catch {
      // closed by the test
    }
  });
  return s;
}

/** The file's lines (without the final empty string after the last newline). */
function lines(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  assert.ok(text.endsWith('\n'), 'the file ends with a newline');
  return text.slice(0, -1).split('\n');
}
const parsed = (path: string): SecurityEvent[] => lines(path).map((l) => JSON.parse(l) as SecurityEvent);
const ids = (events: readonly { id: number }[]): number[] => events.map((e) => e.id);

describe('AuditLog.append', () => {
  test('writes one JSON line per event, in order, appending', (t) => {
    const p = paths();
    const store = openStore(t, p.db);
    const log = new AuditLog(p.audit);
    const a = store.append(batch(1, 3));
    log.append(a);
    assert.equal(readFileSync(p.audit, 'utf8'), a.map((e) => JSON.stringify(e) + '\n').join(''));
    const b = store.append(batch(4, 4));
    log.append(b);
    assert.equal(readFileSync(p.audit, 'utf8'), [...a, ...b].map((e) => JSON.stringify(e) + '\n').join(''));
    assert.deepEqual(parsed(p.audit), [...a, ...b]);
    assert.deepEqual(parsed(p.audit), store.list({ limit: 100 }));
  });

  test('an empty batch writes nothing and creates no file', () => {
    const p = paths();
    const log = new AuditLog(p.audit);
    log.append([]);
    assert.equal(existsSync(p.audit), false);
  });

  test('a renamed (rotated) file is not written to: the next batch creates a new file', (t) => {
    const p = paths();
    const store = openStore(t, p.db);
    const log = new AuditLog(p.audit);
    log.append(store.append(batch(1, 2)));
    const rotated = `${p.audit}.1`;
    renameSync(p.audit, rotated); // logrotate without copytruncate
    log.append(store.append(batch(3, 3)));
    assert.deepEqual(ids(parsed(p.audit)), [3]);
    assert.deepEqual(ids(parsed(rotated)), [1, 2]);
  });
});

describe('AuditLog.tail', () => {
  test('missing and empty files: lastId 0, not cut', () => {
    const p = paths();
    const log = new AuditLog(p.audit);
    assert.deepEqual(log.tail(), { lastId: 0, cut: false });
    writeFileSync(p.audit, '');
    assert.deepEqual(log.tail(), { lastId: 0, cut: false });
  });

  test('the last complete line gives the id', (t) => {
    const p = paths();
    const store = openStore(t, p.db);
    const log = new AuditLog(p.audit);
    log.append(store.append(batch(1, 3)));
    assert.deepEqual(log.tail(), { lastId: 3, cut: false });
  });

  test('a cut last line: the previous line\'s id, cut: true', (t) => {
    const p = paths();
    const store = openStore(t, p.db);
    const log = new AuditLog(p.audit);
    log.append(store.append(batch(1, 2)));
    appendFileSync(p.audit, '{"id":3,"at":"2024-01-01T00:00:00.003Z","type":"firew');
    assert.deepEqual(log.tail(), { lastId: 2, cut: true });
  });

  test('a cut line and nothing before it: lastId 0, cut: true', () => {
    const p = paths();
    writeFileSync(p.audit, '{"id":1,"at":"2024-01');
    assert.deepEqual(new AuditLog(p.audit).tail(), { lastId: 0, cut: true });
  });

  test('a whole JSON line missing only its newline counts, and is cut', (t) => {
    const p = paths();
    const store = openStore(t, p.db);
    const [e1, e2] = store.append(batch(1, 2));
    writeFileSync(p.audit, JSON.stringify(e1) + '\n' + JSON.stringify(e2));
    assert.deepEqual(new AuditLog(p.audit).tail(), { lastId: 2, cut: true });
  });

  test('lines without a numeric integer id are skipped', () => {
    const p = paths();
    writeFileSync(p.audit, '{"id":7}\n{"id":"8"}\n{"id":8.5}\n[]\nnull\n\n');
    assert.deepEqual(new AuditLog(p.audit).tail(), { lastId: 7, cut: false });
  });

  test('only the file\'s end is read: a long file gives its last id', (t) => {
    const p = paths();
    const store = openStore(t, p.db);
    const log = new AuditLog(p.audit);
    // ~100 bytes a line: well over the 64 KiB read from the end.
    log.append(store.append(Array.from({ length: 2000 }, (_, k) => ev(k + 1, { detail: { pad: 'x'.repeat(100) } }))));
    assert.deepEqual(log.tail(), { lastId: 2000, cut: false });
  });
});

describe('AuditLog.catchUp', () => {
  test('after a crash between store and file, appends exactly the missing events', (t) => {
    const p = paths();
    const store = openStore(t, p.db);
    const log = new AuditLog(p.audit);
    log.append(store.append(batch(1, 3)));
    store.append(batch(4, 5)); // crash: the file never got these
    store.append(batch(6, 6));
    assert.equal(log.catchUp(store), 3);
    assert.deepEqual(ids(parsed(p.audit)), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(parsed(p.audit), store.list({ limit: 100 }));
    assert.equal(log.catchUp(store), 0, 'nothing more');
    assert.deepEqual(ids(parsed(p.audit)), [1, 2, 3, 4, 5, 6]);
    assert.equal(store.lastId(), 6);
  });

  test('a missing file and an empty store: nothing written, no file created', (t) => {
    const p = paths();
    const store = openStore(t, p.db);
    const log = new AuditLog(p.audit);
    assert.equal(log.catchUp(store), 0);
    assert.equal(existsSync(p.audit), false);
    assert.equal(store.lastId(), 0);
  });

  test('a missing file: every stored event is written', (t) => {
    const p = paths();
    const store = openStore(t, p.db);
    store.append(batch(1, 4));
    assert.equal(new AuditLog(p.audit).catchUp(store), 4);
    assert.deepEqual(parsed(p.audit), store.list({ limit: 100 }));
  });

  test('ends a cut line first, so the appended lines stand alone', (t) => {
    const p = paths();
    const store = openStore(t, p.db);
    const log = new AuditLog(p.audit);
    log.append(store.append(batch(1, 2)));
    store.append(batch(3, 4));
    const fragment = '{"id":3,"at":"2024-01-01T00:00:00.003Z","ty';
    appendFileSync(p.audit, fragment); // crash or full disk in the middle of writing event 3
    assert.equal(log.catchUp(store), 2);
    const ls = lines(p.audit);
    assert.equal(ls.length, 5);
    assert.equal(ls[2], fragment, 'the cut line stays as written, on a line of its own');
    const whole = ls.filter((_, i) => i !== 2).map((l) => JSON.parse(l) as SecurityEvent);
    assert.deepEqual(ids(whole), [1, 2, 3, 4]);
    assert.deepEqual(whole, store.list({ limit: 100 }));
    assert.deepEqual(log.tail(), { lastId: 4, cut: false });
    assert.equal(log.catchUp(store), 0);
    assert.equal(lines(p.audit).length, 5, 'a second catch-up adds nothing, not even a newline');
  });

  test('ends a cut line also when the store has nothing to add', (t) => {
    const p = paths();
    const store = openStore(t, p.db);
    const log = new AuditLog(p.audit);
    log.append(store.append(batch(1, 1)));
    appendFileSync(p.audit, '{"id":2');
    assert.equal(log.catchUp(store), 0);
    assert.equal(readFileSync(p.audit, 'utf8').endsWith('{"id":2\n'), true);
    assert.deepEqual(log.tail(), { lastId: 1, cut: false });
    log.append(store.append(batch(2, 2)));
    const ls = lines(p.audit);
    assert.deepEqual(ls.slice(1, 2), ['{"id":2']);
    assert.deepEqual(ids([ls[0]!, ls[2]!].map((l) => JSON.parse(l) as SecurityEvent)), [1, 2]);
  });

  test('a file ahead of its store (store file lost): new ids continue above the file\'s', (t) => {
    const p = paths();
    const first = EventStore.open(p.db);
    const log = new AuditLog(p.audit);
    log.append(first.append(batch(1, 5)));
    first.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(p.db + suffix, { force: true });
    const store = openStore(t, p.db);
    assert.equal(store.lastId(), 0);
    assert.equal(log.catchUp(store), 0);
    assert.equal(store.lastId(), 5);
    const next = store.append(batch(6, 7));
    assert.deepEqual(ids(next), [6, 7]);
    log.append(next);
    const all = ids(parsed(p.audit));
    assert.deepEqual(all, [1, 2, 3, 4, 5, 6, 7]);
    assert.equal(new Set(all).size, all.length, 'no id twice');
  });

  test('a file ahead of a store restored from an older copy: no id repeats', (t) => {
    const p = paths();
    const store = openStore(t, p.db);
    const log = new AuditLog(p.audit);
    log.append(store.append(batch(1, 3)));
    // The file got events 4..5 from a newer store that was lost.
    writeFileSync(p.audit, readFileSync(p.audit, 'utf8') + JSON.stringify({ id: 4, type: 'x' }) + '\n' + JSON.stringify({ id: 5, type: 'x' }) + '\n');
    assert.equal(log.catchUp(store), 0);
    assert.equal(store.lastId(), 5);
    log.append(store.append(batch(6, 6)));
    assert.deepEqual(ids(parsed(p.audit)), [1, 2, 3, 4, 5, 6]);
  });

  test('catches up more than one batch of 10 000', (t) => {
    const p = paths();
    const store = openStore(t, p.db);
    const log = new AuditLog(p.audit);
    log.append(store.append(batch(1, 1)));
    store.append(Array.from({ length: 10_005 }, (_, k) => ev(k + 2, { flow: null, detail: {} })));
    assert.equal(log.catchUp(store), 10_005);
    const all = ids(parsed(p.audit));
    assert.equal(all.length, 10_006);
    assert.deepEqual(all, Array.from({ length: 10_006 }, (_, k) => k + 1));
  });
});
