// Maps through the kernel layer against real kernel maps: hash, array,
// per-CPU array, LPM tries (v4 and v6, longest-prefix match checked from a
// BPF program), batch lookup, pinning and adoption across objects.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import {
  BpfMap, BpfObject, KernelError, MapType, TypedMap, array, bytes, numPossibleCpus, struct, u32, u64,
} from '../../src/kernel/index.js';
import { fixture, kernelReady, pinDir } from './helpers.js';

const Counter = struct<{ packets: bigint; bytes: bigint }>(16, [
  ['packets', 0, u64],
  ['bytes', 8, u64],
]);
const Lpm4 = struct<{ prefixlen: number; addr: Buffer }>(8, [
  ['prefixlen', 0, u32],
  ['addr', 4, bytes(4)],
]);
const Lpm6 = struct<{ prefixlen: number; addr: Buffer }>(20, [
  ['prefixlen', 0, u32],
  ['addr', 4, bytes(16)],
]);

function loaded(t: import('node:test').TestContext): BpfObject {
  const obj = BpfObject.open(fixture('kernel_maps'));
  t.after(() => obj.close());
  obj.load();
  return obj;
}

const v4 = (s: string) => Buffer.from(s.split('.').map(Number));
function v6(s: string): Buffer {
  const [head, tail = ''] = s.split('::');
  const h = head ? head.split(':') : [];
  const tl = tail ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - tl.length).fill('0'), ...tl];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}
const probe4 = (a: string) => Buffer.concat([Buffer.alloc(14), Buffer.from([4]), v4(a)]);
const probe6 = (a: string) => Buffer.concat([Buffer.alloc(14), Buffer.from([6]), v6(a)]);

test('hash map: update flags, lookup, delete, keys', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const obj = loaded(t);
  const m = obj.map('kt_hash');
  assert.equal(m.type, MapType.HASH);
  assert.equal(m.keySize, 4);
  assert.equal(m.valueSize, 8);
  assert.equal(m.maxEntries, 16384);
  assert.equal(m.perCpu, false);
  const h = new TypedMap(m, u32, u64);
  assert.equal(h.get(7), undefined);
  h.set(7, 70n);
  h.set(8, 80n, 'noexist');
  assert.equal(h.get(7), 70n);
  assert.throws(() => h.set(7, 1n, 'noexist'), (e: unknown) => e instanceof KernelError && e.code === 'EEXIST');
  assert.throws(() => h.set(9, 1n, 'exist'), (e: unknown) => e instanceof KernelError && e.code === 'ENOENT');
  h.set(7, 71n, 'exist');
  assert.equal(h.get(7), 71n);
  assert.deepEqual(h.keys().sort(), [7, 8]);
  assert.equal(h.delete(7), true);
  assert.equal(h.delete(7), false);
  assert.deepEqual(h.entries(), [[8, 80n]]);
});

test('array map: preallocated zero entries, delete refused, out of range', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const obj = loaded(t);
  const a = new TypedMap(obj.map('kt_array'), u32, u64);
  assert.equal(a.get(3), 0n);
  a.set(3, 33n);
  assert.equal(a.get(3), 33n);
  assert.equal(a.get(64), undefined);
  assert.throws(() => a.set(64, 1n), KernelError);
  assert.throws(() => a.delete(3), (e: unknown) => e instanceof KernelError && e.code === 'EINVAL');
  assert.equal(a.entries().length, 64);
});

test('per-CPU array: every CPU slot written, sums exact', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const obj = loaded(t);
  const m = obj.map('kt_counts');
  const ncpu = numPossibleCpus();
  assert.equal(m.perCpu, true);
  assert.equal(m.valueBufferSize, 16 * ncpu);
  const c = new TypedMap(m, u32, Counter);
  c.setAllCpus(2, { packets: 3n, bytes: 100n });
  assert.deepEqual(c.getPerCpu(2), Array.from({ length: ncpu }, () => ({ packets: 3n, bytes: 100n })));
  assert.deepEqual(c.getSum(2), { packets: 3n * BigInt(ncpu), bytes: 100n * BigInt(ncpu) });
  c.setPerCpu(1, Array.from({ length: ncpu }, (_, i) => ({ packets: BigInt(i + 1), bytes: BigInt(10 * (i + 1)) })));
  const tri = BigInt((ncpu * (ncpu + 1)) / 2);
  assert.deepEqual(c.getSum(1), { packets: tri, bytes: 10n * tri });
  c.set(1, { packets: 5n, bytes: 6n });
  assert.deepEqual(c.get(1), { packets: 5n, bytes: 6n });
  // the raw buffer is what the kernel returns: roundup(16, 8) bytes per CPU
  const raw = m.lookup(u32.encode(2));
  assert.equal(raw?.length, 16 * ncpu);
  const sums = new Map(c.entriesSum());
  assert.equal(sums.size, 8);
  assert.deepEqual(sums.get(2), { packets: 3n * BigInt(ncpu), bytes: 100n * BigInt(ncpu) });
  // a program's increments land on the running CPU and show up in the sum
  const before = c.getSum(0)!;
  obj.program('kt_xdp_count').testRun({ data: Buffer.alloc(60), repeat: 25 });
  const after = c.getSum(0)!;
  assert.equal(after.packets - before.packets, 25n);
  assert.equal(after.bytes - before.bytes, 25n * 60n);
  assert.throws(() => c.setPerCpu(0, [{ packets: 1n, bytes: 1n }].slice(0, ncpu - 1)), /possible CPUs/);
});

