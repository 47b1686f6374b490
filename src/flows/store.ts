// The flow store: per-interval flow deltas for analytics in a SQLite file of
// their own, never in the billing ledger (flows never feed billing). An
// interval is one row of flow_intervals (totals, the kernel's flow counters,
// where the export left off) plus its moved flows as packed records in
// flow_chunks (records.ts). Retention is bounded by age and by bytes and
// enforced in the same transaction as every write (docs/flows.md).
import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import { evictedFlows, type FlowCounters } from './counters.js';
import type { FlowInterval, ResumePoint } from './delta.js';
import { RECORD_SIZE, encodeRecords } from './records.js';
import { topFlows, type TopOptions, type TopResult } from './top.js';

/** 'TGFL' (PRAGMA application_id): a tollgate flow store, not a ledger ('TGLG'). */
export const FLOW_STORE_APPLICATION_ID = 0x5447464c;
const SCHEMA_VERSION = 1;

export const DEFAULT_RETENTION_MS = 3_600_000;
export const DEFAULT_MAX_BYTES = 256 * 1024 * 1024;

export interface FlowStoreOptions {
  /** Intervals that ended longer ago than this are deleted; default 1 h. */
  retentionMs?: number;
  /** Record bytes kept at most, oldest intervals deleted first; default 256 MiB. The newest interval is always kept. */
  maxBytes?: number;
  busyTimeoutMs?: number;
}

/** What the kernel said about the flow map when the interval was read. */
export interface MapState {
  bootId: string;
  /** tg_flows' max_entries. */
  capacity: number;
  counters: FlowCounters;
}

export interface RecordedInterval {
  id: number;
  at: Date;
  since: Date | null;
  /** Flows that moved (records stored). */
  flows: number;
  packets: number;
  bytes: number;
  unknown: number;
  storedBytes: number;
  /** Intervals deleted by retention. */
  pruned: number;
}

/** The kernel's flow counters over a window, and the map's state at its end. */
export interface FlowHealth {
  /** Live flows and capacity at the latest interval. */
  live: number;
  capacity: number;
  /** Counter deltas over the window (of the map live at its end). */
  window: FlowCounters & { evicted: bigint };
  /** Since that map was created. */
  total: FlowCounters & { evicted: bigint };
}

export interface TopQuery extends TopOptions {
  /** Intervals that ended at or after since and before until. */
  since?: Date;
  until?: Date;
}

export interface FlowTop extends TopResult {
  intervals: number;
  /** Start of the oldest and end of the newest interval summed; null when there were none. */
  from: Date | null;
  to: Date | null;
  /** Flows live at some export in the window whose movement was not known (baselines): not in the sums. */
  unknown: number;
  health: FlowHealth | null;
}

const COUNTER_COLUMNS: ReadonlyArray<readonly [keyof FlowCounters, string]> = [
  ['updated', 'updated'], ['inserted', 'inserted'], ['insertFailed', 'insert_failed'],
  ['lookupFailed', 'lookup_failed'], ['noAddr', 'no_addr'], ['fragNoPorts', 'frag_no_ports'],
];

const SCHEMA = `
  CREATE TABLE flow_intervals (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    boot_id       TEXT NOT NULL,
    map_id        INTEGER NOT NULL,                -- kernel id of tg_flows
    read_start_ns INTEGER NOT NULL,                -- CLOCK_MONOTONIC of boot_id, before the read
    read_end_ns   INTEGER NOT NULL,                -- after it
    since_ms      INTEGER,                         -- the previous export of the map; NULL: a baseline
    at_ms         INTEGER NOT NULL,                -- wall clock at read_end_ns, ms since the Unix epoch
    flows         INTEGER NOT NULL,                -- moved flows (records in flow_chunks)
    packets       INTEGER NOT NULL,
    bytes         INTEGER NOT NULL,
    unknown       INTEGER NOT NULL,                -- live flows whose movement was not known
    stored_bytes  INTEGER NOT NULL,
    live          INTEGER NOT NULL,
    capacity      INTEGER NOT NULL,
    -- tg_flow_stats summed over CPUs, since the map was created
    updated       INTEGER NOT NULL,
    inserted      INTEGER NOT NULL,
    insert_failed INTEGER NOT NULL,
    lookup_failed INTEGER NOT NULL,
    no_addr       INTEGER NOT NULL,
    frag_no_ports INTEGER NOT NULL,
    evicted       INTEGER NOT NULL                 -- inserted - live (counters/evictedFlows)
  );
  CREATE INDEX flow_intervals_at ON flow_intervals (at_ms);
  CREATE TABLE flow_chunks (
    interval_id INTEGER NOT NULL REFERENCES flow_intervals (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    records     INTEGER NOT NULL,
    data        BLOB NOT NULL,                     -- records.ts
    PRIMARY KEY (interval_id, seq)
  );
`;

