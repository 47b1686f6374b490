import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import { DEFAULT_CLASS } from '../policy/schema.js';
import { LedgerError } from './errors.js';
import { DEFAULT_CLASS_ID, Ledger, type ContainerReading, type Reading } from './ledger.js';
import { APPLICATION_ID, latestVersion } from './migrations.js';

const HOST = 'host-a';
const E1 = { bootId: 'boot-1', counterId: '17' };
const T0 = Date.UTC(2025, 0, 1);
const at = (s: number) => new Date(T0 + s * 1000);

function tmpDb(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'tg-ledger-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'ledger.db');
}

function openTmp(t: TestContext, path = tmpDb(t)): Ledger {
  const l = Ledger.open(path, { hostId: HOST });
  t.after(() => l.close());
  return l;
}

/** A counter's class and that class's billable flag; the default class unless given. */
type Cls = { classId: number; billable: boolean };
const INTERNET: Cls = { classId: DEFAULT_CLASS_ID, billable: true };

function rd(tenantId: number, direction: 'ingress' | 'egress', packets: bigint, bytes: bigint, cls: Cls = INTERNET): Reading {
  return { tenantId, ...cls, direction, packets, bytes };
}

function rowCount(l: Ledger): number {
  return (l.db.prepare('SELECT count(*) AS n FROM usage').get() as { n: number }).n;
}