test('LPM tries (BPF_F_NO_PREALLOC): longest prefix wins, v4 and v6, looked up by a program', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const obj = loaded(t);
  const l4 = new TypedMap(obj.map('kt_lpm4'), Lpm4, u32);
  const l6 = new TypedMap(obj.map('kt_lpm6'), Lpm6, u32);
  assert.equal(obj.map('kt_lpm4').type, MapType.LPM_TRIE);
  l4.set({ prefixlen: 15, addr: v4('198.18.0.0') }, 1);
  l4.set({ prefixlen: 24, addr: v4('198.18.7.0') }, 2);
  l4.set({ prefixlen: 32, addr: v4('198.18.7.9') }, 3);
  l6.set({ prefixlen: 48, addr: v6('2001:2::') }, 11);
  l6.set({ prefixlen: 64, addr: v6('2001:2:0:7::') }, 12);
  l6.set({ prefixlen: 128, addr: v6('2001:2:0:7::9') }, 13);
  const run = (data: Buffer) => obj.program('kt_lpm_lookup').testRun({ data }).retval;
  assert.equal(run(probe4('198.18.7.9')), 3);
  assert.equal(run(probe4('198.18.7.10')), 2);
  assert.equal(run(probe4('198.19.200.1')), 1);
  assert.equal(run(probe4('198.20.0.1')), 0);
  assert.equal(run(probe6('2001:2:0:7::9')), 13);
  assert.equal(run(probe6('2001:2:0:7::a')), 12);
  assert.equal(run(probe6('2001:2:0:8::1')), 11);
  assert.equal(run(probe6('2001:3::1')), 0);
  // exact-key get from user space, delete of the most specific falls back
  assert.equal(l4.get({ prefixlen: 24, addr: v4('198.18.7.0') }), 2);
  assert.equal(l4.delete({ prefixlen: 32, addr: v4('198.18.7.9') }), true);
  assert.equal(run(probe4('198.18.7.9')), 2);
  // LPM tries have no batch ops: entries() falls back to key iteration
  assert.equal(l4.entries().length, 2);
  assert.deepEqual(l6.entries().map(([, v]) => v).sort(), [11, 12, 13]);
});

test('batch lookup of 10,000 entries, small chunks', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const obj = loaded(t);
  const h = new TypedMap(obj.map('kt_hash'), u32, u64);
  for (let i = 0; i < 10_000; i++) h.set(i, BigInt(i) * 3n);
  for (const chunk of [undefined, 97, 1]) {
    const all = obj.map('kt_hash').lookupBatch({ chunk });
    assert.equal(all.length, 10_000, `chunk ${chunk}`);
    const seen = new Set<number>();
    for (const [k, v] of all) {
      const key = k.readUInt32LE(0);
      assert.equal(v.readBigUInt64LE(0), BigInt(key) * 3n);
      seen.add(key);
    }
    assert.equal(seen.size, 10_000);
  }
  assert.throws(() => obj.map('kt_hash').lookupBatch({ chunk: 0 }), /chunk must be a positive integer/);
});

test('a packed batch read fills lent buffers when they are big enough, and fresh ones when not', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const obj = loaded(t);
  const m = obj.map('kt_hash');
  const h = new TypedMap(m, u32, u64);
  for (let i = 0; i < 3000; i++) h.set(i, BigInt(i) + 7n);
  const sum = (p: { count: number; keys: Buffer; values: Buffer }): bigint => {
    let s = 0n;
    for (let i = 0; i < p.count; i++) {
      assert.equal(p.values.readBigUInt64LE(i * 8), BigInt(p.keys.readUInt32LE(i * 4)) + 7n);
      s += p.values.readBigUInt64LE(i * 8);
    }
    return s;
  };
  const want = (2999n * 3000n) / 2n + 3000n * 7n;
  const first = m.lookupBatchPacked({ chunk: 512 });
  assert.equal(first.count, 3000);
  assert.equal(sum(first), want);
  // Dirty the storage: every byte the second read reports must be its own.
  first.storage.keys.fill(0xee);
  first.storage.values.fill(0xee);
  const again = m.lookupBatchPacked({ chunk: 512, into: first.storage });
  assert.equal(again.keys.buffer, first.storage.keys.buffer, 'read into the lent keys');
  assert.equal(again.values.buffer, first.storage.values.buffer, 'read into the lent values');
  assert.equal(again.count, 3000);
  assert.equal(sum(again), want);
  const small = { keys: Buffer.alloc(16), values: Buffer.alloc(32) };
  const fresh = m.lookupBatchPacked({ chunk: 512, into: small });
  assert.notEqual(fresh.keys.buffer, small.keys.buffer, 'too small to lend: not used');
  assert.equal(sum(fresh), want);
});

