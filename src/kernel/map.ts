// BpfMap: raw byte-level access to one kernel map through its fd. Keys and
// values are Buffers of exactly the map's sizes (per-CPU values are the whole
// roundup(valueSize, 8) * nCpus buffer); TypedMap layers codecs on top.
import { check, unlinkPin } from './errors.js';
import { mapInfo, type MapInfo } from './info.js';
import { libbpf, libc, numPossibleCpus, type Ptr } from './libbpf.js';

/** enum bpf_map_type, the ones tollgate uses. */
export const MapType = {
  HASH: 1,
  ARRAY: 2,
  PROG_ARRAY: 3,
  PERF_EVENT_ARRAY: 4,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  PERCPU_CGROUP_STORAGE: 21,
  RINGBUF: 27,
} as const;

const PER_CPU = new Set<number>([MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH, MapType.PERCPU_CGROUP_STORAGE]);

export type UpdateFlag = 'any' | 'noexist' | 'exist';
const UPDATE_FLAGS: Record<UpdateFlag, bigint> = { any: 0n, noexist: 1n, exist: 2n };

const ENOENT = 2;
const EINVAL = 22;
const ENOSPC = 28;
const EOPNOTSUPP = 95;
const ENOTSUPP = 524;

export interface MapShape {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

/** Buffers a packed batch read fills: keys back to back, values back to back. */
export interface PackedStorage {
  keys: Buffer;
  values: Buffer;
}

/** A packed batch read: count entries in keys and values, views of storage. */
export interface PackedEntries extends PackedStorage {
  count: number;
  storage: PackedStorage;
}

export class BpfMap {
  readonly name: string;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly perCpu: boolean;
  #maxEntries: number;
  #fd: number;
  #owned: boolean;
  /** Resolves the libbpf struct bpf_map * while an object owns this map. */
  #handle: (() => Ptr) | null;
  #pinPath: string | undefined;
  #id: number | undefined;

  /** @internal Use BpfObject.map() or BpfMap.openPinned(). */
  constructor(shape: MapShape, fd: number, opts: { owned: boolean; handle?: (() => Ptr) | null }) {
    this.name = shape.name;
    this.type = shape.type;
    this.keySize = shape.keySize;
    this.valueSize = shape.valueSize;
    this.#maxEntries = shape.maxEntries;
    this.perCpu = PER_CPU.has(shape.type);
    this.#fd = fd;
    this.#owned = opts.owned;
    this.#handle = opts.handle ?? null;
  }

  /** @internal A map of a not yet loaded BpfObject: fd and max_entries come from libbpf. */
  static fromLibbpf(resolve: () => Ptr): BpfMap {
    const l = libbpf();
    const handle = resolve();
    const shape: MapShape = {
      name: l.bpf_map__name(handle),
      type: l.bpf_map__type(handle),
      keySize: l.bpf_map__key_size(handle),
      valueSize: l.bpf_map__value_size(handle),
      maxEntries: l.bpf_map__max_entries(handle),
    };
    return new BpfMap(shape, -1, { owned: false, handle: resolve });
  }

  /** Opens a map pinned in bpffs; the returned map owns its fd (close() it). */
  static openPinned(path: string): BpfMap {
    const fd = check(`bpf_obj_get(${path})`, libbpf().bpf_obj_get(path));
    let info: MapInfo;
    try {
      info = mapInfo(fd);
    } catch (e) {
      libc().close(fd);
      throw e;
    }
    const m = new BpfMap(info, fd, { owned: true });
    m.#id = info.id;
    m.#pinPath = path;
    return m;
  }

