// Crash safety: a writer killed with SIGKILL at random moments, over and over,
// must leave books that neither lost nor double counted anything.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CLASSES, COUNTER_ID, EPOCH_LEN, HOST, SLOTS, TENANTS, epochOf, intervalAt, intervalIndex, reading } from './crash-writer.fixture.js';
import { Ledger, type Direction } from './ledger.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const fixture = join(here, 'crash-writer.fixture.ts');
const RUNS = 24;
/** Extra runs allowed if the random kills were too quick to cross two epochs. */
const MAX_EXTRA_RUNS = 20;
const DIRS: Direction[] = ['ingress', 'egress'];

interface Run {
  start: number;
  lastPrinted: number;
  killedEarly: boolean;
}

/** Spawns the writer and SIGKILLs it; early runs die during startup/migration. */
function crashRun(db: string, killedEarly: boolean, live: Set<ChildProcess>): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, db, '20'], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let out = '';
    let err = '';
    let killTimer: NodeJS.Timeout | undefined;
    let killed = false;
    const kill = () => {
      killed = true;
      child.kill('SIGKILL');
    };
    // Bounded: no run may take longer than this, whatever happens.
    const guard = setTimeout(kill, 15_000);
    if (killedEarly) killTimer = setTimeout(kill, Math.floor(Math.random() * 900));
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      // After the first commit, let it run for a random 0-150 ms (0-40 commits).
      if (!killedEarly && killTimer === undefined && /^\d+$/m.test(out)) killTimer = setTimeout(kill, Math.floor(Math.random() * 150));
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('close', (code, signal) => { // 'close': every line it printed read
      live.delete(child);
      clearTimeout(guard);
      clearTimeout(killTimer);
      if (!killed || signal !== 'SIGKILL') return fail(new Error(`writer ended on its own (code ${code}, signal ${signal}) before the kill:\n${err}`));
      const start = /^start (\d+)$/m.exec(out);
      const printed = [...out.matchAll(/^(\d+)$/gm)].map((m) => Number(m[1]));
      // Consecutive, in order: the writer never skipped or repeated an index.
      if (printed.some((v, idx) => v !== Number(start?.[1]) + idx)) return fail(new Error(`writer output out of order:\n${out}`));
      done({ start: start ? Number(start[1]) : -1, lastPrinted: printed.length ? printed[printed.length - 1] : -1, killedEarly });
    });
  });
}

/**
 * Right after a kill, before any writer has recovered the WAL, a read-only
 * connection sees a state where, per tenant/class/direction, the rows sum to the sum
 * of all epochs' checkpoints (each epoch started from zero). Read in one
 * snapshot. Returns false when the writer died before creating the schema.
 */
function readerInvariant(db: string): boolean {
  let ledger: Ledger;
  try {
    ledger = Ledger.openReadOnly(db, { hostId: HOST });
  } catch (err) {
    if (/no ledger|SCHEMA_TOO_OLD|schema version 0/.test(String(err))) return false;
    throw err;
  }
  try {
    const snapshot = ledger.db.transaction(() => ({
      rows: ledger.db.prepare('SELECT tenant_id, class_id, direction, packets, bytes FROM usage').safeIntegers(true).all(),
      cps: ledger.db.prepare('SELECT tenant_id, class_id, direction, packets, bytes FROM checkpoints').safeIntegers(true).all(),
    }))() as Record<'rows' | 'cps', Array<{ tenant_id: bigint; class_id: bigint; direction: string; packets: bigint; bytes: bigint }>>;
    const sum = (list: typeof snapshot.rows, u64: boolean) => {
      const m = new Map<string, string>();
      const acc = new Map<string, [bigint, bigint]>();
      for (const r of list) {
        const k = `${r.tenant_id}/${r.class_id}/${r.direction}`;
        const [p, b] = acc.get(k) ?? [0n, 0n];
        acc.set(k, [p + (u64 ? BigInt.asUintN(64, r.packets) : r.packets), b + (u64 ? BigInt.asUintN(64, r.bytes) : r.bytes)]);
      }
      for (const [k, [p, b]] of [...acc].sort()) if (p !== 0n || b !== 0n) m.set(k, `${p}/${b}`);
      return m;
    };
    assert.deepEqual(sum(snapshot.rows, false), sum(snapshot.cps, true), 'rows and checkpoints agree in the crashed state');
    assert.deepEqual(ledger.integrityCheck(), ['ok']);
    return true;
  } finally {
    ledger.close();
  }
}

