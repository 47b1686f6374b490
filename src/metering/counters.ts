// Reading per-CPU arrays of struct tg_counter (billing counters, per-container
// counters, firewall rule hits) in one packed batch.
import type { BpfMap } from '../kernel/index.js';

/**
 * The slots of a per-CPU array of struct tg_counter that counted anything,
 * summed over CPUs, read from one packed batch: the billing array has
 * tenants x classes x directions slots (131,072 by default), and an object
 * per slot and CPU made every export block the event loop for ~300 ms.
 * limit: only the first slots (those that can have counted anything).
 */
export function nonZeroCounters(map: BpfMap, limit?: number): Array<{ index: number; packets: bigint; bytes: bigint }> {
  const { count, keys, values: raw } = map.lookupBatchPacked({ limit });
  const values = raw.byteOffset % 8 === 0 ? raw : new Uint8Array(raw); // a copy starts its own, aligned buffer
  const per = map.valueBufferSize / 8; // u64 words per slot: (packets, bytes) per CPU
  const v = new BigUint64Array(values.buffer, values.byteOffset, count * per);
  const out: Array<{ index: number; packets: bigint; bytes: bigint }> = [];
  for (let i = 0; i < count; i++) {
    let packets = 0n;
    let bytes = 0n;
    for (let w = i * per; w < (i + 1) * per; w += 2) {
      packets += v[w]!;
      bytes += v[w + 1]!;
    }
    if (packets !== 0n || bytes !== 0n) out.push({ index: keys.readUInt32LE(i * 4), packets, bytes });
  }
  return out;
}