  get fd(): number {
    if (this.#handle !== null && this.#fd < 0) {
      // maps of an object get their fd at load (or from reuseMap)
      const fd = libbpf().bpf_map__fd(this.#handle()) as number;
      if (fd < 0) throw new Error(`map '${this.name}': not loaded yet (call obj.load() first)`);
      return fd;
    }
    if (this.#fd < 0) throw new Error(`map '${this.name}' is closed`);
    return this.#fd;
  }

  get maxEntries(): number {
    return this.#handle !== null && this.#fd < 0 ? (libbpf().bpf_map__max_entries(this.#handle()) as number) : this.#maxEntries;
  }

  /** Kernel map id (stable across processes, unlike the fd). */
  get id(): number {
    if (this.#id === undefined) this.#id = mapInfo(this.fd).id;
    return this.#id;
  }

  /** Bytes of one value buffer as the syscalls see it (all CPUs for per-CPU maps). */
  get valueBufferSize(): number {
    return this.perCpu ? Math.ceil(this.valueSize / 8) * 8 * numPossibleCpus() : this.valueSize;
  }

  /** Path this map was pinned to or opened from, if any. */
  get pinPath(): string | undefined {
    return this.#pinPath;
  }

  #checkKey(key: Buffer, field = 'key'): void {
    if (!Buffer.isBuffer(key)) throw new TypeError(`map '${this.name}': ${field} must be a Buffer`);
    if (key.length !== this.keySize)
      throw new RangeError(`map '${this.name}': ${field} is ${key.length} bytes, the map's key_size is ${this.keySize}`);
  }

  #checkValue(value: Buffer): void {
    if (!Buffer.isBuffer(value)) throw new TypeError(`map '${this.name}': value must be a Buffer`);
    const want = this.valueBufferSize;
    if (value.length !== want)
      throw new RangeError(
        `map '${this.name}': value is ${value.length} bytes, expected ${want}` +
          (this.perCpu ? ` (per-CPU: roundup(${this.valueSize}, 8) * ${numPossibleCpus()} CPUs)` : ''),
      );
  }

  lookup(key: Buffer): Buffer | undefined {
    this.#checkKey(key);
    const value = Buffer.alloc(this.valueBufferSize);
    const r = libbpf().bpf_map_lookup_elem(this.fd, key, value) as number;
    if (r === -ENOENT) return undefined;
    check(`bpf_map_lookup_elem(${this.name})`, r);
    return value;
  }

  update(key: Buffer, value: Buffer, flags: UpdateFlag = 'any'): void {
    this.#checkKey(key);
    this.#checkValue(value);
    const f = UPDATE_FLAGS[flags];
    if (f === undefined) throw new RangeError(`map '${this.name}': flags must be 'any', 'noexist' or 'exist', got '${String(flags)}'`);
    check(`bpf_map_update_elem(${this.name}, ${flags})`, libbpf().bpf_map_update_elem(this.fd, key, value, f));
  }

  /**
   * Writes many entries with bpf_map_update_batch (one syscall per chunk);
   * map types without batch support (LPM tries) fall back to one update per
   * entry. Not atomic as a whole: entries already written stay on error.
   */
  updateMany(entries: ReadonlyArray<readonly [Buffer, Buffer]>, opts: { chunk?: number } = {}): void {
    for (const [k, v] of entries) {
      this.#checkKey(k);
      this.#checkValue(v);
    }
    this.updatePacked(Buffer.concat(entries.map(([k]) => k)), Buffer.concat(entries.map(([, v]) => v)), opts);
  }

  /** updateMany with the keys and the values already packed back to back (no object per entry). */
  updatePacked(keys: Buffer, values: Buffer, opts: { chunk?: number } = {}): void {
    const chunk = opts.chunk ?? 4096;
    if (!Number.isInteger(chunk) || chunk <= 0) throw new RangeError(`updateMany: chunk must be a positive integer, got ${chunk}`);
    const ksz = this.keySize;
    const vsz = this.valueBufferSize;
    const total = keys.length / ksz;
    if (!Number.isInteger(total) || values.length !== total * vsz) {
      throw new RangeError(`updateMany(${this.name}): ${keys.length} key bytes and ${values.length} value bytes are not whole ${ksz}- and ${vsz}-byte entries, as many of each`);
    }
    for (let at = 0; at < total; at += chunk) {
      const n = Math.min(chunk, total - at);
      const count = [n];
      const r = libbpf().bpf_map_update_batch(this.fd, keys.subarray(at * ksz, (at + n) * ksz), values.subarray(at * vsz, (at + n) * vsz), count, null) as number;
      if (r < 0 && at === 0 && (r === -EINVAL || r === -ENOTSUPP || r === -EOPNOTSUPP)) {
        for (let i = 0; i < total; i++) this.update(keys.subarray(i * ksz, (i + 1) * ksz), values.subarray(i * vsz, (i + 1) * vsz));
        return;
      }
      check(`bpf_map_update_batch(${this.name})`, r);
    }
  }

  /** Deletes key; false when it was not there. */
  delete(key: Buffer): boolean {
    this.#checkKey(key);
    const r = libbpf().bpf_map_delete_elem(this.fd, key) as number;
    if (r === -ENOENT) return false;
    check(`bpf_map_delete_elem(${this.name})`, r);
    return true;
  }

  /**
   * Deletes keys (packed back to back) with bpf_map_delete_batch; keys that
   * are not there are skipped. Returns how many were deleted.
   */
  deleteMany(keys: Buffer): number {
    if (keys.length % this.keySize !== 0) throw new RangeError(`deleteMany(${this.name}): ${keys.length} bytes is not a whole number of ${this.keySize}-byte keys`);
    const total = keys.length / this.keySize;
    let deleted = 0;
    for (let at = 0; at < total;) {
      const count = [total - at];
      const r = libbpf().bpf_map_delete_batch(this.fd, keys.subarray(at * this.keySize), count, null) as number;
      if (r < 0 && at === 0 && deleted === 0 && (r === -EINVAL || r === -ENOTSUPP || r === -EOPNOTSUPP) && count[0] === 0) {
        for (let i = 0; i < total; i++) if (this.delete(keys.subarray(i * this.keySize, (i + 1) * this.keySize))) deleted++;
        return deleted;
      }
      deleted += count[0]!;
      at += count[0]!;
      if (r === -ENOENT) at++; // that key was gone already: skip it
      else if (r < 0) check(`bpf_map_delete_batch(${this.name})`, r);
    }
    return deleted;
  }

  /** Walks the keys with get_next_key; entries changing meanwhile may be skipped or repeated. */
  *keys(): Generator<Buffer> {
    const fd = this.fd;
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const r = libbpf().bpf_map_get_next_key(fd, prev, next) as number;
      if (r === -ENOENT) return;
      check(`bpf_map_get_next_key(${this.name})`, r);
      yield next;
      prev = next;
    }
  }

