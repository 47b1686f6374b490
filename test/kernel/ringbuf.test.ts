// RingBufReader against a real BPF ring buffer: records produced by a
// program (driven by BPF_PROG_TEST_RUN) all arrive, the main event loop keeps
// ticking while the worker blocks, and drops are reported as 'lost'.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test, type TestContext } from 'node:test';
import { BpfObject, RingBufReader } from '../../src/kernel/index.js';
import { fixture, kernelReady } from './helpers.js';

interface Collected {
  records: Buffer[];
  lost: bigint;
}

function open(t: TestContext, ringBytes?: number) {
  const obj = BpfObject.open(fixture('kernel_ringbuf'));
  t.after(() => obj.close());
  if (ringBytes) obj.setMaxEntries('kt_events', ringBytes);
  obj.load();
  return obj;
}

function collect(reader: RingBufReader): Collected {
  const c: Collected = { records: [], lost: 0n };
  reader.on('records', (batch) => c.records.push(...batch));
  reader.on('lost', (n) => (c.lost += n));
  reader.on('error', (e) => {
    throw e;
  });
  return c;
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(5);
}

test('all records arrive in order while the event loop keeps ticking', async (t) => {
  if (!kernelReady(t, 'kernel_ringbuf')) return;
  const obj = open(t);
  const reader = new RingBufReader(obj.map('kt_events'), { lostCounter: { map: obj.map('kt_lost'), index: 0 }, pollMs: 50 });
  t.after(() => reader.stop());
  const got = collect(reader);
  await reader.ready;

  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  t.after(() => clearInterval(timer));
  const N = 20_000;
  const emit = obj.program('kt_emit');
  for (let i = 0; i < 20; i++) {
    assert.equal(emit.testRun({ data: Buffer.alloc(64), repeat: N / 20 }).retval, 2 /* XDP_PASS */);
    await sleep(10);
  }
  await until(() => got.records.length >= N, 5_000);
  const tickWindowStart = ticks;
  await sleep(200); // the worker is blocked in ring_buffer__poll now
  assert.ok(ticks - tickWindowStart >= 10, `event loop ticked ${ticks - tickWindowStart} times in 200 ms`);
  await reader.stop();

  assert.equal(got.records.length, N);
  assert.equal(reader.received, N);
  assert.equal(got.lost, 0n);
  got.records.forEach((r, i) => {
    assert.equal(r.length, 32);
    assert.equal(r.readBigUInt64LE(0), BigInt(i));
    assert.equal(r.readUInt32LE(12), 64);
  });
  assert.ok(got.records[0].subarray(16).every((b) => b === 0xab));
});

test('a ring too small reports lost records: received + lost = produced', async (t) => {
  if (!kernelReady(t, 'kernel_ringbuf')) return;
  const obj = open(t, 4096); // one page: about 100 records of 40 bytes
  const reader = new RingBufReader(obj.map('kt_events'), { lostCounter: { map: obj.map('kt_lost'), index: 0 }, pollMs: 20 });
  t.after(() => reader.stop());
  const got = collect(reader);
  await reader.ready;
  const N = 5_000;
  obj.program('kt_emit').testRun({ data: Buffer.alloc(64), repeat: N });
  await until(() => got.lost > 0n && got.records.length > 0, 3_000);
  await reader.stop();
  assert.ok(got.lost > 0n, 'drops reported');
  assert.ok(got.records.length > 0 && got.records.length < N, `received ${got.records.length}`);
  assert.equal(BigInt(got.records.length) + got.lost, BigInt(N));
  assert.equal(reader.lost, got.lost);
});

test('records still in the ring at stop() are delivered; bad input is refused', async (t) => {
  if (!kernelReady(t, 'kernel_ringbuf')) return;
  const obj = open(t);
  assert.throws(() => new RingBufReader(obj.map('kt_lost')), /not a ring buffer/);
  assert.throws(() => new RingBufReader(obj.map('kt_events'), { pollMs: 0 }), /pollMs must be a positive integer/);
  assert.throws(() => new RingBufReader(obj.map('kt_events'), { lostCounter: { map: obj.map('kt_lost'), index: 1 } }), /index 1 is outside 0\.\.0/);
  assert.throws(() => new RingBufReader(obj.map('kt_events'), { lostCounter: { map: obj.map('kt_events'), index: 0 } }), /must be an array/);
  const reader = new RingBufReader(obj.map('kt_events'), { pollMs: 1000 });
  const got = collect(reader);
  await reader.ready;
  obj.program('kt_emit').testRun({ data: Buffer.alloc(64), repeat: 10 });
  await reader.stop();
  await reader.stop(); // idempotent
  assert.equal(got.records.length, 10);
});
