import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FlowTracker, type FlowInterval } from './delta.js';
import { encodeRecords, RECORD_SIZE } from './records.js';
import { largest, topFlows } from './top.js';
import { snapshot, type FlowSpec } from './flows.fixture.js';

const S = 1_000_000_000n;

/** Two intervals after a baseline: each spec list gives cumulative values at a read. */
function intervals(...reads: FlowSpec[][]): FlowInterval[] {
  const t = new FlowTracker('boot');
  return reads.map((flows, i) => t.next(snapshot(flows, { startNs: BigInt(10 * (i + 1)) * S, endNs: BigInt(10 * (i + 1)) * S + 1000n })));
}

const flow = (sport: number, packets: number, bytes: number, last: bigint, extra: Partial<FlowSpec> = {}): FlowSpec =>
  ({ sport, packets: BigInt(packets), bytes: BigInt(bytes), first: S, last, ...extra });

const [, iv1, iv2] = intervals(
  [flow(1, 0, 0, S), flow(2, 0, 0, S), flow(3, 0, 0, S, { tenant: 2 })],
  [flow(1, 10, 1000, 15n * S), flow(2, 100, 500, 15n * S), flow(3, 1, 9000, 15n * S, { tenant: 2 })],
  [flow(1, 20, 3000, 25n * S, { cls: 3 }), flow(2, 100, 500, 15n * S), flow(3, 2, 9100, 25n * S, { tenant: 2 }),
    flow(4, 7, 700, 24n * S, { first: 22n * S, src: '2001:2:0:1::5', dst: '2001:2::1', proto: 17, dir: 0 })],
);
const chunks = [...encodeRecords(iv1!, 2), ...encodeRecords(iv2!, 2)];

test('records: one per moved flow, chunked', () => {
  assert.deepEqual(chunks.map((c) => c.length / RECORD_SIZE), [2, 1, 2, 1]);
  assert.throws(() => encodeRecords(iv1!, 0), /chunkRecords must be a positive integer, got 0/);
});

test('top by bytes sums every interval of the window per flow', () => {
  const r = topFlows(chunks, { by: 'bytes', limit: 10 });
  assert.deepEqual(r.flows.map((f) => [f.sport, f.packets, f.bytes]), [[3, 2, 9100], [1, 20, 3000], [4, 7, 700], [2, 100, 500]]);
  assert.equal(r.distinct, 4);
  assert.equal(r.packets, 129);
  assert.equal(r.bytes, 13300);
});

test('top by packets, limit, tenant filter', () => {
  assert.deepEqual(topFlows(chunks, { by: 'packets', limit: 2 }).flows.map((f) => f.sport), [2, 1]);
  const t2 = topFlows(chunks, { by: 'bytes', limit: 10, tenantId: 2 });
  assert.deepEqual(t2.flows.map((f) => f.sport), [3]);
  assert.equal(t2.distinct, 1);
  assert.equal(t2.bytes, 9100);
  assert.equal(topFlows(chunks, { by: 'bytes', limit: 10, tenantId: 9 }).flows.length, 0);
});

test('a flow as people read it: addresses, ports, direction, class of the latest packet, wall-clock times', () => {
  const flows = topFlows(chunks, { by: 'bytes', limit: 10 }).flows;
  const f1 = flows.find((f) => f.sport === 1)!;
  assert.deepEqual({ ...f1 }, {
    tenantId: 1, direction: 'egress', ipVersion: 4, protocol: 6, src: '198.18.1.1', sport: 1, dst: '198.19.0.1', dport: 443,
    classId: 3, packets: 20, bytes: 3000,
    // The fixture's wall clock is 1.7e12 ms at monotonic 0.
    firstMs: 1_700_000_001_000, lastMs: 1_700_000_025_000,
  });
  const f4 = flows.find((f) => f.sport === 4)!;
  assert.deepEqual([f4.ipVersion, f4.src, f4.dst, f4.protocol, f4.direction], [6, '2001:2:0:1::5', '2001:2::1', 17, 'ingress']);
});

test('chunks that are not whole records are refused; misaligned ones are read', () => {
  assert.throws(() => topFlows([Buffer.alloc(81)], { by: 'bytes', limit: 1 }), /not a whole number of 80-byte records/);
  const shifted = Buffer.alloc(chunks[0]!.length + 4);
  chunks[0]!.copy(shifted, 4);
  assert.equal(topFlows([shifted.subarray(4)], { by: 'bytes', limit: 5 }).flows.length, 2);
  assert.throws(() => topFlows(chunks, { by: 'bytes', limit: 0 }), /limit must be a positive integer, got 0/);
});

test('largest(k) is the first k of a full sort', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 200 }), fc.integer({ min: 1, max: 30 }), (xs, k) => {
      const cmp = (a: number, b: number) => xs[a]! - xs[b]! || b - a;
      const want = xs.map((_, i) => i).sort((a, b) => cmp(b, a)).slice(0, k);
      assert.deepEqual(largest(xs.length, k, cmp), want);
    }),
  );
});
