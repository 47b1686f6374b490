// TypedMap: a BpfMap seen through codecs (codec.ts / abi.gen.ts), so callers
// deal in numbers, bigints and objects instead of byte buffers. For per-CPU
// maps the plain accessors speak in totals over all CPUs (what a meter wants)
// and the *PerCpu accessors expose the individual slots.
import { sumPerCpu, type Codec } from './codec.js';
import type { BpfMap, UpdateFlag } from './map.js';
import { numPossibleCpus } from './libbpf.js';

export class TypedMap<K, V> {
  readonly map: BpfMap;
  readonly key: Codec<K>;
  readonly value: Codec<V>;

  constructor(map: BpfMap, key: Codec<K>, value: Codec<V>) {
    if (key.size !== map.keySize) throw new RangeError(`TypedMap(${map.name}): key codec is ${key.size} bytes, the map's key_size is ${map.keySize}`);
    if (value.size !== map.valueSize)
      throw new RangeError(`TypedMap(${map.name}): value codec is ${value.size} bytes, the map's value_size is ${map.valueSize}`);
    this.map = map;
    this.key = key;
    this.value = value;
  }

  get perCpu(): boolean {
    return this.map.perCpu;
  }

  #stride(): number {
    return Math.ceil(this.map.valueSize / 8) * 8;
  }

  #decodeAll(buf: Buffer): V[] {
    const stride = this.#stride();
    const n = buf.length / stride;
    return Array.from({ length: n }, (_, i) => this.value.decode(buf, i * stride));
  }

  #decode(buf: Buffer): V {
    return this.map.perCpu ? sumValues(this.#decodeAll(buf)) : this.value.decode(buf);
  }

  #encodePerCpu(values: readonly V[]): Buffer {
    const stride = this.#stride();
    const buf = Buffer.alloc(stride * values.length);
    values.forEach((v, i) => this.value.encode(v, buf, i * stride));
    return buf;
  }

  /** The value (for per-CPU maps: the sum over all CPUs). */
  get(k: K): V | undefined {
    const raw = this.map.lookup(this.key.encode(k));
    return raw === undefined ? undefined : this.#decode(raw);
  }

  /**
   * Writes the value. For per-CPU maps the value goes to CPU 0 and every
   * other CPU's slot is zeroed, so the sum afterwards equals v.
   */
  set(k: K, v: V, flags: UpdateFlag = 'any'): void {
    if (!this.map.perCpu) {
      this.map.update(this.key.encode(k), this.value.encode(v), flags);
      return;
    }
    const zero = this.value.decode(Buffer.alloc(this.value.size));
    const values = Array.from({ length: numPossibleCpus() }, (_, i) => (i === 0 ? v : zero));
    this.map.update(this.key.encode(k), this.#encodePerCpu(values), flags);
  }

  /** Writes many entries in batches (not for per-CPU maps: use set per key there). */
  setMany(entries: ReadonlyArray<readonly [K, V]>): void {
    if (this.map.perCpu) throw new Error(`TypedMap(${this.map.name}).setMany: per-CPU maps are not supported`);
    const { keys, values } = this.pack(entries);
    this.map.updatePacked(keys, values);
  }

  /** Entries encoded back to back, as updatePacked and deleteMany (the keys) take them. */
  pack(entries: ReadonlyArray<readonly [K, V]>): { keys: Buffer; values: Buffer } {
    const ks = this.key.size;
    const vs = this.value.size;
    const keys = Buffer.alloc(entries.length * ks);
    const values = Buffer.alloc(entries.length * vs);
    // Entries often share one value object (the firewall's masks): encoded once, then copied.
    const encodedAt = new Map<V, number>();
    entries.forEach(([k, v], i) => {
      this.key.encode(k, keys, i * ks);
      const at = encodedAt.get(v);
      if (at === undefined) {
        this.value.encode(v, values, i * vs);
        encodedAt.set(v, i * vs);
      } else {
        values.copy(values, i * vs, at, at + vs);
      }
    });
    return { keys, values };
  }

  delete(k: K): boolean {
    return this.map.delete(this.key.encode(k));
  }

  keys(): K[] {
    return [...this.map.keys()].map((b) => this.key.decode(b));
  }

  /** Every entry via batch lookup (per-CPU maps: summed values). */
  entries(): Array<[K, V]> {
    return this.map.lookupBatch().map(([k, v]) => [this.key.decode(k), this.#decode(v)]);
  }

  // ---- per-CPU maps ----

  #needPerCpu(what: string): void {
    if (!this.map.perCpu) throw new Error(`TypedMap(${this.map.name}).${what}: map type ${this.map.type} is not per-CPU`);
  }

  /** One value per possible CPU. */
  getPerCpu(k: K): V[] | undefined {
    this.#needPerCpu('getPerCpu');
    const raw = this.map.lookup(this.key.encode(k));
    return raw === undefined ? undefined : this.#decodeAll(raw);
  }

  /** Sum over all CPUs (numbers and bigints add field by field). */
  getSum(k: K): V | undefined {
    this.#needPerCpu('getSum');
    return this.get(k);
  }

  /** Writes v into every CPU's slot. */
  setAllCpus(k: K, v: V, flags: UpdateFlag = 'any'): void {
    this.#needPerCpu('setAllCpus');
    this.map.update(this.key.encode(k), this.#encodePerCpu(Array.from({ length: numPossibleCpus() }, () => v)), flags);
  }

  /** Writes one value per possible CPU. */
  setPerCpu(k: K, values: readonly V[], flags: UpdateFlag = 'any'): void {
    this.#needPerCpu('setPerCpu');
    const n = numPossibleCpus();
    if (values.length !== n) throw new RangeError(`TypedMap(${this.map.name}).setPerCpu: got ${values.length} values, this host has ${n} possible CPUs`);
    this.map.update(this.key.encode(k), this.#encodePerCpu(values), flags);
  }

  entriesSum(): Array<[K, V]> {
    this.#needPerCpu('entriesSum');
    return this.entries();
  }

  entriesPerCpu(): Array<[K, V[]]> {
    this.#needPerCpu('entriesPerCpu');
    return this.map.lookupBatch().map(([k, v]) => [this.key.decode(k), this.#decodeAll(v)]);
  }
}

/** Sums per-CPU values: scalars add, objects go through codec.ts's sumPerCpu. */
export function sumValues<V>(values: readonly V[]): V {
  if (values.length === 0) throw new RangeError('no per-CPU values to sum');
  const first = values[0];
  if (typeof first === 'bigint') return values.reduce((a, b) => ((a as bigint) + (b as bigint)) as V);
  if (typeof first === 'number') return values.reduce((a, b) => ((a as number) + (b as number)) as V);
  if (first !== null && typeof first === 'object' && !Buffer.isBuffer(first)) return sumPerCpu(values as readonly object[]) as V;
  return first;
}
