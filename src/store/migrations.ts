// Versioned schema. PRAGMA user_version is the applied version; each migration
// runs in its own IMMEDIATE transaction together with the version bump, so a
// crash mid-migration leaves the previous version intact. Append only: never
// edit a released migration, add the next one.

import type { Database } from 'better-sqlite3';
import { LedgerError } from './errors.js';

/** 'TGLG': marks the file as a tollgate ledger (PRAGMA application_id). */
export const APPLICATION_ID = 0x54474c47;

export interface Migration {
  readonly version: number;
  readonly name: string;
  up(db: Database): void;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'tenants, epochs, checkpoints, usage rows, outbox sequence',
    up(db) {
      db.exec(`
        -- AUTOINCREMENT: an id once issued is never issued again, even if a
        -- row were ever deleted, so old usage rows never change owner.
        CREATE TABLE tenants (
          id         INTEGER PRIMARY KEY AUTOINCREMENT CHECK (id >= 0),
          name       TEXT NOT NULL UNIQUE,
          created_at INTEGER NOT NULL                      -- ms since the Unix epoch
        );
        INSERT INTO tenants (id, name, created_at) VALUES (0, 'unattributed', 0);

        -- One run of monotonic kernel counters: a counter map on one boot.
        CREATE TABLE epochs (
          id            INTEGER PRIMARY KEY AUTOINCREMENT,
          host          TEXT NOT NULL,
          boot_id       TEXT NOT NULL,
          counter_id    TEXT NOT NULL,
          started_at    INTEGER NOT NULL,                  -- ms
          checkpoint_at INTEGER NOT NULL,                  -- ms, end of the last recorded interval
          CHECK (checkpoint_at >= started_at),
          UNIQUE (host, boot_id, counter_id)
        );

        -- Last cumulative reading per epoch/tenant/direction. Counters are u64
        -- stored as the i64 with the same bits (src/store/counters.ts).
        CREATE TABLE checkpoints (
          epoch_id  INTEGER NOT NULL REFERENCES epochs(id),
          tenant_id INTEGER NOT NULL REFERENCES tenants(id),
          direction TEXT NOT NULL CHECK (direction IN ('ingress', 'egress')),
          packets   INTEGER NOT NULL,
          bytes     INTEGER NOT NULL,
          PRIMARY KEY (epoch_id, tenant_id, direction)
        ) WITHOUT ROWID;

        -- Billing rows: one per (epoch, tenant, direction, interval) with usage.
        -- seq is the outbox order (monotonic per host, gap-free); the UNIQUE
        -- constraint is the idempotency key.
        CREATE TABLE usage (
          host           TEXT NOT NULL,
          seq            INTEGER NOT NULL CHECK (seq >= 1),
          epoch_id       INTEGER NOT NULL REFERENCES epochs(id),
          tenant_id      INTEGER NOT NULL REFERENCES tenants(id),
          direction      TEXT NOT NULL CHECK (direction IN ('ingress', 'egress')),
          interval_start INTEGER NOT NULL,                 -- ms
          interval_end   INTEGER NOT NULL,                 -- ms
          packets        INTEGER NOT NULL CHECK (packets >= 0),
          bytes          INTEGER NOT NULL CHECK (bytes >= 0),
          CHECK (packets > 0 OR bytes > 0),
          CHECK (interval_start <= interval_end),
          PRIMARY KEY (host, seq),
          UNIQUE (host, epoch_id, tenant_id, direction, interval_end)
        ) WITHOUT ROWID;
        CREATE INDEX usage_by_end ON usage (interval_end);
        CREATE INDEX usage_by_tenant_end ON usage (tenant_id, interval_end);

        -- Last issued outbox sequence per host. Kept apart from usage so a
        -- number is never reissued, even after old rows are pruned.
        CREATE TABLE outbox_seq (
          host     TEXT PRIMARY KEY,
          last_seq INTEGER NOT NULL CHECK (last_seq >= 0)
        ) WITHOUT ROWID;
      `);
      db.pragma(`application_id = ${APPLICATION_ID}`);
    },
  },
  {
    version: 2,
    name: 'traffic classes: classes table, class in checkpoints, class and billable flag in usage rows',
    up(db) {
      // SQLite cannot change a primary key or UNIQUE constraint in place, so
      // checkpoints and usage are rebuilt: rename, create, copy, drop. Rows
      // recorded before classes existed were all default-class traffic and
      // all billed, hence class 0 and billable 1.
      db.exec(`
        -- Issued like tenant ids: AUTOINCREMENT never reuses an id.
        CREATE TABLE classes (
          id         INTEGER PRIMARY KEY AUTOINCREMENT CHECK (id >= 0),
          name       TEXT NOT NULL UNIQUE,
          created_at INTEGER NOT NULL                      -- ms since the Unix epoch
        );
        -- The policy's fallback class (DEFAULT_CLASS in src/policy/schema.ts).
        INSERT INTO classes (id, name, created_at) VALUES (0, 'internet', 0);

        ALTER TABLE checkpoints RENAME TO checkpoints_v1;
        CREATE TABLE checkpoints (
          epoch_id  INTEGER NOT NULL REFERENCES epochs(id),
          tenant_id INTEGER NOT NULL REFERENCES tenants(id),
          class_id  INTEGER NOT NULL REFERENCES classes(id),
          direction TEXT NOT NULL CHECK (direction IN ('ingress', 'egress')),
          packets   INTEGER NOT NULL,
          bytes     INTEGER NOT NULL,
          PRIMARY KEY (epoch_id, tenant_id, class_id, direction)
        ) WITHOUT ROWID;
        INSERT INTO checkpoints (epoch_id, tenant_id, class_id, direction, packets, bytes)
          SELECT epoch_id, tenant_id, 0, direction, packets, bytes FROM checkpoints_v1;
        DROP TABLE checkpoints_v1;

        -- billable: the class's flag in the policy when the row was exported.
        -- It is not part of the idempotency key: one counter is one class.
        ALTER TABLE usage RENAME TO usage_v1;
        CREATE TABLE usage (
          host           TEXT NOT NULL,
          seq            INTEGER NOT NULL CHECK (seq >= 1),
          epoch_id       INTEGER NOT NULL REFERENCES epochs(id),
          tenant_id      INTEGER NOT NULL REFERENCES tenants(id),
          class_id       INTEGER NOT NULL REFERENCES classes(id),
          direction      TEXT NOT NULL CHECK (direction IN ('ingress', 'egress')),
          billable       INTEGER NOT NULL CHECK (billable IN (0, 1)),
          interval_start INTEGER NOT NULL,                 -- ms
          interval_end   INTEGER NOT NULL,                 -- ms
          packets        INTEGER NOT NULL CHECK (packets >= 0),
          bytes          INTEGER NOT NULL CHECK (bytes >= 0),
          CHECK (packets > 0 OR bytes > 0),
          CHECK (interval_start <= interval_end),
          PRIMARY KEY (host, seq),
          UNIQUE (host, epoch_id, tenant_id, class_id, direction, interval_end)
        ) WITHOUT ROWID;
        INSERT INTO usage (host, seq, epoch_id, tenant_id, class_id, direction, billable, interval_start, interval_end, packets, bytes)
          SELECT host, seq, epoch_id, tenant_id, 0, direction, 1, interval_start, interval_end, packets, bytes FROM usage_v1;
        DROP TABLE usage_v1; -- and its indexes, recreated below
        CREATE INDEX usage_by_end ON usage (interval_end);
        CREATE INDEX usage_by_tenant_end ON usage (tenant_id, interval_end);
        CREATE INDEX usage_by_class_end ON usage (class_id, interval_end);
      `);
    },
  },
  {
    version: 3,
    name: 'per-container usage: container_checkpoints and container_usage',
    up(db) {
      db.exec(`
        -- Last cumulative reading per epoch/container slot/direction, stored
        -- like checkpoints. Keyed by slot, not container: a slot handed to a
        -- new container keeps counting from where the old one stopped.
        CREATE TABLE container_checkpoints (
          epoch_id  INTEGER NOT NULL REFERENCES epochs(id),
          slot      INTEGER NOT NULL CHECK (slot BETWEEN 1 AND 65535),
          direction TEXT NOT NULL CHECK (direction IN ('ingress', 'egress')),
          packets   INTEGER NOT NULL,
          bytes     INTEGER NOT NULL,
          PRIMARY KEY (epoch_id, slot, direction)
        ) WITHOUT ROWID;

        -- A breakdown of the billing rows by container, written in the same
        -- transaction; not in the outbox (billing stays per tenant and class).
        -- The UNIQUE constraint is the idempotency key.
        CREATE TABLE container_usage (
          host           TEXT NOT NULL,
          epoch_id       INTEGER NOT NULL REFERENCES epochs(id),
          slot           INTEGER NOT NULL CHECK (slot BETWEEN 1 AND 65535),
          container_id   TEXT NOT NULL CHECK (container_id <> ''),
          runtime        TEXT NOT NULL CHECK (runtime <> ''),
          tenant_id      INTEGER NOT NULL REFERENCES tenants(id),
          direction      TEXT NOT NULL CHECK (direction IN ('ingress', 'egress')),
          interval_start INTEGER NOT NULL,                 -- ms
          interval_end   INTEGER NOT NULL,                 -- ms
          packets        INTEGER NOT NULL CHECK (packets >= 0),
          bytes          INTEGER NOT NULL CHECK (bytes >= 0),
          CHECK (packets > 0 OR bytes > 0),
          CHECK (interval_start <= interval_end),
          UNIQUE (host, epoch_id, slot, direction, interval_end)
        );
        CREATE INDEX container_usage_by_end ON container_usage (interval_end);
      `);
    },
  },
  {
    version: 4,
    name: 'closed invoices, immutable',
    up(db) {
      db.exec(`
        -- One row per tenant and closed billing period: the invoice as issued.
        -- cut is the JSON object {host: last outbox seq} of the usage rows it
        -- covers (its own period's, and late rows of earlier closed periods,
        -- which it bills as adjustments); plan is the plan it was rated with.
        CREATE TABLE invoices (
          tenant_id    INTEGER NOT NULL REFERENCES tenants(id),
          period_start INTEGER NOT NULL,                   -- ms
          period_end   INTEGER NOT NULL,                   -- ms
          period_id    TEXT NOT NULL,
          cut          TEXT NOT NULL,
          plan         TEXT NOT NULL,
          document     TEXT NOT NULL,
          sha256       TEXT NOT NULL,
          closed_at    INTEGER NOT NULL,                   -- ms
          CHECK (period_start < period_end),
          PRIMARY KEY (tenant_id, period_start)
        ) WITHOUT ROWID;
        -- A closed period never changes: late usage goes to a later invoice.
        CREATE TRIGGER invoices_never_change BEFORE UPDATE ON invoices
          BEGIN SELECT RAISE(ABORT, 'closed invoices never change'); END;
        CREATE TRIGGER invoices_never_go BEFORE DELETE ON invoices
          BEGIN SELECT RAISE(ABORT, 'closed invoices are never deleted'); END;
      `);
    },
  },
  {
    version: 5,
    name: 'alerts and their webhook deliveries (an outbox)',
    up(db) {
      db.exec(`
        -- An alert is recorded once per idempotency key (the same threshold of
        -- the same quota and period raises one alert, however often it is seen).
        CREATE TABLE alerts (
          id         INTEGER PRIMARY KEY AUTOINCREMENT,
          key        TEXT NOT NULL UNIQUE CHECK (key <> ''),
          created_at INTEGER NOT NULL,                     -- ms
          body       TEXT NOT NULL                         -- JSON, as POSTed
        );
        -- One delivery per alert and webhook, retried until a 2xx or the last attempt.
        CREATE TABLE alert_deliveries (
          alert_id     INTEGER NOT NULL REFERENCES alerts(id),
          webhook      TEXT NOT NULL,
          attempts     INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
          next_at      INTEGER,                            -- ms; NULL once delivered or given up
          delivered_at INTEGER,                            -- ms
          last_error   TEXT,
          PRIMARY KEY (alert_id, webhook)
        ) WITHOUT ROWID;
        CREATE INDEX alert_deliveries_due ON alert_deliveries (next_at) WHERE next_at IS NOT NULL;
      `);
    },
  },
];