interface IntervalRow {
  id: bigint;
  boot_id: string;
  map_id: bigint;
  read_start_ns: bigint;
  read_end_ns: bigint;
  at_ms: bigint;
  live: bigint;
  capacity: bigint;
  evicted: bigint;
  updated: bigint;
  inserted: bigint;
  insert_failed: bigint;
  lookup_failed: bigint;
  no_addr: bigint;
  frag_no_ports: bigint;
}

function positive(v: number | undefined, fallback: number, field: string): number {
  if (v === undefined) return fallback;
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${field} must be a positive integer, got ${v}`);
  return v;
}

export class FlowStore {
  readonly path: string;
  readonly retentionMs: number;
  readonly maxBytes: number;
  readonly #db: Db;
  readonly #insertInterval: Statement;
  readonly #insertChunk: Statement;
  readonly #prune: Statement;
  readonly #latest: Statement;
  #scratch = Buffer.alloc(0);

  private constructor(db: Db, path: string, retentionMs: number, maxBytes: number) {
    this.#db = db;
    this.path = path;
    this.retentionMs = retentionMs;
    this.maxBytes = maxBytes;
    this.#insertInterval = db.prepare(`
      INSERT INTO flow_intervals (boot_id, map_id, read_start_ns, read_end_ns, since_ms, at_ms, flows, packets, bytes, unknown,
        stored_bytes, live, capacity, ${COUNTER_COLUMNS.map(([, c]) => c).join(', ')}, evicted)
      VALUES (@boot, @map, @start, @end, @since, @at, @flows, @packets, @bytes, @unknown, @stored, @live, @capacity,
        ${COUNTER_COLUMNS.map(([k]) => `@${k}`).join(', ')}, @evicted)`);
    this.#insertChunk = db.prepare('INSERT INTO flow_chunks (interval_id, seq, records, data) VALUES (?, ?, ?, ?)');
    // Keeps the newest interval whatever its size; deletes by age, then oldest first until the rest fits maxBytes.
    this.#prune = db.prepare(`
      DELETE FROM flow_intervals WHERE id < @newest AND (at_ms < @cutoff OR id <= (
        SELECT id FROM (SELECT id, SUM(stored_bytes) OVER (ORDER BY id DESC) AS kept FROM flow_intervals)
        WHERE kept > @maxBytes ORDER BY id DESC LIMIT 1))`);
    this.#latest = db.prepare('SELECT * FROM flow_intervals ORDER BY id DESC LIMIT 1').safeIntegers(true);
  }

  /** Opens (creating when absent) a flow store; refuses any other SQLite file, the ledger included. */
  static open(path: string, opts: FlowStoreOptions = {}): FlowStore {
    const retentionMs = positive(opts.retentionMs, DEFAULT_RETENTION_MS, 'retentionMs');
    const maxBytes = positive(opts.maxBytes, DEFAULT_MAX_BYTES, 'maxBytes');
    const busy = positive(opts.busyTimeoutMs, 5000, 'busyTimeoutMs');
    const db = new Database(path);
    try {
      db.pragma(`busy_timeout = ${busy}`);
      /** Whether the file is empty (to be made a flow store); throws unless it is one already. */
      const fresh = (): boolean => {
        const app = db.pragma('application_id', { simple: true }) as number;
        const version = db.pragma('user_version', { simple: true }) as number;
        const empty = (db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'").get() as { n: number }).n === 0;
        if (app === 0 && version === 0 && empty) return true;
        if (app !== FLOW_STORE_APPLICATION_ID) throw new Error(`${path} is not a tollgate flow store (application_id ${app}); flows get a file of their own`);
        if (version !== SCHEMA_VERSION) throw new Error(`${path} has flow store schema ${version}, this code reads ${SCHEMA_VERSION}`);
        return false;
      };
      // Identify the file before changing anything in it, journal mode included: pointed at the
      // ledger by mistake, this must not take the ledger out of WAL mode.
      fresh();
      // A rollback journal, not WAL: an interval is tens of MB of new pages, which WAL writes
      // twice (log, then checkpoint); a rollback journal writes them once and journals only the
      // pages it changes (freed pages are reused without). 2.5x faster for a million flows on the
      // reference host. The agent is the only writer and reads in the same connection.
      db.pragma('journal_mode = TRUNCATE');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      db.transaction(() => {
        // again under the write lock: another process may have made it a flow store meanwhile
        if (!fresh()) return;
        db.exec(SCHEMA);
        db.pragma(`application_id = ${FLOW_STORE_APPLICATION_ID}`);
        db.pragma(`user_version = ${SCHEMA_VERSION}`);
      }).immediate();
      return new FlowStore(db, path, retentionMs, maxBytes);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Where the last export left off, for a FlowTracker after an agent restart. */
  resumePoint(): ResumePoint | undefined {
    const r = this.#latest.get() as IntervalRow | undefined;
    return r && { bootId: r.boot_id, mapId: Number(r.map_id), startNs: r.read_start_ns, endNs: r.read_end_ns, at: new Date(Number(r.at_ms)) };
  }

  /** Stores one interval and applies retention, in one transaction. */
  /** Faults in the encode buffer for intervals of up to `flows` moved flows now, rather than during the first ones. */
  reserve(flows: number): void {
    if (this.#scratch.length < flows * RECORD_SIZE) this.#scratch = Buffer.alloc(flows * RECORD_SIZE).fill(0);
  }

  record(iv: FlowInterval, map: MapState): RecordedInterval {
    // SQLite copies each blob, so one buffer serves every interval; it grows to the largest one.
    this.reserve(iv.count);
    const chunks = encodeRecords(iv, undefined, this.#scratch);
    const storedBytes = chunks.reduce((n, c) => n + c.length, 0);
    const snap = iv.snapshot;
    const at = snap.at;
    return this.#db.transaction((): RecordedInterval => {
      const { lastInsertRowid } = this.#insertInterval.run({
        boot: map.bootId, map: snap.mapId, start: snap.startNs, end: snap.endNs, since: iv.since?.getTime() ?? null, at: at.getTime(),
        flows: iv.count, packets: iv.totalPackets, bytes: iv.totalBytes, unknown: iv.unknown, stored: storedBytes,
        live: snap.count, capacity: map.capacity, ...map.counters, evicted: evictedFlows(map.counters, snap.count),
      });
      const id = Number(lastInsertRowid);
      chunks.forEach((c, seq) => this.#insertChunk.run(id, seq, c.length / RECORD_SIZE, c));
      const { changes } = this.#prune.run({ newest: id, cutoff: at.getTime() - this.retentionMs, maxBytes: this.maxBytes });
      return { id, at, since: iv.since, flows: iv.count, packets: iv.totalPackets, bytes: iv.totalBytes, unknown: iv.unknown, storedBytes, pruned: changes };
    }).immediate();
  }

  /** The top flows of the intervals that ended in [since, until), and the map's health over them. */
  top(q: TopQuery): FlowTop {
    const since = q.since?.getTime() ?? 0;
    const until = q.until?.getTime() ?? Number.MAX_SAFE_INTEGER;
    const db = this.#db;
    // One read transaction: the intervals and their chunks as of one moment, whoever else writes the file.
    return db.transaction((): FlowTop => {
      const ivs = db.prepare('SELECT id, since_ms, at_ms, unknown FROM flow_intervals WHERE at_ms >= ? AND at_ms < ? ORDER BY id')
        .all(since, until) as Array<{ id: number; since_ms: number | null; at_ms: number; unknown: number }>;
      const chunkStmt = db.prepare('SELECT data FROM flow_chunks WHERE interval_id = ? ORDER BY seq').pluck();
      function* chunks(): Generator<Buffer> {
        for (const iv of ivs) yield* chunkStmt.iterate(iv.id) as IterableIterator<Buffer>;
      }
      const top = topFlows(chunks(), q);
      const first = ivs[0];
      const last = ivs.at(-1);
      return {
        ...top,
        intervals: ivs.length,
        from: first ? new Date(first.since_ms ?? first.at_ms) : null,
        to: last ? new Date(last.at_ms) : null,
        unknown: ivs.reduce((n, iv) => n + iv.unknown, 0),
        health: last && first ? this.#health(first.id, last.id) : null,
      };
    })();
  }

  #health(firstId: number, lastId: number): FlowHealth {
    const get = this.#db.prepare('SELECT * FROM flow_intervals WHERE id = ?').safeIntegers(true);
    const before = this.#db.prepare('SELECT * FROM flow_intervals WHERE id < ? ORDER BY id DESC LIMIT 1').safeIntegers(true);
    const last = get.get(lastId) as IntervalRow;
    const base = before.get(firstId) as IntervalRow | undefined;
    const total = counters(last);
    // Counters restart with a new map: then the window is counted from its creation.
    const from = base && base.map_id === last.map_id && base.boot_id === last.boot_id ? counters(base) : undefined;
    const window = { ...total };
    for (const k of Object.keys(total) as Array<keyof typeof total>) {
      const d = total[k] - (from?.[k] ?? 0n);
      window[k] = d > 0n ? d : 0n;
    }
    return { live: Number(last.live), capacity: Number(last.capacity), window, total };
  }

  close(): void {
    this.#db.close();
  }
}

function counters(r: IntervalRow): FlowCounters & { evicted: bigint } {
  const out = { evicted: r.evicted } as FlowCounters & { evicted: bigint };
  for (const [k, c] of COUNTER_COLUMNS) out[k] = r[c as keyof IntervalRow] as bigint;
  return out;
}