test('SIGKILL at random moments loses and double counts nothing', { timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-ledger-crash-'));
  const live = new Set<ChildProcess>();
  t.after(() => {
    for (const c of live) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const db = join(dir, 'ledger.db');

  // Highest index known committed (printed after its commit), and the
  // exclusive upper bound of what may have committed unseen.
  let durable = -1;
  let kills = 0;
  let checkedAfterKill = 0;
  for (let r = 0; r < RUNS || (durable < 2 * EPOCH_LEN && r < RUNS + MAX_EXTRA_RUNS); r++) {
    const run = await crashRun(db, r % 4 === 1, live);
    kills++;
    if (readerInvariant(db)) checkedAfterKill++;
    if (run.start >= 0) {
      // Resume point = one past the last committed interval. Every printed
      // interval survived the kill; at most one more (committed, not yet
      // printed) may have.
      assert.ok(run.start === durable + 1 || run.start === durable + 2, `run ${r} resumed at ${run.start}, last durable ${durable}`);
    }
    durable = Math.max(durable, run.start - 1, run.lastPrinted);
  }
  assert.ok(kills >= RUNS);
  assert.ok(checkedAfterKill >= RUNS / 2, `reader checked only ${checkedAfterKill} crashed states`);
  assert.ok(durable >= 2 * EPOCH_LEN, `runs committed too little to cross two epochs (${durable + 1} intervals)`);

  const ledger = Ledger.open(db, { hostId: HOST });
  t.after(() => ledger.close());
  assert.deepEqual(ledger.integrityCheck(), ['ok']);
  assert.deepEqual(ledger.db.pragma('foreign_key_check'), []);
  const last = intervalIndex(ledger.lastExport()!);
  assert.ok(last === durable || last === durable + 1, `last committed ${last}, last seen durable ${durable}`);

  const lastEpoch = Math.floor(last / EPOCH_LEN);
  const lastK = last % EPOCH_LEN;
  const ids = ledger.ensureTenants(TENANTS);
  const classIds = ledger.ensureClasses(CLASSES.map((c) => c.name));
  const nameOf = (s: number) => (s === 0 ? 'unattributed' : TENANTS[s - 1]);
  const idOf = (s: number) => (s === 0 ? 0 : ids.get(TENANTS[s - 1])!);
  const classIdOf = (c: number) => classIds.get(CLASSES[c].name)!;
  /** Sum over epochs of the last committed reading: what the books must say. */
  const expected = (s: number, c: number, d: Direction) => {
    let packets = 0n;
    let bytes = 0n;
    for (let e = 0; e <= lastEpoch; e++) {
      const want = reading(e === lastEpoch ? lastK : EPOCH_LEN - 1, s, c, d);
      packets += want.packets;
      bytes += want.bytes;
    }
    return { packets, bytes };
  };

  // 1. Every epoch's checkpoint equals the reading of its last committed interval.
  for (let e = 0; e <= lastEpoch; e++) {
    const k = e === lastEpoch ? lastK : EPOCH_LEN - 1;
    const cp = ledger.checkpoint({ bootId: `boot-${e}`, counterId: COUNTER_ID })!;
    assert.ok(cp, `epoch ${e} exists`);
    assert.equal(cp.at.getTime(), intervalAt(e * EPOCH_LEN + k).getTime(), `epoch ${e} checkpoint time`);
    for (let s = 0; s < SLOTS; s++) {
      for (let c = 0; c < CLASSES.length; c++) {
        for (const d of DIRS) {
          const want = reading(k, s, c, d);
          const got = cp.readings.find((x) => x.tenantId === idOf(s) && x.classId === classIdOf(c) && x.direction === d) ?? { packets: 0n, bytes: 0n };
          assert.deepEqual([got.packets, got.bytes], [want.packets, want.bytes], `epoch ${e} checkpoint slot ${s} class ${c} ${d}`);
        }
      }
    }
  }

  // 2. Sum of rows == sum over epochs of the last committed reading, both via
  //    usage() and via a raw sum of the rows in JS; every row carries its
  //    class's billable flag, and per-tenant billable totals count only it.
  const raw = ledger.db
    .prepare('SELECT tenant_id, class_id, direction, billable, packets, bytes FROM usage')
    .safeIntegers(true)
    .all() as Array<{ tenant_id: bigint; class_id: bigint; direction: Direction; billable: bigint; packets: bigint; bytes: bigint }>;
  const rawSum = new Map<string, { packets: bigint; bytes: bigint }>();
  for (const r of raw) {
    const key = `${r.tenant_id}/${r.class_id}/${r.direction}`;
    const acc = rawSum.get(key) ?? { packets: 0n, bytes: 0n };
    rawSum.set(key, { packets: acc.packets + r.packets, bytes: acc.bytes + r.bytes });
    const c = CLASSES.findIndex((_, i) => BigInt(classIdOf(i)) === r.class_id);
    assert.equal(r.billable === 1n, CLASSES[c].billable, `billable flag of a class ${c} row`);
  }
  const usage = ledger.usage();
  const byTenant = ledger.usage({ by: 'tenant' });
  for (let s = 0; s < SLOTS; s++) {
    for (const d of DIRS) {
      for (let c = 0; c < CLASSES.length; c++) {
        const want = expected(s, c, d);
        const u = usage.find((x) => x.tenant === nameOf(s) && x.class === CLASSES[c].name && x.direction === d) ?? { packets: 0n, bytes: 0n, billable: CLASSES[c].billable };
        assert.deepEqual([u.packets, u.bytes, u.billable], [want.packets, want.bytes, CLASSES[c].billable], `usage() slot ${s} class ${c} ${d}`);
        const r = rawSum.get(`${idOf(s)}/${classIdOf(c)}/${d}`) ?? { packets: 0n, bytes: 0n };
        assert.deepEqual([r.packets, r.bytes], [want.packets, want.bytes], `raw rows slot ${s} class ${c} ${d}`);
      }
      const billed = expected(s, 0, d);
      const free = expected(s, 1, d);
      const t = byTenant.find((x) => x.tenant === nameOf(s) && x.direction === d)!;
      assert.deepEqual(
        [t.packets, t.bytes, t.billablePackets, t.billableBytes],
        [billed.packets + free.packets, billed.bytes + free.bytes, billed.packets, billed.bytes],
        `usage({ by: 'tenant' }) slot ${s} ${d}`,
      );
    }
  }
  assert.ok(usage.find((u) => u.tenant === nameOf(2) && u.class === 'internet')!.bytes > 2n ** 64n, 'the big slot summed past 2^64 exactly');

  // 3. No duplicate idempotency keys; outbox sequence gap-free from 1.
  assert.deepEqual(
    ledger.db.prepare('SELECT host, epoch_id, tenant_id, class_id, direction, interval_end FROM usage GROUP BY 1, 2, 3, 4, 5, 6 HAVING count(*) > 1').all(),
    [],
  );
  const seq = ledger.db.prepare('SELECT count(*) AS n, min(seq) AS lo, max(seq) AS hi FROM usage WHERE host = ?').get(HOST) as { n: number; lo: number; hi: number };
  assert.deepEqual(seq, { n: raw.length, lo: 1, hi: raw.length });
  assert.equal(ledger.lastSequence(), raw.length);

  // 4. For a slot that moves every interval, rows tile each epoch exactly:
  //    one row per committed interval, each starting where the previous ended.
  const steady = ledger.db
    .prepare('SELECT epoch_id, interval_start, interval_end FROM usage WHERE tenant_id = ? AND class_id = ? AND direction = ? ORDER BY epoch_id, interval_end')
    .all(idOf(1), classIdOf(0), 'ingress') as Array<{ epoch_id: number; interval_start: number; interval_end: number }>;
  assert.equal(steady.length, last + 1);
  steady.forEach((row, i) => {
    const want = i % EPOCH_LEN === 0 ? epochOf(i).startedAt.getTime() : intervalAt(i - 1).getTime();
    assert.equal(row.interval_start, want, `interval ${i} start`);
    assert.equal(row.interval_end, intervalAt(i).getTime(), `interval ${i} end`);
  });
});