export function latestVersion(migrations: readonly Migration[] = MIGRATIONS): number {
  return migrations.length === 0 ? 0 : migrations[migrations.length - 1].version;
}

function checkList(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration list is broken: entry ${i} has version ${m.version}, expected ${i + 1}`);
  });
}

function userVersion(db: Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/**
 * Refuses files that are not ours and schemas newer than this code. Shared by
 * the writer (before migrating) and read-only openers.
 */
export function checkCompatible(db: Database, path: string, migrations: readonly Migration[] = MIGRATIONS): number {
  const appId = db.pragma('application_id', { simple: true }) as number;
  const version = userVersion(db);
  const tables = (db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").get() as { n: number }).n;
  if (appId !== APPLICATION_ID && (appId !== 0 || version !== 0 || tables !== 0)) {
    throw new LedgerError('NOT_A_LEDGER', `${path} is not a tollgate ledger (application_id ${appId}, user_version ${version}, ${tables} schema objects)`);
  }
  const latest = latestVersion(migrations);
  if (version > latest) {
    throw new LedgerError(
      'SCHEMA_TOO_NEW',
      `${path} has ledger schema version ${version} but this tollgate only knows up to version ${latest}; upgrade tollgate instead of opening a newer ledger with older code`,
    );
  }
  return version;
}

/** Brings the schema to the latest version; returns the versions applied. */
export function migrate(db: Database, path: string, migrations: readonly Migration[] = MIGRATIONS): number[] {
  checkList(migrations);
  checkCompatible(db, path, migrations);
  const applied: number[] = [];
  for (const m of migrations) {
    if (m.version <= userVersion(db)) continue;
    try {
      db.transaction(() => {
        // Re-read under the write lock: another process may have migrated
        // between our check and our BEGIN IMMEDIATE.
        const current = checkCompatible(db, path, migrations);
        if (current >= m.version) return;
        m.up(db);
        db.pragma(`user_version = ${m.version}`);
        applied.push(m.version);
      }).immediate();
    } catch (cause) {
      if (cause instanceof LedgerError) throw cause;
      throw new LedgerError('MIGRATION_FAILED', `${path}: migration ${m.version} (${m.name}) failed and was rolled back: ${(cause as Error).message}`, { cause });
    }
  }
  return applied;
}
