// Per-interval flow deltas. The kernel's flow entries are cumulative for the
// life of the entry and are never read destructively, so what a flow did in
// an interval is its value now minus its value at the previous export. An
// entry is one flow instance: (key, first_seen_ns); a key whose first_seen
// changed was evicted and created again, and counts from zero.
//
// Most work is skipped using the entries' own times: a flow whose last
// packet came before the previous read began has not moved, and one created
// after the previous read ended was not in it. Only the flows in between are
// looked up in the previous snapshot.
import { KeyTable } from './key-table.js';
import { KEY_WORDS, V, VALUE_WORDS, u64After, u64Words, u64n, words, type FlowSnapshot } from './snapshot.js';

/**
 * A program takes the time before it adds to a flow, so a packet counted
 * just after a read began can carry a time from just before it. A BPF
 * program runs without preemption; 1 ms covers interrupts in between.
 */
const CLOCK_SLACK_NS = 1_000_000n;

/** Where the previous export of a flow map left off (kept by the store across agent restarts). */
export interface ResumePoint {
  bootId: string;
  mapId: number;
  startNs: bigint;
  endNs: bigint;
  at: Date;
}

/** The flows that moved since the previous export; arrays are filled up to count. */
export interface FlowInterval {
  snapshot: FlowSnapshot;
  /** When the previous export of the same map read it: the interval's start. Null for a baseline. */
  since: Date | null;
  count: number;
  /** Index of each moved flow in snapshot. */
  entry: Int32Array;
  packets: Float64Array;
  bytes: Float64Array;
  totalPackets: number;
  totalBytes: number;
  /**
   * Live flows whose movement cannot be known and is not counted: all of
   * them on the first export of a map (the baseline), and after an agent
   * restart those that were live at the last export and moved since.
   */
  unknown: number;
}

/**
 * Finds flows of the previous read in it. A hash map's batch read walks its
 * buckets in order, and the meter never moves an entry (it adds in place,
 * inserts at a bucket's head, and the LRU only removes), so flows that
 * survive come back in the same order: a cursor walking the previous read
 * finds almost every flow within a few entries, with sequential memory
 * access. Whatever it misses is looked up in a hash table of the previous
 * read, built the first time it is needed. Matches are always exact (whole
 * keys compared); the cursor only decides how fast.
 */
class Previous {
  readonly snap: FlowSnapshot;
  readonly kw: Uint32Array;
  readonly vw: Uint32Array;
  #cursor = 0;
  #table: KeyTable | undefined;
  #entryOf: Int32Array | undefined;

  constructor(snap: FlowSnapshot) {
    this.snap = snap;
    this.kw = words(snap.keys);
    this.vw = words(snap.values);
  }

  /** Index of the key at kw[at..] in the previous read, or -1; `lookup` false: only near the cursor. */
  find(kw: Uint32Array, at: number, lookup: boolean): number {
    const n = this.snap.count;
    const c = this.#cursor;
    for (let j = c; j < n && j < c + AHEAD; j++) {
      if (this.#equals(j, kw, at)) {
        this.#cursor = j + 1;
        return j;
      }
    }
    for (let j = c - 1; j >= 0 && j >= c - BEHIND; j--) if (this.#equals(j, kw, at)) return j;
    if (!lookup) return -1;
    if (!this.#table) this.#index();
    const id = this.#table!.find(kw, at);
    const j = id < 0 ? -1 : this.#entryOf![id]!;
    if (j >= 0) this.#cursor = j + 1;
    return j;
  }

  #equals(j: number, kw: Uint32Array, at: number): boolean {
    const pk = this.kw;
    const o = j * KEY_WORDS;
    for (let w = 0; w < KEY_WORDS; w++) if (pk[o + w] !== kw[at + w]) return false;
    return true;
  }

  #index(): void {
    const table = new KeyTable(KEY_WORDS, this.snap.count);
    const entryOf = new Int32Array(this.snap.count);
    for (let i = 0; i < this.snap.count; i++) entryOf[table.intern(this.kw, i * KEY_WORDS)] = i;
    this.#table = table;
    this.#entryOf = entryOf;
  }
}

