import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FlowTracker, type FlowInterval } from './delta.js';
import { decodeFlowKey, KEY_SIZE } from './snapshot.js';
import { snapshot, type FlowSpec } from './flows.fixture.js';

const S = 1_000_000_000n;
const MS = 1_000_000n;

/** What moved, by source port: [packets, bytes]. */
function moved(iv: FlowInterval): Record<number, [number, number]> {
  const out: Record<number, [number, number]> = {};
  for (let i = 0; i < iv.count; i++) out[decodeFlowKey(iv.snapshot.keys, iv.entry[i]! * KEY_SIZE).sport] = [iv.packets[i]!, iv.bytes[i]!];
  return out;
}

const f = (sport: number, packets: number, first: bigint, last: bigint, extra: Partial<FlowSpec> = {}): FlowSpec =>
  ({ sport, packets: BigInt(packets), bytes: BigInt(packets * 100), first, last, ...extra });

test('the first read of a map is a baseline: nothing counted, every flow unknown', () => {
  const iv = new FlowTracker('boot').next(snapshot([f(1, 10, 1n * S, 9n * S), f(2, 5, 2n * S, 3n * S)], { startNs: 10n * S, endNs: 10n * S + 100n * MS }));
  assert.equal(iv.count, 0);
  assert.equal(iv.unknown, 2);
  assert.equal(iv.since, null);
});

test('deltas against the previous read: moved, idle, new, re-created, created during the read', () => {
  const t = new FlowTracker('boot');
  const s1 = snapshot([
    f(1, 10, 1n * S, 9n * S), // moves
    f(2, 5, 2n * S, 3n * S), // idle
    f(4, 7, 4n * S, 9n * S), // evicted and created again
    f(6, 1, 10n * S + 20n * MS, 10n * S + 20n * MS), // created during the previous read, and in it
    f(7, 2, 5n * S, 10n * S - MS / 2n), // last packet just before the read began, unchanged since
    f(8, 2, 5n * S, 10n * S - MS / 2n), // same time, but moved: its add landed after the read
    f(9, 3, 5n * S, 6n * S), // gone by the next read
  ], { startNs: 10n * S, endNs: 10n * S + 100n * MS });
  t.next(s1);
  const s2 = snapshot([
    f(1, 13, 1n * S, 19n * S),
    f(2, 5, 2n * S, 3n * S),
    f(3, 2, 15n * S, 16n * S), // new since
    f(4, 4, 12n * S, 18n * S),
    f(5, 6, 10n * S + 50n * MS, 19n * S), // created during the previous read, missed by it
    f(6, 3, 10n * S + 20n * MS, 19n * S),
    f(7, 2, 5n * S, 10n * S - MS / 2n),
    f(8, 3, 5n * S, 10n * S - MS / 2n),
  ], { startNs: 20n * S, endNs: 20n * S + 100n * MS });
  const iv = t.next(s2);
  assert.deepEqual(moved(iv), { 1: [3, 300], 3: [2, 200], 4: [4, 400], 5: [6, 600], 6: [2, 200], 8: [1, 100] });
  assert.equal(iv.totalPackets, 18);
  assert.equal(iv.totalBytes, 1800);
  assert.equal(iv.unknown, 0);
  assert.deepEqual(iv.since, s1.at);
});

test('a different flow map (recreated) starts a new baseline', () => {
  const t = new FlowTracker('boot');
  t.next(snapshot([f(1, 1, 1n * S, 1n * S)], { mapId: 7, startNs: 2n * S, endNs: 3n * S }));
  const iv = t.next(snapshot([f(1, 1, 4n * S, 4n * S)], { mapId: 8, startNs: 5n * S, endNs: 6n * S }));
  assert.equal(iv.count, 0);
  assert.equal(iv.unknown, 1);
});

