// The stored form of an interval's flow deltas: fixed-size little-endian
// records packed into chunks (BLOBs in the flow store). One SQLite row per
// flow costs ~1.5 us per flow on the reference host, several times the
// whole budget for a million flows; a chunk of 8192 records is one row.
//
// record (RECORD_SIZE = 80 bytes):
//   0  struct tg_flow_key (44 bytes, as the kernel has it)
//  44  u32 class id (of the flow's latest packet)
//  48  f64 packets in the interval
//  56  f64 bytes in the interval
//  64  f64 first seen, whole ms since the Unix epoch (the flow instance's first packet)
//  72  f64 last seen, whole ms since the Unix epoch
// Counts are f64: exact up to 2^53 per flow and interval.
import type { FlowInterval } from './delta.js';
import { KEY_WORDS, V, VALUE_WORDS, u64n, wallMs, words } from './snapshot.js';

export const RECORD_SIZE = 80;
export const RECORD_WORDS = RECORD_SIZE / 4;
/** Offsets in a record: classId in 32-bit words, the rest in 64-bit slots (Float64Array indexes). */
export const R = { classId: KEY_WORDS, packets: 6, bytes: 7, first: 8, last: 9 } as const;
export const DEFAULT_CHUNK_RECORDS = 8192;

/**
 * The interval's moved flows as record chunks. With `into` big enough
 * (count * RECORD_SIZE bytes, 8-aligned) the chunks are views of it: a
 * buffer reused across intervals is not faulted in again page by page.
 */
export function encodeRecords(iv: FlowInterval, chunkRecords = DEFAULT_CHUNK_RECORDS, into?: Buffer): Buffer[] {
  if (!Number.isInteger(chunkRecords) || chunkRecords < 1) throw new RangeError(`chunkRecords must be a positive integer, got ${chunkRecords}`);
  const snap = iv.snapshot;
  const kw = words(snap.keys);
  const vw = words(snap.values);
  const nowNs = Number(snap.endNs);
  const nowMs = snap.at.getTime();
  const chunks: Buffer[] = [];
  for (let from = 0; from < iv.count; from += chunkRecords) {
    const n = Math.min(chunkRecords, iv.count - from);
    // Every byte of a record is written below, so a reused buffer needs no clearing.
    const buf = into && into.length >= iv.count * RECORD_SIZE && into.byteOffset % 8 === 0
      ? into.subarray(from * RECORD_SIZE, (from + n) * RECORD_SIZE)
      : Buffer.alloc(n * RECORD_SIZE);
    const w = words(buf);
    const f = new Float64Array(buf.buffer, buf.byteOffset, n * (RECORD_SIZE / 8));
    for (let r = 0; r < n; r++) {
      const i = iv.entry[from + r]!;
      const k = i * KEY_WORDS;
      const v = i * VALUE_WORDS;
      const o = r * RECORD_WORDS;
      for (let j = 0; j < KEY_WORDS; j++) w[o + j] = kw[k + j]!;
      w[o + R.classId] = vw[v + V.classId]!;
      const o8 = r * (RECORD_SIZE / 8);
      f[o8 + R.packets] = iv.packets[from + r]!;
      f[o8 + R.bytes] = iv.bytes[from + r]!;
      f[o8 + R.first] = Math.round(wallMs(u64n(vw, v + V.firstSeen), nowNs, nowMs));
      f[o8 + R.last] = Math.round(wallMs(u64n(vw, v + V.lastSeen), nowNs, nowMs));
    }
    chunks.push(buf);
  }
  return chunks;
}