test('a packed batch read stops at a limit: an array\'s first entries, in index order', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const obj = loaded(t);
  const m = obj.map('kt_array');
  const a = new TypedMap(m, u32, u64);
  for (let i = 0; i < 64; i++) a.set(i, BigInt(i) * 5n);
  for (const [limit, chunk] of [[0, 8], [1, 8], [20, 8], [24, 8], [64, 8], [1000, 7]] as const) {
    const p = m.lookupBatchPacked({ limit, chunk });
    const n = Math.min(limit, 64);
    assert.equal(p.count, n, `limit ${limit}`);
    for (let i = 0; i < n; i++) {
      assert.equal(p.keys.readUInt32LE(i * 4), i);
      assert.equal(p.values.readBigUInt64LE(i * 8), BigInt(i) * 5n);
    }
  }
  assert.throws(() => m.lookupBatchPacked({ limit: -1 }), /limit must be a non-negative integer/);
});

test('bad key and value sizes are refused with the map name and sizes', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const obj = loaded(t);
  const m = obj.map('kt_hash');
  assert.throws(() => m.lookup(Buffer.alloc(3)), /map 'kt_hash': key is 3 bytes, the map's key_size is 4/);
  assert.throws(() => m.update(Buffer.alloc(4), Buffer.alloc(4)), /map 'kt_hash': value is 4 bytes, expected 8/);
  assert.throws(() => obj.map('kt_counts').update(Buffer.alloc(4), Buffer.alloc(16)), /per-CPU/);
  assert.throws(() => m.delete(Buffer.alloc(8)), /key is 8 bytes/);
  assert.throws(() => m.update(Buffer.alloc(4), Buffer.alloc(8), 'sometimes' as never), /flags must be/);
  assert.throws(() => new TypedMap(m, u64, u64), /key codec is 8 bytes, the map's key_size is 4/);
  assert.throws(() => new TypedMap(m, u32, array(u64, 2)), /value codec is 16 bytes/);
  assert.throws(() => obj.map('nope'), /has no map 'nope' \(has: .*kt_hash/);
});

test('pin, openPinned and reuseMap: a second object adopts the first one\'s map', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const dir = pinDir(t);
  const first = loaded(t);
  const path = `${dir}/kt_hash`;
  first.map('kt_hash').pin(path);
  new TypedMap(first.map('kt_hash'), u32, u64).set(1, 111n);

  const pinned = BpfMap.openPinned(path);
  t.after(() => pinned.close());
  assert.equal(pinned.id, first.map('kt_hash').id);
  assert.equal(pinned.type, MapType.HASH);
  assert.equal(pinned.keySize, 4);
  assert.equal(pinned.valueSize, 8);
  assert.equal(pinned.maxEntries, 16384);
  assert.equal(pinned.name, 'kt_hash');
  assert.equal(new TypedMap(pinned, u32, u64).get(1), 111n);

  const second = BpfObject.open(fixture('kernel_maps'));
  t.after(() => second.close());
  second.reuseMap('kt_hash', path);
  second.load();
  assert.equal(second.map('kt_hash').id, first.map('kt_hash').id);
  new TypedMap(second.map('kt_hash'), u32, u64).set(2, 222n);
  assert.equal(new TypedMap(first.map('kt_hash'), u32, u64).get(2), 222n);

  // the pin outlives both objects
  first.close();
  second.close();
  assert.equal(new TypedMap(pinned, u32, u64).get(2), 222n);
  pinned.unpin();
  assert.equal(existsSync(path), false);
  assert.throws(() => BpfMap.openPinned(path), (e: unknown) => e instanceof KernelError && e.code === 'ENOENT' && /bpffs/.test(e.message));
});

test('reuseMap of an incompatible pinned map is refused, naming the differences', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const dir = pinDir(t);
  const first = loaded(t);
  first.map('kt_array').pin(`${dir}/arr`);
  first.map('kt_hash').pin(`${dir}/hash`);
  const second = BpfObject.open(fixture('kernel_maps'));
  t.after(() => second.close());
  assert.deepEqual(second.pinMismatch('kt_hash', `${dir}/hash`), [], 'the same definition');
  assert.ok(second.pinMismatch('kt_hash', `${dir}/arr`).includes('type: pinned 2, object 1'));
  assert.throws(() => second.reuseMap('kt_hash', `${dir}/arr`), /does not match.*type: pinned 2, object 1/);
  second.setMaxEntries('kt_hash', 100);
  assert.deepEqual(second.pinMismatch('kt_hash', `${dir}/hash`), ['maxEntries: pinned 16384, object 100']);
  assert.throws(() => second.reuseMap('kt_hash', `${dir}/hash`), /maxEntries: pinned 16384, object 100/);
  assert.throws(() => BpfObject.open(fixture('kernel_maps')).reuseMap('kt_hash', `${dir}/missing`), (e: unknown) => e instanceof KernelError && e.code === 'ENOENT');
});
