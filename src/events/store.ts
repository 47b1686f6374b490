// The event store: security events in a SQLite file of their own (never the
// billing ledger), numbered in arrival order, kept for a bounded time and
// count, queryable by id, type and tenant. Also holds the few values the
// event reader must remember across restarts (how much loss it has reported).
import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import { numbered, type NewEvent, type SecurityEvent } from './event.js';

/** 'TGEV' (PRAGMA application_id): a tollgate event store. */
export const EVENT_STORE_APPLICATION_ID = 0x54474556;
const SCHEMA_VERSION = 1;

export interface EventQuery {
  /** Only events with a larger id. */
  after?: number;
  type?: string;
  tenant?: string;
  /** At most this many; the newest when `after` is absent, the oldest after it otherwise. */
  limit: number;
}

interface Row {
  id: number;
  at: number;
  type: string;
  tenant: string | null;
  protocol: string | null;
  src: string | null;
  sport: number | null;
  dst: string | null;
  dport: number | null;
  rule: string | null;
  action: string | null;
  detail: string;
}

function fromRow(r: Row): SecurityEvent {
  const flow = r.protocol === null ? null : { protocol: r.protocol, src: r.src!, sport: r.sport, dst: r.dst!, dport: r.dport };
  return numbered(r.id, { at: r.at, type: r.type, tenant: r.tenant, flow, rule: r.rule, action: r.action, detail: JSON.parse(r.detail) as Record<string, unknown> });
}

export class EventStore {
  readonly #db: Db;
  readonly #insert: Statement;

  private constructor(db: Db) {
    this.#db = db;
    this.#insert = db.prepare(`INSERT INTO events (at, type, tenant, protocol, src, sport, dst, dport, rule, action, detail)
                               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  }

  static open(path: string): EventStore {
    const db = new Database(path);
    try {
      db.pragma('busy_timeout = 5000');
      // Identify the file before changing anything in it (journal mode included): a
      // SQLite file of someone else's, also one without an application_id, is left alone.
      const appId = db.pragma('application_id', { simple: true }) as number;
      const version = db.pragma('user_version', { simple: true }) as number;
      const objects = (db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").get() as { n: number }).n;
      if (appId !== EVENT_STORE_APPLICATION_ID && (appId !== 0 || version !== 0 || objects !== 0)) {
        throw new Error(`${path} is not a tollgate event store (application_id ${appId})`);
      }
      if (version > SCHEMA_VERSION) throw new Error(`${path} has event store schema ${version}; this tollgate knows up to ${SCHEMA_VERSION}`);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      if (version === 0) {
        db.transaction(() => {
          db.exec(`
            -- AUTOINCREMENT: an id is never issued twice, also after pruning,
            -- so the audit file and stream clients can resume by id.
            CREATE TABLE events (
              id       INTEGER PRIMARY KEY AUTOINCREMENT,
              at       INTEGER NOT NULL,                 -- ms since the Unix epoch
              type     TEXT NOT NULL CHECK (type <> ''),
              tenant   TEXT,
              protocol TEXT,                             -- NULL: no packet
              src      TEXT,
              sport    INTEGER,
              dst      TEXT,
              dport    INTEGER,
              rule     TEXT,
              action   TEXT,
              detail   TEXT NOT NULL                     -- JSON object
            );
            CREATE INDEX events_by_at ON events (at);
            CREATE INDEX events_by_type ON events (type, id);
            CREATE INDEX events_by_tenant ON events (tenant, id);
            CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
          `);
          db.pragma(`application_id = ${EVENT_STORE_APPLICATION_ID}`);
          db.pragma(`user_version = ${SCHEMA_VERSION}`);
        }).immediate();
      }
      return new EventStore(db);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Stores events in one transaction, in order; returns them numbered. */
  append(events: readonly NewEvent[]): SecurityEvent[] {
    if (events.length === 0) return [];
    return this.#db.transaction(() => events.map((e) => {
      const f = e.flow;
      const r = this.#insert.run(e.at, e.type, e.tenant, f?.protocol ?? null, f?.src ?? null, f?.sport ?? null, f?.dst ?? null, f?.dport ?? null,
        e.rule, e.action, JSON.stringify(e.detail));
      return numbered(Number(r.lastInsertRowid), e);
    })).immediate();
  }

  /** Events in id order. */
  list(q: EventQuery): SecurityEvent[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.after !== undefined) (where.push('id > ?'), args.push(q.after));
    if (q.type !== undefined) (where.push('type = ?'), args.push(q.type));
    if (q.tenant !== undefined) (where.push('tenant = ?'), args.push(q.tenant));
    const cond = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const sql = q.after !== undefined
      ? `SELECT * FROM events ${cond} ORDER BY id LIMIT ?`
      : `SELECT * FROM (SELECT * FROM events ${cond} ORDER BY id DESC LIMIT ?) ORDER BY id`;
    return (this.#db.prepare(sql).all(...args, q.limit) as Row[]).map(fromRow);
  }

  /** The highest id ever issued (0 before the first event), also when that event was pruned. */
  lastId(): number {
    const r = this.#db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'").get() as { seq: number } | undefined;
    return r?.seq ?? 0;
  }

  /** Issues ids above `id` from now on (an audit file that outlived its store must not see an id twice). */
  issueAfter(id: number): void {
    if (id <= this.lastId()) return;
    this.#db.transaction(() => {
      const r = this.#db.prepare("UPDATE sqlite_sequence SET seq = ? WHERE name = 'events'").run(id);
      if (r.changes === 0) this.#db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)").run(id);
    }).immediate();
  }

  /** Deletes events older than retentionMs and beyond maxStored (oldest first); returns how many. */
  prune(now: number, retentionMs: number, maxStored: number): number {
    return this.#db.transaction(() => {
      let n = this.#db.prepare('DELETE FROM events WHERE at < ?').run(now - retentionMs).changes;
      n += this.#db.prepare('DELETE FROM events WHERE id <= (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?)').run(maxStored).changes;
      return n;
    }).immediate();
  }

  count(): number {
    return (this.#db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n;
  }

  getState(key: string): string | undefined {
    return (this.#db.prepare('SELECT value FROM state WHERE key = ?').get(key) as { value: string } | undefined)?.value;
  }

  setState(key: string, value: string): void {
    this.#db.prepare('INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  close(): void {
    this.#db.close();
  }
}
