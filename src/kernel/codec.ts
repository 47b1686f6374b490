// Binary codecs for fixed-layout C structs. tools/gen-abi emits one codec per
// struct in bpf/include/abi.h (src/kernel/abi.gen.ts) out of these primitives,
// so the layout always comes from BTF and never from a hand-written mirror.

export interface Codec<T> {
  readonly size: number;
  /** Writes v at off into buf (allocating a zeroed buffer of `size` when absent). */
  encode(v: T, buf?: Buffer, off?: number): Buffer;
  decode(buf: Buffer, off?: number): T;
}

export type Scalar = number | bigint;

function scalar<T>(size: number, read: (b: Buffer, o: number) => T, write: (b: Buffer, v: T, o: number) => void): Codec<T> {
  return {
    size,
    encode(v, buf = Buffer.alloc(size), off = 0) {
      write(buf, v, off);
      return buf;
    },
    decode(buf, off = 0) {
      return read(buf, off);
    },
  };
}

export const u8 = scalar<number>(1, (b, o) => b.readUInt8(o), (b, v, o) => b.writeUInt8(v, o));
export const s8 = scalar<number>(1, (b, o) => b.readInt8(o), (b, v, o) => b.writeInt8(v, o));
export const u16 = scalar<number>(2, (b, o) => b.readUInt16LE(o), (b, v, o) => b.writeUInt16LE(v, o));
export const s16 = scalar<number>(2, (b, o) => b.readInt16LE(o), (b, v, o) => b.writeInt16LE(v, o));
export const u32 = scalar<number>(4, (b, o) => b.readUInt32LE(o), (b, v, o) => b.writeUInt32LE(v, o));
export const s32 = scalar<number>(4, (b, o) => b.readInt32LE(o), (b, v, o) => b.writeInt32LE(v, o));
export const u64 = scalar<bigint>(8, (b, o) => b.readBigUInt64LE(o), (b, v, o) => b.writeBigUInt64LE(v, o));
export const s64 = scalar<bigint>(8, (b, o) => b.readBigInt64LE(o), (b, v, o) => b.writeBigInt64LE(v, o));

/** A fixed-length byte array (char[N], __u8[N]); decoded as a copy. */
export function bytes(n: number): Codec<Buffer> {
  return {
    size: n,
    encode(v, buf = Buffer.alloc(n), off = 0) {
      if (v.length > n) throw new RangeError(`byte array of ${v.length} bytes does not fit ${n}`);
      v.copy(buf, off);
      buf.fill(0, off + v.length, off + n);
      return buf;
    },
    decode(buf, off = 0) {
      return Buffer.from(buf.subarray(off, off + n));
    },
  };
}

/** A fixed-length array of another codec (T[N]). */
export function array<T>(elem: Codec<T>, n: number): Codec<T[]> {
  return {
    size: elem.size * n,
    encode(v, buf = Buffer.alloc(elem.size * n), off = 0) {
      if (v.length > n) throw new RangeError(`array of ${v.length} elements does not fit ${n}`);
      v.forEach((e, i) => elem.encode(e, buf, off + i * elem.size));
      return buf;
    },
    decode(buf, off = 0) {
      return Array.from({ length: n }, (_, i) => elem.decode(buf, off + i * elem.size));
    },
  };
}

export type Field<T> = { [K in keyof T]: readonly [name: K, offset: number, codec: Codec<T[K]>] }[keyof T];

/** A struct laid out as BTF says: every field at its offset, gaps stay zero. */
export function struct<T extends object>(size: number, fields: readonly Field<T>[]): Codec<T> {
  return {
    size,
    encode(v, buf = Buffer.alloc(size), off = 0) {
      for (const [name, o, c] of fields) c.encode(v[name], buf, off + o);
      return buf;
    },
    decode(buf, off = 0) {
      if (buf.length - off < size) throw new RangeError(`need ${size} bytes to decode, have ${buf.length - off}`);
      const out = {} as T;
      for (const [name, o, c] of fields) out[name] = c.decode(buf, off + o);
      return out;
    },
  };
}

/**
 * Sums per-CPU values field by field. Numeric fields add (bigint stays
 * bigint), arrays element by element (a struct's counter array such as
 * tg_sys_counts.n); anything else is taken from the first CPU.
 */
export function sumPerCpu<T extends object>(values: readonly T[]): T {
  if (values.length === 0) throw new RangeError('no per-CPU values to sum');
  return values.slice(1).reduce<unknown>((acc, v) => addFields(acc, v), values[0]) as T;
}

/** a + b for numbers and bigints, element by element for arrays, field by field for objects; else a. */
function addFields(a: unknown, b: unknown): unknown {
  if (typeof a === 'bigint' && typeof b === 'bigint') return a + b;
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (Array.isArray(a) && Array.isArray(b)) return a.map((x, i) => addFields(x, b[i]));
  if (a !== null && typeof a === 'object' && b !== null && typeof b === 'object' && !Buffer.isBuffer(a)) {
    const out: Record<string, unknown> = { ...a };
    for (const [k, x] of Object.entries(b)) out[k] = addFields(out[k], x);
    return out;
  }
  return a;
}
