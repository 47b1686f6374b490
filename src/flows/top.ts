// Top talkers: sums the stored records of a window per flow key and keeps
// the largest by bytes or packets. The work is one pass over the window's
// records (a typed-array hash table, no per-record objects) and a bounded
// heap, so asking for the top 20 of a million flows sorts 20, not a million.
import { KeyTable } from './key-table.js';
import { RECORD_SIZE, RECORD_WORDS, R } from './records.js';
import { K, KEY_WORDS, decodeFlowKey, words, type FlowKey } from './snapshot.js';

export const TOP_ORDERS = ['bytes', 'packets'] as const;
export type TopOrder = (typeof TOP_ORDERS)[number];

export interface TopOptions {
  by: TopOrder;
  limit: number;
  /** Only this tenant's flows. */
  tenantId?: number;
}

export interface TopFlow extends FlowKey {
  /** Class of the latest packet in the window. */
  classId: number;
  packets: number;
  bytes: number;
  /** First and last packet seen, ms since the Unix epoch. */
  firstMs: number;
  lastMs: number;
}

export interface TopResult {
  flows: TopFlow[];
  /** Distinct flows (keys) in the window after the tenant filter. */
  distinct: number;
  packets: number;
  bytes: number;
}

/** Aggregates record chunks given oldest first. */
export function topFlows(chunks: Iterable<Buffer>, opts: TopOptions): TopResult {
  if (!Number.isInteger(opts.limit) || opts.limit < 1) throw new RangeError(`limit must be a positive integer, got ${opts.limit}`);
  const table = new KeyTable(KEY_WORDS);
  const packets: number[] = [];
  const bytes: number[] = [];
  const first: number[] = [];
  const last: number[] = [];
  const cls: number[] = [];
  /** Where each flow's key is: chunk and record. */
  const where: Array<[Buffer, number]> = [];
  let totalPackets = 0;
  let totalBytes = 0;
  for (const raw of chunks) {
    const chunk = aligned(raw);
    const w = words(chunk);
    const f = new Float64Array(chunk.buffer, chunk.byteOffset, chunk.length / 8);
    const n = chunk.length / RECORD_SIZE;
    for (let r = 0; r < n; r++) {
      const o = r * RECORD_WORDS;
      if (opts.tenantId !== undefined && w[o + K.tenant] !== opts.tenantId) continue;
      const o8 = r * (RECORD_SIZE / 8);
      const id = table.intern(w, o);
      const p = f[o8 + R.packets]!;
      const b = f[o8 + R.bytes]!;
      if (id === packets.length) {
        packets.push(p);
        bytes.push(b);
        first.push(f[o8 + R.first]!);
        last.push(f[o8 + R.last]!);
        cls.push(w[o + R.classId]!);
        where.push([chunk, r * RECORD_SIZE]);
      } else {
        packets[id] += p;
        bytes[id] += b;
        first[id] = Math.min(first[id]!, f[o8 + R.first]!);
        last[id] = Math.max(last[id]!, f[o8 + R.last]!);
        cls[id] = w[o + R.classId]!; // chunks come oldest first
      }
      totalPackets += p;
      totalBytes += b;
    }
  }
  const metric = opts.by === 'bytes' ? bytes : packets;
  const tie = opts.by === 'bytes' ? packets : bytes;
  const ids = largest(metric.length, opts.limit, (a, b) => metric[a]! - metric[b]! || tie[a]! - tie[b]! || b - a);
  return {
    flows: ids.map((id) => {
      const [chunk, at] = where[id]!;
      return { ...decodeFlowKey(chunk, at), classId: cls[id]!, packets: packets[id]!, bytes: bytes[id]!, firstMs: first[id]!, lastMs: last[id]! };
    }),
    distinct: table.size,
    packets: totalPackets,
    bytes: totalBytes,
  };
}

/** The ids 0..n-1 with the k largest values by cmp, largest first: a min-heap of size k. */
export function largest(n: number, k: number, cmp: (a: number, b: number) => number): number[] {
  const heap: number[] = [];
  const down = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && cmp(heap[l]!, heap[m]!) < 0) m = l;
      if (r < heap.length && cmp(heap[r]!, heap[m]!) < 0) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let id = 0; id < n; id++) {
    if (heap.length < k) {
      heap.push(id);
      for (let i = heap.length - 1; i > 0; ) {
        const p = (i - 1) >> 1;
        if (cmp(heap[i]!, heap[p]!) >= 0) break;
        [heap[i], heap[p]] = [heap[p]!, heap[i]!];
        i = p;
      }
    } else if (cmp(id, heap[0]!) > 0) {
      heap[0] = id;
      down(0);
    }
  }
  return heap.sort((a, b) => cmp(b, a));
}

/** Typed-array views need 8-byte alignment; a BLOB read back from SQLite may not have it. */
function aligned(b: Buffer): Buffer {
  if (b.length % RECORD_SIZE !== 0) throw new RangeError(`flow record chunk of ${b.length} bytes is not a whole number of ${RECORD_SIZE}-byte records`);
  if (b.byteOffset % 8 === 0) return b;
  const copy = Buffer.alloc(b.length); // never pooled: offset 0
  b.copy(copy);
  return copy;
}