test('after an agent restart: new flows and idle flows are known, moved old flows are not', () => {
  const resume = { bootId: 'boot', mapId: 7, startNs: 20n * S, endNs: 21n * S, at: new Date(5000) };
  const flows = [f(1, 13, 1n * S, 29n * S), f(2, 5, 2n * S, 3n * S), f(3, 2, 25n * S, 26n * S)];
  const iv = new FlowTracker('boot', resume).next(snapshot(flows, { startNs: 30n * S, endNs: 31n * S }));
  assert.deepEqual(moved(iv), { 3: [2, 200] });
  assert.equal(iv.unknown, 1);
  assert.deepEqual(iv.since, new Date(5000));

  const otherBoot = new FlowTracker('boot-2', resume).next(snapshot(flows, { startNs: 30n * S, endNs: 31n * S }));
  assert.equal(otherBoot.count, 0, 'times of another boot mean nothing');
  assert.equal(otherBoot.unknown, 3);
});

test('exact deltas of counters beyond 2^53 and across the 32-bit word boundary; never negative', () => {
  const t = new FlowTracker('boot');
  t.next(snapshot([
    { sport: 1, packets: 1n << 60n, bytes: 0xffff_ffffn, first: S, last: S },
    { sport: 2, packets: 50n, bytes: 5000n, first: S, last: S },
  ], { startNs: 2n * S, endNs: 3n * S }));
  const iv = t.next(snapshot([
    { sport: 1, packets: (1n << 60n) + 5n, bytes: 0x1_0000_0002n, first: S, last: 4n * S },
    { sport: 2, packets: 40n, bytes: 5000n, first: S, last: 4n * S }, // a torn read would look like this
  ], { startNs: 5n * S, endNs: 6n * S }));
  assert.deepEqual(moved(iv), { 1: [5, 3] });
});

test('a key twice in one read (impossible for a hash map, but cheap to survive)', () => {
  const t = new FlowTracker('boot');
  t.next(snapshot([f(1, 1, S, S), f(1, 2, S, S)], { startNs: 2n * S, endNs: 3n * S }));
  const iv = t.next(snapshot([f(1, 4, S, 4n * S)], { startNs: 5n * S, endNs: 6n * S }));
  assert.deepEqual(moved(iv), { 1: [3, 300] }, 'against the first of the two');
});

test('the same deltas as a plain key lookup, whatever the order, evictions and new flows', () => {
  // A flow: [sport, first (s), packets at read 1, packets at read 2]; read 2 may drop, add, re-create and reorder.
  const spec = fc.record({
    flows: fc.uniqueArray(fc.record({ sport: fc.integer({ min: 1, max: 5000 }), p1: fc.integer({ min: 1, max: 9 }), grow: fc.integer({ min: 0, max: 3 }),
      fate: fc.constantFrom('stay', 'stay', 'stay', 'evicted', 'recreated') }), { selector: (x) => x.sport, maxLength: 200 }),
    added: fc.uniqueArray(fc.integer({ min: 5001, max: 9000 }), { maxLength: 30 }),
    shuffle: fc.boolean(),
    seed: fc.integer(),
  });
  fc.assert(fc.property(spec, ({ flows, added, shuffle, seed }) => {
    const t = new FlowTracker('boot');
    t.next(snapshot(flows.map((x) => f(x.sport, x.p1, S, 5n * S)), { startNs: 10n * S, endNs: 11n * S }));
    let second: FlowSpec[] = flows.filter((x) => x.fate !== 'evicted').map((x) =>
      x.fate === 'recreated' ? f(x.sport, x.grow + 1, 15n * S, 16n * S) : f(x.sport, x.p1 + x.grow, S, x.grow ? 16n * S : 5n * S));
    second = [...second, ...added.map((sport) => f(sport, 2, 14n * S, 15n * S))];
    if (shuffle) second.sort((a, b) => ((a.sport! * 7919 + seed) % 101) - ((b.sport! * 7919 + seed) % 101));
    const want: Record<number, [number, number]> = {};
    for (const x of flows) {
      if (x.fate === 'stay' && x.grow) want[x.sport] = [x.grow, x.grow * 100];
      if (x.fate === 'recreated') want[x.sport] = [x.grow + 1, (x.grow + 1) * 100];
    }
    for (const sport of added) want[sport] = [2, 200];
    assert.deepEqual(moved(t.next(snapshot(second, { startNs: 20n * S, endNs: 21n * S }))), want);
  }));
});
