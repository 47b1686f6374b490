// A flow snapshot: every entry of the kernel's tg_flows map at one instant,
// kept columnar (one buffer of keys and one of values, laid out exactly as
// the kernel has them) so that a million flows cost two allocations instead
// of millions of objects. Hot loops read them through Uint32Array views;
// display code decodes single keys with decodeFlowKey.
import { TgFlow, TgFlowKey, TG_DIR_INGRESS } from '../kernel/abi.gen.js';
import { formatAddress } from '../policy/cidr.js';

export const KEY_SIZE = TgFlowKey.size;
export const VALUE_SIZE = TgFlow.size;
/** 32-bit words per key and per value (both sizes are multiples of 4). */
export const KEY_WORDS = KEY_SIZE / 4;
export const VALUE_WORDS = VALUE_SIZE / 4;

/**
 * Word offsets in struct tg_flow (each u64 is its low word, then its high
 * word) and struct tg_flow_key. Checked against the generated codecs below,
 * so a change to abi.h fails here at load instead of misreading flows.
 */
export const V = { packets: 0, bytes: 2, firstSeen: 4, lastSeen: 6, classId: 8 } as const;
export const K = { tenant: 9 } as const;
const KEY_BYTE = { sport: 32, dport: 34, ipVer: 40, proto: 41, direction: 42 } as const;

function checkLayout(): void {
  const v = words(TgFlow.encode({ packets: 1n, bytes: 2n, first_seen_ns: 3n, last_seen_ns: 4n, class_id: 5, pad: 0 }));
  const k = TgFlowKey.encode({ saddr_be: Buffer.alloc(16), daddr_be: Buffer.alloc(16), sport_be: 0x0201, dport_be: 0x0403, tenant_id: 6, ip_ver: 7, proto: 8, direction: 9, pad: 0 });
  const ok = v[V.packets] === 1 && v[V.bytes] === 2 && v[V.firstSeen] === 3 && v[V.lastSeen] === 4 && v[V.classId] === 5 &&
    k.readUInt32LE(K.tenant * 4) === 6 && k.readUInt16BE(KEY_BYTE.sport) === 0x0102 && k.readUInt16BE(KEY_BYTE.dport) === 0x0304 &&
    k[KEY_BYTE.ipVer] === 7 && k[KEY_BYTE.proto] === 8 && k[KEY_BYTE.direction] === 9;
  if (!ok) throw new Error('src/flows/snapshot.ts: struct tg_flow / tg_flow_key changed in abi.h; update the offsets V, K and KEY_BYTE');
}
checkLayout();

export interface FlowSnapshot {
  readonly count: number;
  /** count * KEY_SIZE bytes of struct tg_flow_key. */
  readonly keys: Buffer;
  /** count * VALUE_SIZE bytes of struct tg_flow. */
  readonly values: Buffer;
  /** Kernel id of the flow map: a new id is a new map whose counts started from zero. */
  readonly mapId: number;
  /** CLOCK_MONOTONIC (bpf_ktime_get_ns's clock) right before and right after the read. */
  readonly startNs: bigint;
  readonly endNs: bigint;
  /** Wall clock at endNs. */
  readonly at: Date;
  /**
   * The buffers keys and values are views of, when the read may have them
   * back: lent to a later read once this snapshot is no longer needed, they
   * spare that read its page faults (FlowExporter does this).
   */
  readonly storage?: FlowBuffers;
}

export interface FlowBuffers {
  keys: Buffer;
  values: Buffer;
}

export type SnapshotMeta = Omit<FlowSnapshot, 'count' | 'keys' | 'values' | 'storage'>;

/** The clock of bpf_ktime_get_ns: libuv's hrtime is CLOCK_MONOTONIC too. */
export function monotonicNs(): bigint {
  return process.hrtime.bigint();
}

/** A snapshot from the [key, value] pairs of a batch read. */
export function snapshotFromEntries(entries: ReadonlyArray<readonly [Buffer, Buffer]>, meta: SnapshotMeta): FlowSnapshot {
  // Buffer.alloc is never pooled: offset 0, so the Uint32Array views are aligned.
  const keys = Buffer.alloc(entries.length * KEY_SIZE);
  const values = Buffer.alloc(entries.length * VALUE_SIZE);
  for (let i = 0; i < entries.length; i++) {
    const [k, v] = entries[i]!;
    if (k.length !== KEY_SIZE || v.length !== VALUE_SIZE) {
      throw new RangeError(`flow entry ${i}: key ${k.length} and value ${v.length} bytes, expected ${KEY_SIZE} and ${VALUE_SIZE}`);
    }
    // TypedArray#set is a memcpy builtin; Buffer#copy is a call into C++ per entry.
    keys.set(k, i * KEY_SIZE);
    values.set(v, i * VALUE_SIZE);
  }
  return { ...meta, count: entries.length, keys, values };
}

export function words(b: Buffer): Uint32Array {
  if (b.byteOffset % 4 !== 0) throw new RangeError('flow buffers must be 4-byte aligned');
  return new Uint32Array(b.buffer, b.byteOffset, b.length / 4);
}

/** A u64 held as two words, as a number: exact below 2^53, within a few ns beyond (uptimes over 104 days). */
export const u64n = (w: Uint32Array, at: number): number => w[at + 1]! * 4294967296 + w[at]!;

/** a > b for u64s held as (low, high) words at w[at] and in t. */
export function u64After(w: Uint32Array, at: number, t: U64Words): boolean {
  const hi = w[at + 1]!;
  return hi > t.hi || (hi === t.hi && w[at]! > t.lo);
}

export interface U64Words {
  lo: number;
  hi: number;
}

export function u64Words(v: bigint): U64Words {
  return { lo: Number(v & 0xffffffffn), hi: Number((v >> 32n) & 0xffffffffn) };
}

/** Wall-clock ms of a CLOCK_MONOTONIC ns reading, given the pair (nowNs, nowMs) taken together. */
export const wallMs = (ns: number, nowNs: number, nowMs: number): number => nowMs - (nowNs - ns) / 1e6;

export type FlowDirection = 'ingress' | 'egress';

/** A tg_flow_key for people and JSON. */
export interface FlowKey {
  tenantId: number;
  /** As seen from the tenant, like the billing counters. */
  direction: FlowDirection;
  ipVersion: number;
  protocol: number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

/** Decodes the key at byte offset `at` of buf (a snapshot's keys or a stored record). */
export function decodeFlowKey(buf: Buffer, at: number): FlowKey {
  const ipVersion = buf[at + KEY_BYTE.ipVer]!;
  const len = ipVersion === 4 ? 4 : 16;
  return {
    tenantId: buf.readUInt32LE(at + K.tenant * 4),
    direction: buf[at + KEY_BYTE.direction] === TG_DIR_INGRESS ? 'ingress' : 'egress',
    ipVersion,
    protocol: buf[at + KEY_BYTE.proto]!,
    src: formatAddress(ipVersion === 4 ? 4 : 6, buf.subarray(at, at + len)),
    sport: buf.readUInt16BE(at + KEY_BYTE.sport),
    dst: formatAddress(ipVersion === 4 ? 4 : 6, buf.subarray(at + 16, at + 16 + len)),
    dport: buf.readUInt16BE(at + KEY_BYTE.dport),
  };
}
