import test, { type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlowExporter, type FlowSource } from './exporter.js';
import { FlowStore } from './store.js';
import { snapshot, type FlowSpec } from './flows.fixture.js';
import type { FlowCounters } from './counters.js';
import type { FlowBuffers, FlowSnapshot } from './snapshot.js';

const S = 1_000_000_000n;
const counters: FlowCounters = { updated: 0n, inserted: 3n, insertFailed: 0n, lookupFailed: 0n, noAddr: 0n, fragNoPorts: 0n };

/**
 * A flow map whose reads behave like the kernel's batch read: a lent buffer
 * is overwritten (and its stale tail dirtied), so lending the buffers the
 * tracker still diffs against would corrupt the next interval.
 */
class LendingSource implements FlowSource {
  readonly maxFlows = 64;
  reads = 0;
  lent: Array<FlowBuffers | undefined> = [];
  constructor(private readonly flows: (k: number) => FlowSpec[]) {}
  readFlowCounters(): FlowCounters {
    return counters;
  }
  readFlows(into?: FlowBuffers): FlowSnapshot {
    const k = ++this.reads;
    this.lent.push(into);
    const s = snapshot(this.flows(k), { startNs: BigInt(k * 10) * S, endNs: BigInt(k * 10) * S + 1000n });
    if (!into) return { ...s, storage: { keys: Buffer.from(s.keys), values: Buffer.from(s.values) } };
    into.keys.fill(0xee);
    into.values.fill(0xee);
    s.keys.copy(into.keys);
    s.values.copy(into.values);
    return { ...s, keys: into.keys.subarray(0, s.keys.length), values: into.values.subarray(0, s.values.length), storage: into };
  }
}

/** The same source, offering buffers made in advance for the first two reads. */
class PreparingSource extends LendingSource {
  made: FlowBuffers[] = [];
  newFlowBuffers(): FlowBuffers {
    const b = { keys: Buffer.alloc(64 * 44), values: Buffer.alloc(64 * 40) };
    this.made.push(b);
    return b;
  }
}

/** A flow store in a directory of its own, removed after the test. */
function tempStore(t: TestContext): FlowStore {
  const dir = mkdtempSync(join(tmpdir(), 'tg-flowexp-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = FlowStore.open(join(dir, 'flows.db'));
  t.after(() => store.close());
  return store;
}

/** Read k: flow 1 has 10k packets, flow 2 has 5k, both moving every interval. */
const moving = (k: number): FlowSpec[] => [
  { sport: 1, packets: BigInt(10 * k), bytes: BigInt(1000 * k), first: S, last: BigInt(k * 10 - 1) * S },
  { sport: 2, packets: BigInt(5 * k), bytes: BigInt(500 * k), first: S, last: BigInt(k * 10 - 1) * S },
];

test('buffers made in advance serve the first two reads, then the reads alternate', async (t) => {
  const store = tempStore(t);
  const source = new PreparingSource(moving);
  const exporter = new FlowExporter(source, store, 60_000, {}, 'boot');
  assert.equal(source.made.length, 2, 'made when the exporter is created');
  const results = [];
  for (let i = 0; i < 5; i++) results.push(await exporter.exportNow());
  assert.deepEqual(results.map((r) => [r.flows, r.packets]), [[0, 0], ...Array(4).fill([2, 15])]);
  assert.deepEqual(source.lent, [source.made[0], source.made[1], source.made[0], source.made[1], source.made[0]]);
});

test('the exporter lends each read the buffers of the read before last, and deltas stay exact', async (t) => {
  const store = tempStore(t);
  const source = new LendingSource(moving);
  const exporter = new FlowExporter(source, store, 60_000, {}, 'boot');
  const results = [];
  for (let i = 0; i < 6; i++) results.push(await exporter.exportNow());
  assert.deepEqual(results.map((r) => [r.flows, r.packets, r.bytes]), [[0, 0, 0], ...Array(5).fill([2, 15, 1500])]);
  // Reads 1 and 2 get new buffers; from read 3 on, each gets those of read k - 2.
  assert.equal(source.lent[0], undefined);
  assert.equal(source.lent[1], undefined);
  for (let k = 3; k <= 6; k++) assert.ok(source.lent[k - 1], `read ${k} reads into lent buffers`);
  assert.notEqual(source.lent[2], source.lent[3], 'two buffers alternate');
  assert.equal(source.lent[2], source.lent[4]);
  assert.equal(source.lent[3], source.lent[5]);
  const top = store.top({ by: 'packets', limit: 10 });
  assert.deepEqual(top.flows.map((f) => [f.sport, f.packets]), [[1, 50], [2, 25]]);
});
