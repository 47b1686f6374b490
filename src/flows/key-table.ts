// A hash table of fixed-size binary keys (flow keys, 11 words) held in typed
// arrays: ids are handed out in insertion order, keys are compared word by
// word. On the reference host a JS Map keyed by the keys as latin1 strings
// took 2.2 s for a million inserts and as many lookups; this does the same
// work without allocating per key.

const EMPTY = 0;

export class KeyTable {
  readonly words: number;
  #keys: Uint32Array;
  /** Open addressing, linear probing; a slot holds id + 1 (0 = empty). */
  #slots: Int32Array;
  #mask: number;
  #size = 0;

  constructor(words: number, capacity = 1024) {
    if (!Number.isInteger(words) || words < 1) throw new RangeError(`KeyTable: words must be a positive integer, got ${words}`);
    this.words = words;
    const cap = Math.max(16, capacity);
    this.#keys = new Uint32Array(cap * words);
    this.#slots = new Int32Array(slotsFor(cap));
    this.#mask = this.#slots.length - 1;
  }

  get size(): number {
    return this.#size;
  }

  /** The id of the key at src[at .. at + words), or -1. */
  find(src: Uint32Array, at: number): number {
    for (let s = this.#hash(src, at) & this.#mask; ; s = (s + 1) & this.#mask) {
      const v = this.#slots[s]!;
      if (v === EMPTY) return -1;
      if (this.#equals(v - 1, src, at)) return v - 1;
    }
  }

  /** The id of the key at src[at .. at + words), added when it is new. */
  intern(src: Uint32Array, at: number): number {
    const n = this.words;
    for (let s = this.#hash(src, at) & this.#mask; ; s = (s + 1) & this.#mask) {
      const v = this.#slots[s]!;
      if (v === EMPTY) {
        if ((this.#size + 1) * n > this.#keys.length) {
          this.#grow();
          return this.intern(src, at);
        }
        const id = this.#size++;
        const keys = this.#keys;
        for (let i = 0, o = id * n; i < n; i++) keys[o + i] = src[at + i]!;
        this.#slots[s] = id + 1;
        return id;
      }
      if (this.#equals(v - 1, src, at)) return v - 1;
    }
  }

  #equals(id: number, src: Uint32Array, at: number): boolean {
    const keys = this.#keys;
    const n = this.words;
    const o = id * n;
    for (let i = 0; i < n; i++) if (keys[o + i] !== src[at + i]) return false;
    return true;
  }

  /** Multiply-xorshift over the words; flow keys differ mostly in a few address and port words. */
  #hash(src: Uint32Array, at: number): number {
    let h = 0x811c9dc5;
    for (let i = 0; i < this.words; i++) {
      h = Math.imul(h ^ src[at + i]!, 0x9e3779b1);
      h ^= h >>> 15;
    }
    h = Math.imul(h ^ (h >>> 13), 0x85ebca6b);
    return (h ^ (h >>> 16)) >>> 0;
  }

  #grow(): void {
    const n = this.words;
    const cap = (this.#keys.length / n) * 2;
    const keys = new Uint32Array(cap * n);
    keys.set(this.#keys);
    this.#keys = keys;
    this.#slots = new Int32Array(slotsFor(cap));
    this.#mask = this.#slots.length - 1;
    for (let id = 0; id < this.#size; id++) {
      let s = this.#hash(keys, id * n) & this.#mask;
      while (this.#slots[s] !== EMPTY) s = (s + 1) & this.#mask;
      this.#slots[s] = id + 1;
    }
  }
}

/** A power of two at least twice the capacity: probes stay short at load factor <= 1/2. */
function slotsFor(capacity: number): number {
  let n = 16;
  while (n < capacity * 2) n *= 2;
  return n;
}