function throwsCode(fn: () => unknown, code: string, field?: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof LedgerError, `expected LedgerError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (typeof field === 'string') assert.equal(err.field, field, err.message);
    if (field instanceof RegExp) assert.match(err.field ?? '', field, err.message);
    return true;
  });
}

test('open sets WAL, synchronous=FULL, foreign keys, schema version and seeds unattributed and the default class', (t) => {
  const l = openTmp(t);
  assert.equal(l.db.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(l.db.pragma('synchronous', { simple: true }), 2);
  assert.equal(l.db.pragma('foreign_keys', { simple: true }), 1);
  assert.equal(l.db.pragma('user_version', { simple: true }), latestVersion());
  assert.equal(l.db.pragma('application_id', { simple: true }), APPLICATION_ID);
  assert.ok((l.db.pragma('busy_timeout', { simple: true }) as number) > 0);
  assert.deepEqual(
    l.tenants().map((x) => [x.id, x.name]),
    [[0, 'unattributed']],
  );
  // The policy's fallback class is the ledger's class 0.
  assert.deepEqual(
    l.classes().map((x) => [x.id, x.name]),
    [[DEFAULT_CLASS_ID, DEFAULT_CLASS]],
  );
  assert.equal(l.lastExport(), null);
  assert.deepEqual(l.integrityCheck(), ['ok']);
});

test('tenant ids are >= 1, stable across reopen and never reissued', (t) => {
  const path = tmpDb(t);
  let l = Ledger.open(path, { hostId: HOST });
  const a = l.ensureTenants(['acme', 'globex', 'unattributed']);
  assert.equal(a.get('unattributed'), 0);
  assert.ok(a.get('acme')! >= 1 && a.get('globex')! >= 1);
  assert.notEqual(a.get('acme'), a.get('globex'));
  // Idempotent in one call and across calls.
  assert.deepEqual([...l.ensureTenants(['globex', 'acme', 'acme'])], [['globex', a.get('globex')], ['acme', a.get('acme')]]);
  // Names already issued use up no ids: the agent ensures every policy
  // tenant on each reload, and the kernel's counter array is sized by id.
  for (let i = 0; i < 5; i++) l.ensureTenants(['acme', 'globex', 'unattributed']);
  assert.equal(l.ensureTenants(['hooli']).get('hooli'), Math.max(a.get('acme')!, a.get('globex')!) + 1);
  l.close();

  l = Ledger.open(path, { hostId: HOST });
  const b = l.ensureTenants(['initech', 'acme']);
  assert.equal(b.get('acme'), a.get('acme'));
  assert.ok(b.get('initech')! > a.get('globex')!);
  // Even if a row disappeared behind our back, AUTOINCREMENT never reuses its id.
  l.db.prepare('DELETE FROM tenants WHERE name = ?').run('initech');
  const c = l.ensureTenants(['umbrella']);
  assert.ok(c.get('umbrella')! > b.get('initech')!);
  l.close();
});

test('ensureTenants rejects bad names naming the field', (t) => {
  const l = openTmp(t);
  throwsCode(() => l.ensureTenants(['ok', '']), 'INVALID_INPUT', 'names[1]');
  throwsCode(() => l.ensureTenants([' padded']), 'INVALID_INPUT', 'names[0]');
  throwsCode(() => l.ensureTenants(['a\nb']), 'INVALID_INPUT', 'names[0]');
  throwsCode(() => l.ensureTenants([42 as unknown as string]), 'INVALID_INPUT', 'names[0]');
  throwsCode(() => l.ensureTenants('acme' as unknown as string[]), 'INVALID_INPUT', 'names');
  assert.equal(l.tenants().length, 1, 'a rejected batch issues no ids');
});

test('class ids are >= 1, stable across reopen, never reissued, and the default class keeps 0', (t) => {
  const path = tmpDb(t);
  let l = Ledger.open(path, { hostId: HOST });
  const a = l.ensureClasses(['mgmt', DEFAULT_CLASS, 'backup']);
  assert.equal(a.get(DEFAULT_CLASS), DEFAULT_CLASS_ID);
  // Dense from 1: the kernel has room for few classes (TG_MAX_CLASSES), so no id is wasted.
  assert.deepEqual([a.get('mgmt'), a.get('backup')], [1, 2]);
  for (let i = 0; i < 5; i++) l.ensureClasses([DEFAULT_CLASS, 'backup', 'mgmt']);
  assert.deepEqual([...l.ensureClasses(['backup', 'mgmt', 'mgmt'])], [['backup', a.get('backup')], ['mgmt', a.get('mgmt')]]);
  // Class ids and tenant ids are separate sequences.
  assert.equal(l.ensureTenants(['acme']).get('acme'), 1);
  l.close();

  l = Ledger.open(path, { hostId: HOST });
  t.after(() => l.close());
  const b = l.ensureClasses(['video', 'mgmt']);
  assert.equal(b.get('mgmt'), a.get('mgmt'));
  assert.equal(b.get('video'), 3);
  l.db.prepare('DELETE FROM classes WHERE name = ?').run('video');
  const voice = l.ensureClasses(['voice']).get('voice')!;
  assert.ok(voice > b.get('video')!, 'AUTOINCREMENT never reuses an id');
  assert.deepEqual(
    l.classes().map((c) => [c.id, c.name]),
    [[0, DEFAULT_CLASS], [a.get('mgmt'), 'mgmt'], [a.get('backup'), 'backup'], [voice, 'voice']],
  );

  throwsCode(() => l.ensureClasses(['ok', '']), 'INVALID_INPUT', 'names[1]');
  throwsCode(() => l.ensureClasses(['tab\there']), 'INVALID_INPUT', 'names[0]');
  throwsCode(() => l.ensureClasses('mgmt' as unknown as string[]), 'INVALID_INPUT', 'names');
  assert.equal(l.classes().length, 4, 'a rejected batch issues no ids');
});

test('each (tenant, class, direction) is its own counter: separate checkpoints, deltas and rows carrying the billable flag', (t) => {
  const l = openTmp(t);
  const acme = l.ensureTenants(['acme']).get('acme')!;
  const MGMT: Cls = { classId: l.ensureClasses(['mgmt']).get('mgmt')!, billable: false };

  l.recordInterval({
    epoch: { ...E1, startedAt: at(0) },
    at: at(10),
    readings: [rd(acme, 'egress', 10n, 1000n), rd(acme, 'egress', 4n, 240n, MGMT), rd(acme, 'ingress', 0n, 0n, MGMT)],
  });
  // The policy makes mgmt billable between intervals: same counter, no new
  // epoch; the next row carries the flag at export time.
  const r2 = l.recordInterval({
    epoch: E1,
    at: at(20),
    readings: [rd(acme, 'egress', 10n, 1000n), rd(acme, 'egress', 6n, 360n, { ...MGMT, billable: true }), rd(acme, 'ingress', 1n, 60n, MGMT)],
  });
  assert.deepEqual([r2.rows, r2.packets, r2.bytes], [2, 3n, 180n]);

  assert.deepEqual(
    l.outbox(0).map((r) => [r.seq, r.tenant, r.classId, r.class, r.billable, r.direction, r.packets, r.bytes]),
    [
      [1, 'acme', 0, DEFAULT_CLASS, true, 'egress', 10n, 1000n],
      [2, 'acme', MGMT.classId, 'mgmt', false, 'egress', 4n, 240n],
      [3, 'acme', MGMT.classId, 'mgmt', true, 'egress', 2n, 120n],
      [4, 'acme', MGMT.classId, 'mgmt', false, 'ingress', 1n, 60n],
    ],
  );
  assert.deepEqual(
    l.checkpoint(E1)!.readings.map((x) => [x.classId, x.direction, x.packets, x.bytes]),
    [
      [0, 'egress', 10n, 1000n],
      [MGMT.classId, 'egress', 6n, 360n],
      [MGMT.classId, 'ingress', 1n, 60n],
    ],
  );
  // A regression in one class names that class and rejects the interval.
  try {
    l.recordInterval({ epoch: E1, at: at(30), readings: [rd(acme, 'egress', 11n, 1100n), rd(acme, 'egress', 5n, 360n, MGMT)] });
    assert.fail('expected a regression error');
  } catch (err) {
    assert.ok(err instanceof LedgerError && err.code === 'COUNTER_REGRESSION' && err.field === 'readings[1].packets', String(err));
    assert.match(err.message, new RegExp(`tenant ${acme} class ${MGMT.classId} egress packets went from 6 to 5`));
  }
  assert.equal(rowCount(l), 4);

  // The idempotency key includes the class: the same interval of another
  // class is a different row, the same class is refused by the schema.
  const insert = l.db.prepare(
    `INSERT INTO usage (host, seq, epoch_id, tenant_id, class_id, direction, billable, interval_start, interval_end, packets, bytes)
     VALUES (?, ?, 1, ?, ?, 'egress', 1, ?, ?, 1, 1)`,
  );
  assert.throws(() => insert.run(HOST, 100, acme, MGMT.classId, at(10).getTime(), at(20).getTime()), /UNIQUE constraint failed/);
  assert.throws(() => insert.run(HOST, 101, acme, 999, at(20).getTime(), at(30).getTime()), /FOREIGN KEY constraint failed/);
});

test('first interval of an epoch counts from zero; later intervals store deltas and chain interval_start', (t) => {
  const l = openTmp(t);
  const ids = l.ensureTenants(['acme', 'globex']);
  const acme = ids.get('acme')!;
  const globex = ids.get('globex')!;

  const r1 = l.recordInterval({
    epoch: { ...E1, startedAt: at(0) },
    at: at(10),
    readings: [rd(acme, 'ingress', 10n, 1000n), rd(acme, 'egress', 0n, 0n), rd(0, 'ingress', 1n, 60n)],
  });
  assert.deepEqual(r1, { epochId: r1.epochId, rows: 2, packets: 11n, bytes: 1060n, containerRows: 0 });

  const r2 = l.recordInterval({
    epoch: E1,
    at: at(20),
    readings: [rd(acme, 'ingress', 15n, 1500n), rd(acme, 'egress', 2n, 100n), rd(0, 'ingress', 1n, 60n), rd(globex, 'egress', 0n, 0n)],
  });
  assert.equal(r2.epochId, r1.epochId);
  assert.deepEqual({ ...r2, epochId: 0 }, { epochId: 0, rows: 2, packets: 7n, bytes: 600n, containerRows: 0 });

  const rows = l.outbox(0);
  assert.deepEqual(
    rows.map((r) => [r.seq, r.tenant, r.direction, r.intervalStart.getTime(), r.intervalEnd.getTime(), r.packets, r.bytes]),
    [
      [1, 'acme', 'ingress', at(0).getTime(), at(10).getTime(), 10n, 1000n],
      [2, 'unattributed', 'ingress', at(0).getTime(), at(10).getTime(), 1n, 60n],
      [3, 'acme', 'ingress', at(10).getTime(), at(20).getTime(), 5n, 500n],
      [4, 'acme', 'egress', at(10).getTime(), at(20).getTime(), 2n, 100n],
    ],
  );
  const cp = l.checkpoint(E1)!;
  assert.equal(cp.at.getTime(), at(20).getTime());
  assert.equal(cp.startedAt.getTime(), at(0).getTime());
  assert.deepEqual(
    cp.readings.map((x) => [x.tenantId, x.direction, x.packets, x.bytes]),
    [
      [0, 'ingress', 1n, 60n],
      [acme, 'egress', 2n, 100n],
      [acme, 'ingress', 15n, 1500n],
    ],
  );
  assert.equal(l.lastExport()!.getTime(), at(20).getTime());
  assert.equal(l.lastSequence(), 4);
});

test('an interval with no movement advances the checkpoint time and writes no rows', (t) => {
  const l = openTmp(t);
  const acme = l.ensureTenants(['acme']).get('acme')!;
  l.recordInterval({ epoch: E1, at: at(10), readings: [rd(acme, 'ingress', 5n, 50n)] });
  assert.equal(l.recordInterval({ epoch: E1, at: at(20), readings: [rd(acme, 'ingress', 5n, 50n)] }).rows, 0);
  l.recordInterval({ epoch: E1, at: at(30), readings: [rd(acme, 'ingress', 6n, 70n)] });
  const rows = l.outbox(0);
  assert.equal(rows.length, 2);
  // The second row covers only (20, 30]: the idle interval was accounted as idle.
  assert.equal(rows[1].intervalStart.getTime(), at(20).getTime());
  assert.equal(rows[0].intervalStart.getTime(), at(10).getTime(), 'startedAt defaults to the first interval end');
});

test('a new boot id starts a new epoch whose deltas count from zero', (t) => {
  const l = openTmp(t);
  const acme = l.ensureTenants(['acme']).get('acme')!;
  const a = l.recordInterval({ epoch: E1, at: at(10), readings: [rd(acme, 'egress', 1000n, 100000n)] });
  // After a reboot the map restarts from zero: lower than the old checkpoint,
  // which in the old epoch would be a regression.
  const b = l.recordInterval({ epoch: { bootId: 'boot-2', counterId: '17' }, at: at(20), readings: [rd(acme, 'egress', 3n, 300n)] });
  assert.notEqual(b.epochId, a.epochId);
  assert.deepEqual([b.rows, b.packets, b.bytes], [1, 3n, 300n]);
  // A new counter map on the same boot is a new epoch too.
  const c = l.recordInterval({ epoch: { bootId: 'boot-2', counterId: '18' }, at: at(20), readings: [rd(acme, 'egress', 1n, 10n)] });
  assert.notEqual(c.epochId, b.epochId);
  assert.deepEqual(
    l.usage().map((u) => [u.tenant, u.direction, u.packets, u.bytes]),
    [['acme', 'egress', 1004n, 100310n]],
  );
  // The old epoch's checkpoint is untouched.
  assert.equal(l.checkpoint(E1)!.readings[0].packets, 1000n);
});

test('reopening and adopting the same epoch continues from the stored checkpoint', (t) => {
  const path = tmpDb(t);
  let l = Ledger.open(path, { hostId: HOST });
  const acme = l.ensureTenants(['acme']).get('acme')!;
  const first = l.recordInterval({ epoch: E1, at: at(10), readings: [rd(acme, 'ingress', 100n, 10000n)] });
  l.close();

  l = Ledger.open(path, { hostId: HOST });
  t.after(() => l.close());
  const second = l.recordInterval({ epoch: E1, at: at(20), readings: [rd(acme, 'ingress', 130n, 13000n)] });
  assert.equal(second.epochId, first.epochId);
  assert.deepEqual([second.packets, second.bytes], [30n, 3000n]);
  assert.deepEqual(
    l.usage().map((u) => [u.packets, u.bytes]),
    [[130n, 13000n]],
  );
  // The epoch is per host: another host id with the same boot/counter ids is a different epoch.
  const other = Ledger.open(path, { hostId: 'host-b' });
  t.after(() => other.close());
  const o = other.recordInterval({ epoch: E1, at: at(20), readings: [rd(acme, 'ingress', 5n, 500n)] });
  assert.notEqual(o.epochId, first.epochId);
  assert.deepEqual([o.packets, o.bytes], [5n, 500n]);
  assert.equal(other.lastSequence(), 1, 'outbox sequences are per host');
});

test('a reading below its checkpoint in the same epoch rejects the whole interval and writes nothing', (t) => {
  const l = openTmp(t);
  const ids = l.ensureTenants(['acme', 'globex']);
  const acme = ids.get('acme')!;
  const globex = ids.get('globex')!;
  l.recordInterval({ epoch: E1, at: at(10), readings: [rd(acme, 'ingress', 100n, 10000n), rd(globex, 'egress', 7n, 700n)] });
  const before = { rows: rowCount(l), seq: l.lastSequence(), cp: l.checkpoint(E1) };

  // globex grew (would be a row) but acme's bytes went down: all or nothing.
  throwsCode(
    () => l.recordInterval({ epoch: E1, at: at(20), readings: [rd(globex, 'egress', 9n, 900n), rd(acme, 'ingress', 100n, 9999n)] }),
    'COUNTER_REGRESSION',
    'readings[1].bytes',
  );
  throwsCode(() => l.recordInterval({ epoch: E1, at: at(20), readings: [rd(acme, 'ingress', 99n, 20000n)] }), 'COUNTER_REGRESSION', 'readings[0].packets');
  assert.equal(rowCount(l), before.rows);
  assert.equal(l.lastSequence(), before.seq);
  assert.deepEqual(l.checkpoint(E1), before.cp, 'checkpoint values and time unchanged');

  // The error message says what to do.
  try {
    l.recordInterval({ epoch: E1, at: at(20), readings: [rd(acme, 'ingress', 1n, 1n)] });
    assert.fail('expected a regression error');
  } catch (err) {
    assert.match((err as Error).message, /went from 100 to 1 within epoch .*new epoch/);
  }
  // Once the counters are right again, recording resumes with the full delta.
  const ok = l.recordInterval({ epoch: E1, at: at(30), readings: [rd(globex, 'egress', 9n, 900n), rd(acme, 'ingress', 100n, 10000n)] });
  assert.deepEqual([ok.rows, ok.packets, ok.bytes], [1, 2n, 200n]);
});

test('an interval end that is not after the checkpoint is rejected without writing', (t) => {
  const l = openTmp(t);
  const acme = l.ensureTenants(['acme']).get('acme')!;
  l.recordInterval({ epoch: E1, at: at(10), readings: [rd(acme, 'ingress', 1n, 1n)] });
  throwsCode(() => l.recordInterval({ epoch: E1, at: at(10), readings: [rd(acme, 'ingress', 2n, 2n)] }), 'INTERVAL_NOT_AFTER_CHECKPOINT', 'at');
  throwsCode(() => l.recordInterval({ epoch: E1, at: at(5), readings: [rd(acme, 'ingress', 2n, 2n)] }), 'INTERVAL_NOT_AFTER_CHECKPOINT', 'at');
  assert.equal(rowCount(l), 1);
  assert.equal(l.checkpoint(E1)!.readings[0].packets, 1n);
});

test('counters above 2^53 and up to 2^64-1 are stored and summed exactly', (t) => {
  const l = openTmp(t);
  const acme = l.ensureTenants(['acme']).get('acme')!;
  const big = 2n ** 60n + 12345n; // far beyond Number.MAX_SAFE_INTEGER
  l.recordInterval({ epoch: E1, at: at(10), readings: [rd(acme, 'ingress', big, big + 1n)] });
  l.recordInterval({ epoch: E1, at: at(20), readings: [rd(acme, 'ingress', big * 2n, big * 2n + 3n)] });
  const u = l.usage();
  assert.equal(u[0].packets, big * 2n);
  assert.equal(u[0].bytes, big * 2n + 3n);
  // Sums past 2^63 (SQLite's SUM limit) across rows stay exact.
  const huge = 2n ** 62n + 7n;
  l.recordInterval({ epoch: { bootId: 'boot-2', counterId: '1' }, at: at(30), readings: [rd(acme, 'ingress', huge, huge)] });
  l.recordInterval({ epoch: { bootId: 'boot-3', counterId: '1' }, at: at(40), readings: [rd(acme, 'ingress', huge, huge)] });
  assert.equal(l.usage()[0].bytes, big * 2n + 3n + 2n * huge);
  assert.ok(l.usage()[0].bytes > 2n ** 63n);

  // A checkpoint near u64 max survives the round trip (stored as i64 bits).
  const E9 = { bootId: 'boot-9', counterId: '9' };
  const top = 2n ** 64n - 1n;
  const start = top - 1000n;
  const bigEpoch = { bootId: 'boot-9', counterId: '8' };
  l.recordInterval({ epoch: bigEpoch, at: at(50), readings: [rd(acme, 'egress', 0n, 0n)] });
  throwsCode(() => l.recordInterval({ epoch: E9, at: at(50), readings: [rd(acme, 'egress', 1n, start)] }), 'DELTA_TOO_LARGE', 'readings[0].bytes');
  // Reach the top in steps that each fit a signed delta.
  l.recordInterval({ epoch: E9, at: at(50), readings: [rd(acme, 'egress', 1n, 2n ** 63n - 1n)] });
  l.recordInterval({ epoch: E9, at: at(60), readings: [rd(acme, 'egress', 2n, start)] });
  assert.equal(l.checkpoint(E9)!.readings[0].bytes, start);
  const r = l.recordInterval({ epoch: E9, at: at(70), readings: [rd(acme, 'egress', 3n, top)] });
  assert.equal(r.bytes, 1000n);
  assert.equal(l.checkpoint(E9)!.readings[0].bytes, top);
  throwsCode(() => l.recordInterval({ epoch: E9, at: at(80), readings: [rd(acme, 'egress', 3n, top + 1n)] }), 'INVALID_INPUT', 'readings[0].bytes');
  const eg = l.usage({ tenant: 'acme' }).find((x) => x.direction === 'egress')!;
  assert.equal(eg.bytes, top);
  assert.equal(eg.packets, 3n);
});

test('usage filters by tenant and [since, until) on interval_end, including unattributed', (t) => {
  const l = openTmp(t);
  const ids = l.ensureTenants(['acme', 'globex', 'idle']);
  const acme = ids.get('acme')!;
  const globex = ids.get('globex')!;
  // Intervals ending at 10, 20, 30 s; acme grows 1 packet/100 B per interval per direction.
  for (const s of [10, 20, 30]) {
    const k = BigInt(s / 10);
    l.recordInterval({
      epoch: E1,
      at: at(s),
      readings: [rd(acme, 'ingress', k, k * 100n), rd(acme, 'egress', k * 2n, k * 200n), rd(globex, 'ingress', s === 20 ? 5n : s > 20 ? 5n : 0n, s >= 20 ? 500n : 0n), rd(0, 'egress', k, k)],
    });
  }
  const all = l.usage();
  assert.deepEqual(
    all.map((u) => [u.tenant, u.direction, u.packets, u.bytes]),
    [
      ['unattributed', 'egress', 3n, 3n],
      ['acme', 'ingress', 3n, 300n],
      ['acme', 'egress', 6n, 600n],
      ['globex', 'ingress', 5n, 500n],
    ],
  );
  assert.ok(!all.some((u) => u.tenant === 'idle'), 'tenants without usage are not listed');
  const acmeIn = all.find((u) => u.tenant === 'acme' && u.direction === 'ingress')!;
  assert.equal(acmeIn.first!.getTime(), at(10).getTime());
  assert.equal(acmeIn.last!.getTime(), at(30).getTime());

  // since is inclusive, until exclusive.
  const mid = l.usage({ since: at(20), until: at(30) });
  assert.deepEqual(
    mid.map((u) => [u.tenant, u.direction, u.packets]),
    [
      ['unattributed', 'egress', 1n],
      ['acme', 'ingress', 1n],
      ['acme', 'egress', 2n],
      ['globex', 'ingress', 5n],
    ],
  );
  assert.equal(mid[1].first!.getTime(), at(10).getTime(), 'first is the interval start of the earliest row');
  assert.deepEqual(
    l.usage({ tenant: 'acme', since: at(21) }).map((u) => [u.direction, u.packets, u.bytes]),
    [
      ['ingress', 1n, 100n],
      ['egress', 2n, 200n],
    ],
  );
  assert.deepEqual(l.usage({ tenant: 'idle' }), []);
  assert.deepEqual(l.usage({ until: at(10) }), []);
  assert.equal(l.usage({ host: 'someone-else' }).length, 0);
  assert.equal(l.usage({ host: HOST, by: 'tenant-class' }).length, 4);

  throwsCode(() => l.usage({ tenant: 'nobody' }), 'UNKNOWN_TENANT', 'tenant');
  throwsCode(() => l.usage({ since: at(30), until: at(10) }), 'INVALID_INPUT', 'until');
  throwsCode(() => l.usage({ since: new Date(NaN) }), 'INVALID_INPUT', 'since');
  throwsCode(() => l.usage({ by: 'direction' as 'tenant' }), 'INVALID_INPUT', 'by');

  const series = l.usageSeries({ tenant: 'acme', bucketMs: 20_000 });
  const inSeries = series.filter((p) => p.direction === 'ingress').map((p) => [p.bucketStart.getTime() - T0, p.packets]);
  // Buckets of 20 s: ends at 10 -> [0,20); 20 and 30 -> [20,40).
  assert.deepEqual(inSeries, [
    [0, 1n],
    [20_000, 2n],
  ]);
  throwsCode(() => l.usageSeries({ bucketMs: 0 }), 'INVALID_INPUT', 'bucketMs');
});

test('usage groups by tenant and class, by tenant (with billable sums) or by class, and filters by class', (t) => {
  const l = openTmp(t);
  const ids = l.ensureTenants(['acme', 'globex']);
  const acme = ids.get('acme')!;
  const globex = ids.get('globex')!;
  const cls = l.ensureClasses(['mgmt', 'backup']);
  const MGMT: Cls = { classId: cls.get('mgmt')!, billable: false };
  const BACKUP: Cls = { classId: cls.get('backup')!, billable: true };
  l.recordInterval({
    epoch: E1,
    at: at(10),
    readings: [
      rd(acme, 'egress', 10n, 1000n),
      rd(acme, 'egress', 2n, 200n, MGMT),
      rd(acme, 'ingress', 3n, 300n, MGMT),
      rd(acme, 'egress', 5n, 5000n, BACKUP),
      rd(globex, 'egress', 7n, 700n),
      rd(globex, 'egress', 1n, 100n, MGMT),
      rd(0, 'ingress', 1n, 60n),
    ],
  });
  // mgmt becomes billable for the second interval: its rows now carry billable.
  l.recordInterval({ epoch: E1, at: at(20), readings: [rd(acme, 'egress', 4n, 400n, { ...MGMT, billable: true })] });

  // Default: per tenant, class, billable flag and direction (tenant id, class id, billable first, ingress first).
  assert.deepEqual(
    l.usage().map((u) => [u.tenant, u.class, u.billable, u.direction, u.packets, u.bytes]),
    [
      ['unattributed', DEFAULT_CLASS, true, 'ingress', 1n, 60n],
      ['acme', DEFAULT_CLASS, true, 'egress', 10n, 1000n],
      ['acme', 'mgmt', true, 'egress', 2n, 200n],
      ['acme', 'mgmt', false, 'ingress', 3n, 300n],
      ['acme', 'mgmt', false, 'egress', 2n, 200n],
      ['acme', 'backup', true, 'egress', 5n, 5000n],
      ['globex', DEFAULT_CLASS, true, 'egress', 7n, 700n],
      ['globex', 'mgmt', false, 'egress', 1n, 100n],
    ],
  );
  assert.deepEqual(Object.keys(l.usage()[0]), ['tenant', 'class', 'billable', 'direction', 'packets', 'bytes', 'first', 'last']);

  // by tenant: summed over classes; billable* only over rows exported as billable.
  const byTenant = l.usage({ by: 'tenant' });
  assert.deepEqual(
    byTenant.map((u) => [u.tenant, u.direction, u.packets, u.bytes, u.billablePackets, u.billableBytes]),
    [
      ['unattributed', 'ingress', 1n, 60n, 1n, 60n],
      ['acme', 'ingress', 3n, 300n, 0n, 0n],
      ['acme', 'egress', 19n, 6400n, 17n, 6200n],
      ['globex', 'egress', 8n, 800n, 7n, 700n],
    ],
  );
  assert.deepEqual(Object.keys(byTenant[0]), ['tenant', 'direction', 'packets', 'bytes', 'billablePackets', 'billableBytes', 'first', 'last']);
  const acmeOut = byTenant.find((u) => u.tenant === 'acme' && u.direction === 'egress')!;
  assert.deepEqual([acmeOut.first!.getTime(), acmeOut.last!.getTime()], [at(10).getTime(), at(20).getTime()]);

  // by class: summed over tenants.
  assert.deepEqual(
    l.usage({ by: 'class' }).map((u) => [u.class, u.billable, u.direction, u.packets, u.bytes]),
    [
      [DEFAULT_CLASS, true, 'ingress', 1n, 60n],
      [DEFAULT_CLASS, true, 'egress', 17n, 1700n],
      ['mgmt', true, 'egress', 2n, 200n],
      ['mgmt', false, 'ingress', 3n, 300n],
      ['mgmt', false, 'egress', 3n, 300n],
      ['backup', true, 'egress', 5n, 5000n],
    ],
  );

  // The class filter combines with every grouping and the other filters.
  assert.deepEqual(
    l.usage({ class: 'mgmt', tenant: 'acme', by: 'tenant' }).map((u) => [u.direction, u.packets, u.billablePackets]),
    [
      ['ingress', 3n, 0n],
      ['egress', 4n, 2n],
    ],
  );
  assert.deepEqual(
    l.usage({ class: 'mgmt', since: at(11) }).map((u) => [u.tenant, u.billable, u.packets]),
    [['acme', true, 2n]],
  );
  assert.deepEqual(l.usage({ class: DEFAULT_CLASS, by: 'class' }).map((u) => u.packets), [1n, 17n]);
  assert.deepEqual(l.usage({ class: 'backup', tenant: 'globex' }), []);

  const series = l.usageSeries({ class: 'mgmt', tenant: 'acme', bucketMs: 10_000 });
  assert.deepEqual(
    series.map((p) => [p.bucketStart.getTime() - T0, p.class, p.billable, p.direction, p.packets]),
    [
      [10_000, 'mgmt', false, 'ingress', 3n],
      [10_000, 'mgmt', false, 'egress', 2n],
      [20_000, 'mgmt', true, 'egress', 2n],
    ],
  );

  throwsCode(() => l.usage({ class: 'video' }), 'UNKNOWN_CLASS', 'class');
  throwsCode(() => l.usage({ class: '' }), 'INVALID_INPUT', 'class');
  throwsCode(() => l.usageSeries({ class: 'video', bucketMs: 10_000 }), 'UNKNOWN_CLASS', 'class');
  throwsCode(() => l.usage({ by: 'tenant-direction' as 'tenant' }), 'INVALID_INPUT', 'by');
});

test('outbox sequence numbers are gap-free and monotonic per host across epochs', (t) => {
  const l = openTmp(t);
  const acme = l.ensureTenants(['acme']).get('acme')!;
  let n = 0n;
  for (let i = 1; i <= 20; i++) {
    n += BigInt(i);
    const epoch = { bootId: `boot-${Math.floor(i / 7)}`, counterId: '3' };
    const cp = l.checkpoint(epoch);
    const base = cp ? cp.readings[0]?.packets ?? 0n : 0n;
    l.recordInterval({ epoch, at: at(i * 10), readings: [rd(acme, 'ingress', base + BigInt(i), 1n + base + BigInt(i))] });
  }
  const rows = l.outbox(0, 1000);
  assert.deepEqual(
    rows.map((r) => r.seq),
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
  assert.deepEqual(
    l.outbox(15, 3).map((r) => r.seq),
    [16, 17, 18],
  );
  assert.equal(l.outbox(20).length, 0);
  assert.equal(new Set(rows.map((r) => r.epochId)).size, 3);
  throwsCode(() => l.outbox(-1), 'INVALID_INPUT', 'afterSeq');
});

test('traffic for a class id the ledger never issued is rejected; unused zero class slots are ignored', (t) => {
  const l = openTmp(t);
  const acme = l.ensureTenants(['acme']).get('acme')!;
  const ghost: Cls = { classId: 77, billable: false };
  const r = l.recordInterval({ epoch: E1, at: at(10), readings: [rd(acme, 'ingress', 1n, 1n), rd(acme, 'ingress', 0n, 0n, ghost), rd(0, 'egress', 0n, 0n, ghost)] });
  assert.equal(r.rows, 1);
  throwsCode(
    () => l.recordInterval({ epoch: E1, at: at(20), readings: [rd(acme, 'ingress', 2n, 2n), rd(0, 'egress', 1n, 64n, ghost)] }),
    'UNKNOWN_CLASS',
    'readings[1].classId',
  );
  assert.equal(rowCount(l), 1);
  assert.equal(l.checkpoint(E1)!.readings.length, 1, 'the rejected interval moved no checkpoint');
});

test('traffic for a tenant id the ledger never issued is rejected; unused zero slots are ignored', (t) => {
  const l = openTmp(t);
  const acme = l.ensureTenants(['acme']).get('acme')!;
  const r = l.recordInterval({ epoch: E1, at: at(10), readings: [rd(acme, 'ingress', 1n, 1n), rd(999, 'ingress', 0n, 0n), rd(999, 'egress', 0n, 0n)] });
  assert.equal(r.rows, 1);
  throwsCode(() => l.recordInterval({ epoch: E1, at: at(20), readings: [rd(acme, 'ingress', 2n, 2n), rd(999, 'egress', 1n, 64n)] }), 'UNKNOWN_TENANT', 'readings[1].tenantId');
  assert.equal(rowCount(l), 1);
});

test('recordInterval validates every field and names it', (t) => {
  const l = openTmp(t);
  const acme = l.ensureTenants(['acme']).get('acme')!;
  const mgmt = l.ensureClasses(['mgmt']).get('mgmt')!;
  const good = { epoch: E1, at: at(10), readings: [rd(acme, 'ingress', 1n, 1n)] };
  const cases: Array<[unknown, string]> = [
    [{ ...good, epoch: { ...E1, bootId: '' } }, 'epoch.bootId'],
    [{ ...good, epoch: { ...E1, counterId: 17 } }, 'epoch.counterId'],
    [{ ...good, epoch: null }, 'epoch'],
    [{ ...good, at: '2025-01-01' }, 'at'],
    [{ ...good, at: new Date('garbage') }, 'at'],
    [{ ...good, epoch: { ...E1, startedAt: at(11) } }, 'epoch.startedAt'],
    [{ ...good, readings: {} }, 'readings'],
    [{ ...good, readings: [null] }, 'readings[0]'],
    [{ ...good, readings: [{ ...good.readings[0], tenantId: -1 }] }, 'readings[0].tenantId'],
    [{ ...good, readings: [{ ...good.readings[0], tenantId: 1.5 }] }, 'readings[0].tenantId'],
    [{ ...good, readings: [{ ...good.readings[0], direction: 'in' }] }, 'readings[0].direction'],
    [{ ...good, readings: [{ ...good.readings[0], classId: -1 }] }, 'readings[0].classId'],
    [{ ...good, readings: [{ ...good.readings[0], classId: '0' }] }, 'readings[0].classId'],
    [{ ...good, readings: [{ ...good.readings[0], classId: undefined }] }, 'readings[0].classId'],
    [{ ...good, readings: [{ ...good.readings[0], billable: 'yes' }] }, 'readings[0].billable'],
    [{ ...good, readings: [{ ...good.readings[0], billable: undefined }] }, 'readings[0].billable'],
    [{ ...good, readings: [{ ...good.readings[0], packets: 1 }] }, 'readings[0].packets'],
    [{ ...good, readings: [{ ...good.readings[0], bytes: -1n }] }, 'readings[0].bytes'],
    [{ ...good, readings: [good.readings[0], rd(acme, 'egress', 0n, 0n), good.readings[0]] }, 'readings[2]'],
    // Another class of the same tenant/direction is a different counter, but
    // the same class twice is a duplicate even with a different billable flag.
    [{ ...good, readings: [good.readings[0], rd(acme, 'ingress', 1n, 1n, { classId: mgmt, billable: false }), rd(acme, 'ingress', 2n, 2n, { classId: mgmt, billable: true })] }, 'readings[2]'],
  ];
  for (const [input, field] of cases) {
    throwsCode(() => l.recordInterval(input as never), 'INVALID_INPUT', field);
  }
  assert.throws(
    () => l.recordInterval(cases[cases.length - 1][0] as never),
    new RegExp(`readings\\[2\\]: duplicate reading for tenant ${acme} class ${mgmt} ingress`),
  );
  assert.equal(rowCount(l), 0);
  assert.equal(l.checkpoint(E1), null);
  l.recordInterval(good);
  assert.equal(rowCount(l), 1);
});

function ct(slot: number, containerId: string, tenantId: number, direction: 'ingress' | 'egress', packets: bigint, bytes: bigint, runtime = 'containerd'): ContainerReading {
  return { slot, containerId, runtime, tenantId, direction, packets, bytes };
}

type ContainerRow = [number, string, string, number, string, number, number, bigint, bigint];

/** container_usage as stored: slot, container, runtime, tenant, direction, start and end in s from T0, packets, bytes. */
function containerRows(l: Ledger): ContainerRow[] {
  const rows = l.db
    .prepare('SELECT slot, container_id, runtime, tenant_id, direction, interval_start, interval_end, packets, bytes FROM container_usage ORDER BY interval_end, slot, direction')
    .safeIntegers(true)
    .all() as Array<Record<string, bigint | string>>;
  return rows.map((r) => [
    Number(r.slot), r.container_id as string, r.runtime as string, Number(r.tenant_id), r.direction as string,
    (Number(r.interval_start) - T0) / 1000, (Number(r.interval_end) - T0) / 1000, r.packets as bigint, r.bytes as bigint,
  ]);
}

test('container readings become per-slot deltas in container_usage, outside the outbox', (t) => {
  const l = openTmp(t);
  const ids = l.ensureTenants(['acme', 'globex']);
  const acme = ids.get('acme')!;
  const globex = ids.get('globex')!;
  const r1 = l.recordInterval({
    epoch: { ...E1, startedAt: at(0) },
    at: at(10),
    readings: [rd(acme, 'egress', 10n, 1000n)],
    // slot 3 is unused: a zero reading without a checkpoint writes nothing.
    containers: [ct(1, 'c-aaa', acme, 'egress', 7n, 700n), ct(2, 'c-bbb', globex, 'ingress', 1n, 60n, 'docker'), ct(3, 'c-idle', acme, 'egress', 0n, 0n)],
  });
  assert.deepEqual([r1.rows, r1.containerRows, r1.packets, r1.bytes], [1, 2, 10n, 1000n], 'container traffic is a breakdown, not extra billing');
  const r2 = l.recordInterval({
    epoch: E1,
    at: at(20),
    readings: [rd(acme, 'egress', 12n, 1200n)],
    containers: [ct(1, 'c-aaa', acme, 'egress', 9n, 900n), ct(2, 'c-bbb', globex, 'ingress', 1n, 60n, 'docker'), ct(1, 'c-aaa', acme, 'ingress', 1n, 40n)],
  });
  assert.equal(r2.containerRows, 2, 'slot 2 did not move');
  assert.deepEqual(containerRows(l), [
    [1, 'c-aaa', 'containerd', acme, 'egress', 0, 10, 7n, 700n],
    [2, 'c-bbb', 'docker', globex, 'ingress', 0, 10, 1n, 60n],
    [1, 'c-aaa', 'containerd', acme, 'egress', 10, 20, 2n, 200n],
    [1, 'c-aaa', 'containerd', acme, 'ingress', 10, 20, 1n, 40n],
  ]);
  assert.equal(l.outbox(0).length, 2, 'only the billing rows are shipped');
  assert.deepEqual(
    l.db.prepare('SELECT slot, direction, packets, bytes FROM container_checkpoints ORDER BY slot, direction').all(),
    [
      { slot: 1, direction: 'egress', packets: 9, bytes: 900 },
      { slot: 1, direction: 'ingress', packets: 1, bytes: 40 },
      { slot: 2, direction: 'ingress', packets: 1, bytes: 60 },
    ],
  );

  // A new epoch counts the slots from zero again.
  const r3 = l.recordInterval({ epoch: { bootId: 'boot-2', counterId: '3' }, at: at(30), readings: [], containers: [ct(1, 'c-aaa', acme, 'egress', 5n, 500n)] });
  assert.equal(r3.containerRows, 1);
  assert.deepEqual(containerRows(l).at(-1), [1, 'c-aaa', 'containerd', acme, 'egress', 30, 30, 5n, 500n]);
});

test('a slot handed to a new container continues from the slot checkpoint; rows carry the new container and tenant', (t) => {
  const l = openTmp(t);
  const ids = l.ensureTenants(['acme', 'globex']);
  const acme = ids.get('acme')!;
  const globex = ids.get('globex')!;
  l.recordInterval({ epoch: { ...E1, startedAt: at(0) }, at: at(10), readings: [], containers: [ct(5, 'c-old', acme, 'egress', 10n, 1000n)] });
  // The old container's last traffic was recorded; the agent reuses slot 5.
  l.recordInterval({ epoch: E1, at: at(20), readings: [], containers: [ct(5, 'c-new', globex, 'egress', 13n, 1300n, 'docker')] });
  assert.deepEqual(containerRows(l), [
    [5, 'c-old', 'containerd', acme, 'egress', 0, 10, 10n, 1000n],
    [5, 'c-new', 'docker', globex, 'egress', 10, 20, 3n, 300n],
  ]);
  assert.deepEqual(
    l.usage({ by: 'container' }).map((u) => [u.tenant, u.container, u.runtime, u.direction, u.packets, u.bytes]),
    [
      ['acme', 'c-old', 'containerd', 'egress', 10n, 1000n],
      ['globex', 'c-new', 'docker', 'egress', 3n, 300n],
    ],
  );
});

test('a container or billing reading that fails rejects the whole interval: no billing row, no container row', (t) => {
  const l = openTmp(t);
  const acme = l.ensureTenants(['acme']).get('acme')!;
  l.recordInterval({ epoch: E1, at: at(10), readings: [rd(acme, 'egress', 10n, 1000n)], containers: [ct(1, 'c-aaa', acme, 'egress', 10n, 1000n)] });
  const before = { rows: rowCount(l), containers: containerRows(l), seq: l.lastSequence(), cp: l.checkpoint(E1) };
  const grown = { readings: [rd(acme, 'egress', 20n, 2000n)], containers: [ct(1, 'c-aaa', acme, 'egress', 20n, 2000n)] };

  // A container counter that went down.
  throwsCode(
    () => l.recordInterval({ epoch: E1, at: at(20), ...grown, containers: [ct(1, 'c-aaa', acme, 'egress', 9n, 2000n)] }),
    'COUNTER_REGRESSION',
    'containers[0].packets',
  );
  assert.throws(
    () => l.recordInterval({ epoch: E1, at: at(20), ...grown, containers: [ct(1, 'c-aaa', acme, 'egress', 20n, 999n)] }),
    /containers\[0\]\.bytes: container slot 1 \(c-aaa\) egress bytes went from 1000 to 999 within epoch/,
  );
  // A billing counter that went down, while the container grew.
  throwsCode(() => l.recordInterval({ epoch: E1, at: at(20), ...grown, readings: [rd(acme, 'egress', 20n, 999n)] }), 'COUNTER_REGRESSION', 'readings[0].bytes');
  // Container traffic for a tenant the ledger never issued.
  throwsCode(() => l.recordInterval({ epoch: E1, at: at(20), ...grown, containers: [ct(2, 'c-bbb', 42, 'ingress', 1n, 1n)] }), 'UNKNOWN_TENANT', 'containers[0].tenantId');
  // The container rows are forced to fail inside the transaction, after the billing rows were inserted.
  l.db.exec(`CREATE TEMP TRIGGER fail_containers BEFORE INSERT ON container_usage BEGIN SELECT RAISE(ABORT, 'disk on fire'); END`);
  assert.throws(() => l.recordInterval({ epoch: E1, at: at(20), ...grown }), /disk on fire/);
  l.db.exec('DROP TRIGGER fail_containers');

  assert.equal(rowCount(l), before.rows);
  assert.deepEqual(containerRows(l), before.containers);
  assert.equal(l.lastSequence(), before.seq);
  assert.deepEqual(l.checkpoint(E1), before.cp);
  const ok = l.recordInterval({ epoch: E1, at: at(30), ...grown });
  assert.deepEqual([ok.rows, ok.containerRows], [1, 1], 'recording resumes with the full delta');
  assert.deepEqual(containerRows(l).at(-1), [1, 'c-aaa', 'containerd', acme, 'egress', 10, 30, 10n, 1000n]);
});

test('usage by container sums per tenant, container, runtime and direction with the tenant, time and host filters', (t) => {
  const l = openTmp(t);
  const ids = l.ensureTenants(['acme', 'globex']);
  const acme = ids.get('acme')!;
  const globex = ids.get('globex')!;
  const slots = (s: bigint) => [ct(1, 'c-aaa', acme, 'egress', s, 100n * s), ct(1, 'c-aaa', acme, 'ingress', s, 10n * s), ct(2, 'c-bbb', globex, 'egress', 2n * s, (2n ** 62n - 1n) * s)];
  l.recordInterval({ epoch: { ...E1, startedAt: at(0) }, at: at(10), readings: [], containers: slots(1n) });
  l.recordInterval({ epoch: E1, at: at(20), readings: [], containers: slots(3n) });
  const all = l.usage({ by: 'container' });
  assert.deepEqual(Object.keys(all[0]), ['tenant', 'container', 'runtime', 'direction', 'packets', 'bytes', 'first', 'last']);
  assert.deepEqual(
    all.map((u) => [u.tenant, u.container, u.runtime, u.direction, u.packets, u.bytes, u.first?.getTime(), u.last?.getTime()]),
    [
      ['acme', 'c-aaa', 'containerd', 'ingress', 3n, 30n, at(0).getTime(), at(20).getTime()],
      ['acme', 'c-aaa', 'containerd', 'egress', 3n, 300n, at(0).getTime(), at(20).getTime()],
      ['globex', 'c-bbb', 'containerd', 'egress', 6n, 3n * (2n ** 62n - 1n), at(0).getTime(), at(20).getTime()],
    ],
    'totals past 2^63 stay exact',
  );
  assert.deepEqual(l.usage({ by: 'container', tenant: 'globex' }).map((u) => u.container), ['c-bbb']);
  assert.deepEqual(l.usage({ by: 'container', since: at(11) }).map((u) => [u.direction, u.packets]), [['ingress', 2n], ['egress', 2n], ['egress', 4n]]);
  assert.deepEqual(l.usage({ by: 'container', until: at(10) }), []);
  assert.deepEqual(l.usage({ by: 'container', host: 'someone-else' }), []);
  throwsCode(() => l.usage({ by: 'container', class: DEFAULT_CLASS }), 'INVALID_INPUT', 'class');
  throwsCode(() => l.usage({ by: 'container', tenant: 'nobody' }), 'UNKNOWN_TENANT', 'tenant');
});

test('recordInterval validates container readings and names the field', (t) => {
  const l = openTmp(t);
  const acme = l.ensureTenants(['acme']).get('acme')!;
  const c = ct(1, 'c-aaa', acme, 'egress', 1n, 1n);
  const good = { epoch: E1, at: at(10), readings: [], containers: [c] };
  const cases: Array<[unknown, string]> = [
    [{ ...good, containers: {} }, 'containers'],
    [{ ...good, containers: [null] }, 'containers[0]'],
    [{ ...good, containers: [{ ...c, slot: 0 }] }, 'containers[0].slot'],
    [{ ...good, containers: [{ ...c, slot: 65536 }] }, 'containers[0].slot'],
    [{ ...good, containers: [{ ...c, slot: 1.5 }] }, 'containers[0].slot'],
    [{ ...good, containers: [{ ...c, slot: '1' }] }, 'containers[0].slot'],
    [{ ...good, containers: [{ ...c, containerId: '' }] }, 'containers[0].containerId'],
    [{ ...good, containers: [{ ...c, containerId: undefined }] }, 'containers[0].containerId'],
    [{ ...good, containers: [{ ...c, runtime: '' }] }, 'containers[0].runtime'],
    [{ ...good, containers: [{ ...c, runtime: 7 }] }, 'containers[0].runtime'],
    [{ ...good, containers: [{ ...c, tenantId: -1 }] }, 'containers[0].tenantId'],
    [{ ...good, containers: [{ ...c, direction: 'out' }] }, 'containers[0].direction'],
    [{ ...good, containers: [{ ...c, packets: 1 }] }, 'containers[0].packets'],
    [{ ...good, containers: [{ ...c, bytes: 2n ** 64n }] }, 'containers[0].bytes'],
    // The counter is the slot's: the same slot and direction twice is a duplicate even under another container id.
    [{ ...good, containers: [c, { ...c, direction: 'ingress' }, { ...c, containerId: 'c-zzz' }] }, 'containers[2]'],
  ];
  for (const [input, field] of cases) {
    throwsCode(() => l.recordInterval(input as never), 'INVALID_INPUT', field);
  }
  assert.throws(() => l.recordInterval(cases[cases.length - 1][0] as never), /containers\[2\]: duplicate reading for container slot 1 egress/);
  assert.deepEqual(containerRows(l), []);
  assert.equal(l.checkpoint(E1), null);
  assert.equal(l.recordInterval(good).containerRows, 1);
});

test('openReadOnly reads committed intervals while the writer is open and refuses writes', (t) => {
  const path = tmpDb(t);
  const w = openTmp(t, path);
  const acme = w.ensureTenants(['acme']).get('acme')!;
  w.recordInterval({ epoch: E1, at: at(10), readings: [rd(acme, 'ingress', 1n, 100n)] });

  const r = Ledger.openReadOnly(path, { hostId: HOST });
  t.after(() => r.close());
  assert.equal(r.readOnly, true);
  assert.deepEqual(r.usage().map((u) => u.bytes), [100n]);
  w.recordInterval({ epoch: E1, at: at(20), readings: [rd(acme, 'ingress', 2n, 250n)] });
  assert.deepEqual(r.usage().map((u) => u.bytes), [250n], 'the reader sees the new commit');
  assert.equal(r.lastExport()!.getTime(), at(20).getTime());
  throwsCode(() => r.ensureTenants(['x']), 'READ_ONLY');
  throwsCode(() => r.recordInterval({ epoch: E1, at: at(30), readings: [] }), 'READ_ONLY');
  throwsCode(() => Ledger.openReadOnly(path + '.missing'), 'OPEN_FAILED');

  r.close();
  throwsCode(() => r.usage(), 'CLOSED');
});

test('open refuses a ledger written by newer code and files that are not ledgers', (t) => {
  const path = tmpDb(t);
  Ledger.open(path, { hostId: HOST }).close();
  const raw = new Database(path);
  raw.pragma('user_version = 99');
  raw.close();
  throwsCode(() => Ledger.open(path, { hostId: HOST }), 'SCHEMA_TOO_NEW');
  throwsCode(() => Ledger.openReadOnly(path, { hostId: HOST }), 'SCHEMA_TOO_NEW');
  try {
    Ledger.open(path, { hostId: HOST });
  } catch (err) {
    assert.match((err as Error).message, new RegExp(`schema version 99 .* only knows up to version ${latestVersion()}`));
  }

  const other = tmpDb(t);
  const o = new Database(other);
  o.exec('CREATE TABLE notes (x TEXT)');
  o.close();
  throwsCode(() => Ledger.open(other, { hostId: HOST }), 'NOT_A_LEDGER');

  const text = tmpDb(t);
  writeFileSync(text, 'this is not sqlite at all, just some text that is long enough to look like a header....');
  throwsCode(() => Ledger.open(text, { hostId: HOST }), 'OPEN_FAILED');
});

test('open validates its options', (t) => {
  const path = tmpDb(t);
  throwsCode(() => Ledger.open(path, { hostId: '' }), 'INVALID_INPUT', 'opts.hostId');
  throwsCode(() => Ledger.open(path, { hostId: HOST, busyTimeoutMs: -1 }), 'INVALID_INPUT', 'opts.busyTimeoutMs');
  throwsCode(() => Ledger.open('', { hostId: HOST }), 'INVALID_INPUT', 'path');
  const l = Ledger.open(path);
  t.after(() => l.close());
  assert.ok(l.hostId.length > 0, 'default host id from /etc/machine-id or the hostname');
});