  /**
   * Every entry, read with bpf_map_lookup_batch in chunks (falls back to
   * key iteration for map types without batch support, such as LPM tries).
   */
  lookupBatch(opts: { chunk?: number } = {}): Array<[Buffer, Buffer]> {
    const { count, keys, values } = this.lookupBatchPacked(opts);
    const vsz = this.valueBufferSize;
    const out: Array<[Buffer, Buffer]> = [];
    for (let i = 0; i < count; i++) {
      out.push([
        Buffer.from(keys.subarray(i * this.keySize, (i + 1) * this.keySize)),
        Buffer.from(values.subarray(i * vsz, (i + 1) * vsz)),
      ]);
    }
    return out;
  }

  /**
   * Every entry, packed: count keys back to back in keys, their values in
   * values (per-CPU maps: one slot per possible CPU each). No object per
   * entry, so a million entries cost two allocations instead of two million.
   * `into` lends buffers to read into (used when big enough): memory the
   * process has touched before, where a fresh allocation takes a page fault
   * per 4 KiB as the kernel fills it (half the time of a 1M-flow read on the
   * reference host). `storage` is what keys and values are views of, to be
   * lent to a later read once they are no longer needed. `limit`: at most
   * this many entries (an array's first `limit`, in index order).
   */
  lookupBatchPacked(opts: { chunk?: number; into?: PackedStorage; limit?: number } = {}): PackedEntries {
    let chunk = opts.chunk ?? 4096;
    if (!Number.isInteger(chunk) || chunk <= 0) throw new RangeError(`lookupBatch: chunk must be a positive integer, got ${chunk}`);
    const limit = opts.limit ?? Infinity;
    if (limit !== Infinity && (!Number.isInteger(limit) || limit < 0)) throw new RangeError(`lookupBatch: limit must be a non-negative integer, got ${limit}`);
    const fd = this.fd;
    const ksz = this.keySize;
    const vsz = this.valueBufferSize;
    // Room for two chunks to start with (a batch never returns more than asked), doubled as
    // entries come: sized for the whole map, a big and mostly empty hash map (the guards'
    // 65,536 blocks) cost megabytes of zeroed memory per read.
    let cap = Math.min(this.maxEntries, limit, chunk) + chunk;
    const lent = opts.into && opts.into.keys.length >= cap * ksz && opts.into.values.length >= cap * vsz ? opts.into : undefined;
    if (lent) cap = Math.min(Math.floor(lent.keys.length / ksz), Math.floor(lent.values.length / vsz));
    let keys = lent?.keys ?? Buffer.alloc(cap * ksz);
    let values = lent?.values ?? Buffer.alloc(cap * vsz);
    let count = 0;
    const done = (): PackedEntries => ({ count, keys: keys.subarray(0, count * ksz), values: values.subarray(0, count * vsz), storage: { keys, values } });
    // The batch cursor is opaque to us; a u64 covers every map type's token.
    const tokenSize = Math.max(ksz, 8);
    let inBatch: Buffer | null = null;
    const outBatch = Buffer.alloc(tokenSize);
    for (;;) {
      if (count + chunk > cap) {
        cap = Math.max(2 * cap, count + 2 * chunk);
        keys = Buffer.concat([keys.subarray(0, count * ksz), Buffer.alloc((cap - count) * ksz)]);
        values = Buffer.concat([values.subarray(0, count * vsz), Buffer.alloc((cap - count) * vsz)]);
      }
      if (count >= limit) return done();
      const n = [Math.min(chunk, limit - count)];
      const r = libbpf().bpf_map_lookup_batch(fd, inBatch, outBatch, keys.subarray(count * ksz), values.subarray(count * vsz), n, null) as number;
      if (r < 0 && r !== -ENOENT) {
        if (inBatch === null && (r === -EINVAL || r === -ENOTSUPP || r === -EOPNOTSUPP)) return this.#iteratePacked();
        // a hash bucket holds more entries than fit: retry the same cursor with room
        if (r === -ENOSPC && n[0] === 0) {
          // The next bucket holds more entries than the limit leaves room for: stop short of it.
          if (limit - count < chunk) return done();
          chunk *= 2;
          continue;
        }
        check(`bpf_map_lookup_batch(${this.name})`, r);
      }
      count += n[0]!;
      if (r === -ENOENT) return done();
      inBatch = Buffer.from(outBatch);
    }
  }