/** How far around the cursor a flow is looked for: runs of evicted flows ahead, a bucket's reordering behind. */
const AHEAD = 32;
const BEHIND = 8;

export class FlowTracker {
  readonly bootId: string;
  #prev: Previous | undefined;
  #resume: ResumePoint | undefined;

  /** resume: the store's last export, used when it was of the same map in the same boot. */
  constructor(bootId: string, resume?: ResumePoint) {
    this.bootId = bootId;
    this.#resume = resume;
  }

  next(snap: FlowSnapshot): FlowInterval {
    const prev = this.#prev?.snap.mapId === snap.mapId ? this.#prev : undefined;
    const resume = !prev && this.#resume?.bootId === this.bootId && this.#resume.mapId === snap.mapId ? this.#resume : undefined;
    const ref = prev ? prev.snap : resume;
    const n = snap.count;
    const out: FlowInterval = {
      snapshot: snap, since: ref ? ref.at : null, count: 0,
      entry: new Int32Array(n), packets: new Float64Array(n), bytes: new Float64Array(n),
      totalPackets: 0, totalBytes: 0, unknown: ref ? 0 : n,
    };
    if (ref) diff(snap, ref, prev, out);
    this.#prev = new Previous(snap);
    this.#resume = undefined;
    return out;
  }
}

function diff(snap: FlowSnapshot, ref: { startNs: bigint; endNs: bigint }, prev: Previous | undefined, out: FlowInterval): void {
  const kw = words(snap.keys);
  const vw = words(snap.values);
  const pvw = prev?.vw;
  const idleBefore = u64Words(ref.startNs > CLOCK_SLACK_NS ? ref.startNs - CLOCK_SLACK_NS : 0n);
  const newAfter = u64Words(ref.endNs);
  let c = 0;
  for (let i = 0; i < snap.count; i++) {
    const v = i * VALUE_WORDS;
    if (u64After(vw, v + V.firstSeen, newAfter)) {
      // Created after the previous read: not in it, all of it is new.
      c = put(out, c, i, u64n(vw, v + V.packets), u64n(vw, v + V.bytes));
      continue;
    }
    const idle = !u64After(vw, v + V.lastSeen, idleBefore);
    if (!prev || !pvw) {
      if (!idle) out.unknown++;
      continue;
    }
    // Idle flows still move the cursor along, so it keeps up with the previous read.
    const p = prev.find(kw, i * KEY_WORDS, !idle) * VALUE_WORDS;
    if (idle) continue;
    let dp = u64n(vw, v + V.packets);
    let db = u64n(vw, v + V.bytes);
    if (p >= 0 && pvw[p + V.firstSeen] === vw[v + V.firstSeen] && pvw[p + V.firstSeen + 1] === vw[v + V.firstSeen + 1]) {
      dp = delta(vw, v + V.packets, pvw, p + V.packets);
      db = delta(vw, v + V.bytes, pvw, p + V.bytes);
    }
    c = put(out, c, i, dp, db);
  }
  out.count = c;
}

/** Records entry i's movement (when there is any) at slot c; the next free slot. */
function put(out: FlowInterval, c: number, i: number, dp: number, db: number): number {
  if (dp === 0 && db === 0) return c;
  out.entry[c] = i;
  out.packets[c] = dp;
  out.bytes[c] = db;
  out.totalPackets += dp;
  out.totalBytes += db;
  return c + 1;
}

/** now - before for u64 words, exact while the difference is below 2^53; never negative. */
function delta(now: Uint32Array, a: number, before: Uint32Array, b: number): number {
  const d = (now[a + 1]! - before[b + 1]!) * 4294967296 + (now[a]! - before[b]!);
  return d > 0 ? d : 0;
}
