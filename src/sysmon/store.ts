// The syscall store: which syscalls each container made, how often, first
// and last seen, in a SQLite file of its own. Containers are keyed by their
// runtime id, so what a container was seen doing survives agent restarts
// and the container's own restarts (same id); seccomp profiles are
// generated from it. Kernel counts reach it as deltas against the last
// reading it stored (its checkpoint), in one transaction with that reading,
// so a crash between two syncs neither loses nor counts anything twice.
import type { Database as Db, Statement } from 'better-sqlite3';
import { openOwnFile } from '../store/own-file.js';

/** 'TGSC' (PRAGMA application_id): a tollgate syscall store. */
const APPLICATION_ID = 0x54475343;

const SCHEMA = `
  CREATE TABLE seen (
    container TEXT NOT NULL,      -- the runtime's 64-hex id
    nr        INTEGER NOT NULL,   -- syscall number (x86_64)
    count     INTEGER NOT NULL CHECK (count > 0),
    first_at  INTEGER NOT NULL,   -- ms since the Unix epoch (the sync that first saw it)
    last_at   INTEGER NOT NULL,
    PRIMARY KEY (container, nr)
  ) WITHOUT ROWID;
  -- The kernel counts the last sync read for a container: which map and
  -- slot, and the slot's counts (JSON array of decimal strings, by number).
  CREATE TABLE checkpoints (
    container TEXT PRIMARY KEY,
    source    TEXT NOT NULL,
    counts    TEXT NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE containers (
    container TEXT PRIMARY KEY,
    runtime   TEXT NOT NULL,
    tenant    TEXT NOT NULL,
    cgroup    TEXT NOT NULL,
    first_at  INTEGER NOT NULL,
    last_at   INTEGER NOT NULL
  ) WITHOUT ROWID;
`;

export interface SeenSyscall {
  nr: number;
  count: bigint;
  firstAt: number;
  lastAt: number;
}

export interface KnownContainer {
  id: string;
  runtime: string;
  tenant: string;
  cgroupPath: string;
  firstAt: number;
  lastAt: number;
}

export interface Reading {
  container: { id: string; runtime: string; tenant: string; cgroupPath: string };
  /** Identifies the counts: the kernel map and slot they were read from. */
  source: string;
  /** Counts by syscall number, as read. */
  counts: readonly bigint[];
}

type ContainerRow = Record<string, string | bigint>;

const known = (r: ContainerRow): KnownContainer => ({
  id: String(r.container), runtime: String(r.runtime), tenant: String(r.tenant), cgroupPath: String(r.cgroup),
  firstAt: Number(r.first_at), lastAt: Number(r.last_at),
});

export class SyscallStore {
  readonly #db: Db;
  readonly #checkpoint: Statement;
  readonly #putCheckpoint: Statement;
  readonly #addSeen: Statement;
  readonly #putContainer: Statement;

  private constructor(db: Db) {
    this.#db = db;
    db.defaultSafeIntegers(true);
    this.#checkpoint = db.prepare('SELECT source, counts FROM checkpoints WHERE container = ?');
    this.#putCheckpoint = db.prepare('INSERT OR REPLACE INTO checkpoints (container, source, counts) VALUES (?, ?, ?)');
    this.#addSeen = db.prepare(`INSERT INTO seen (container, nr, count, first_at, last_at) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (container, nr) DO UPDATE SET count = count + excluded.count, last_at = excluded.last_at`);
    this.#putContainer = db.prepare(`INSERT INTO containers (container, runtime, tenant, cgroup, first_at, last_at) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (container) DO UPDATE SET runtime = excluded.runtime, tenant = excluded.tenant, cgroup = excluded.cgroup, last_at = excluded.last_at`);
  }

  static open(path: string): SyscallStore {
    return new SyscallStore(openOwnFile(path, { applicationId: APPLICATION_ID, version: 1, what: 'syscall store', schema: SCHEMA }));
  }

  /**
   * Adds what each reading counted since its container's checkpoint (all of
   * it when the checkpoint is for another map or slot, or a count went
   * down: the slot was zeroed), then makes the readings the checkpoints.
   * One transaction. Returns how many syscalls were added.
   */
  record(readings: readonly Reading[], at: number): bigint {
    let added = 0n;
    this.#db.transaction(() => {
      for (const r of readings) {
        const cp = this.#checkpoint.get(r.container.id) as { source: string; counts: string } | undefined;
        const base = cp?.source === r.source ? (JSON.parse(cp.counts) as string[]).map(BigInt) : [];
        let changed = false;
        r.counts.forEach((n, nr) => {
          const before = base[nr] ?? 0n;
          const delta = n >= before ? n - before : n;
          if (delta === 0n) return;
          this.#addSeen.run(r.container.id, nr, delta, at, at);
          added += delta;
          changed = true;
        });
        const c = r.container;
        this.#putContainer.run(c.id, c.runtime, c.tenant, c.cgroupPath, at, at);
        if (changed || cp?.source !== r.source) this.#putCheckpoint.run(c.id, r.source, JSON.stringify(r.counts.map(String)));
      }
    }).immediate();
    return added;
  }

  /** The syscalls a container was seen making (last seen at or after `since`), by number. */
  seen(container: string, since = 0): SeenSyscall[] {
    const rows = this.#db.prepare('SELECT nr, count, first_at, last_at FROM seen WHERE container = ? AND last_at >= ? ORDER BY nr')
      .all(container, since) as Array<{ nr: bigint; count: bigint; first_at: bigint; last_at: bigint }>;
    return rows.map((r) => ({ nr: Number(r.nr), count: r.count, firstAt: Number(r.first_at), lastAt: Number(r.last_at) }));
  }

  /** Every container the store has observations of. */
  containers(): KnownContainer[] {
    return (this.#db.prepare('SELECT * FROM containers ORDER BY container').all() as ContainerRow[]).map(known);
  }

  /** One container the store has observations of. */
  container(id: string): KnownContainer | undefined {
    const row = this.#db.prepare('SELECT * FROM containers WHERE container = ?').get(id) as ContainerRow | undefined;
    return row && known(row);
  }

  close(): void {
    this.#db.close();
  }
}