  #iteratePacked(): PackedEntries {
    const found = this.#iterate();
    const keys = Buffer.concat(found.map(([k]) => k));
    const values = Buffer.concat(found.map(([, v]) => v));
    return { count: found.length, keys, values, storage: { keys, values } };
  }

  #iterate(): Array<[Buffer, Buffer]> {
    const out: Array<[Buffer, Buffer]> = [];
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v) out.push([k, v]); // deleted between get_next_key and lookup
    }
    return out;
  }

  pin(path: string): void {
    check(`bpf_obj_pin(map ${this.name}, ${path})`, libbpf().bpf_obj_pin(this.fd, path));
    this.#pinPath = path;
  }

  /** Removes the pin this map was pinned to or opened from. */
  unpin(): void {
    if (!this.#pinPath) throw new Error(`map '${this.name}' is not pinned`);
    unlinkPin(this.#pinPath);
    this.#pinPath = undefined;
  }

  /** Closes the fd if this map owns it (openPinned); object maps close with their object. Idempotent. */
  close(): void {
    if (this.#owned && this.#fd >= 0) libc().close(this.#fd);
    this.#fd = -1;
    this.#handle = null;
  }

  /**
   * @internal the owning object loaded: fd and max_entries are final, so they
   * are kept rather than looked up through libbpf on every use (finding an
   * object's map by name walks all of them: ~80 FFI calls in the meter's).
   */
  loadedInObject(): void {
    if (this.#handle === null) return;
    const h = this.#handle();
    this.#maxEntries = libbpf().bpf_map__max_entries(h) as number;
    this.#fd = libbpf().bpf_map__fd(h) as number;
  }

  /** @internal the object owning this map was closed */
  detachFromObject(): void {
    this.#handle = null;
    this.#fd = -1;
  }
}
