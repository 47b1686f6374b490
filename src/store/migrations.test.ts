import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import { DEFAULT_CLASS } from '../policy/schema.js';
import { LedgerError } from './errors.js';
import { Ledger } from './ledger.js';
import { APPLICATION_ID, MIGRATIONS, latestVersion, migrate, type Migration } from './migrations.js';

function rawDb(t: TestContext): { db: Database.Database; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tg-ledger-mig-'));
  const path = join(dir, 'ledger.db');
  const db = new Database(path);
  t.after(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { db, path };
}

const version = (db: Database.Database) => db.pragma('user_version', { simple: true });
const hasTable = (db: Database.Database, name: string) => db.prepare('SELECT 1 FROM sqlite_master WHERE name = ?').get(name) !== undefined;

test('the migration list is contiguous from version 1', () => {
  MIGRATIONS.forEach((m, i) => assert.equal(m.version, i + 1));
  assert.equal(latestVersion(), MIGRATIONS.length);
});

test('migrate applies pending migrations once and is idempotent', (t) => {
  const { db, path } = rawDb(t);
  assert.deepEqual(migrate(db, path), [1, 2, 3, 4, 5]);
  assert.ok(hasTable(db, 'invoices'));
  assert.equal(version(db), latestVersion());
  assert.ok(hasTable(db, 'usage'));
  assert.ok(hasTable(db, 'classes'));
  assert.ok(hasTable(db, 'container_usage'));
  assert.deepEqual(migrate(db, path), []);
});

const NEXT = latestVersion() + 1;

test('a failing migration is rolled back whole and leaves the previous version', (t) => {
  const { db, path } = rawDb(t);
  const broken: Migration[] = [
    ...MIGRATIONS,
    {
      version: NEXT,
      name: 'half-done',
      up(d) {
        d.exec('CREATE TABLE half_done (id INTEGER PRIMARY KEY)');
        d.exec('INSERT INTO no_such_table VALUES (1)');
      },
    },
  ];
  assert.throws(
    () => migrate(db, path, broken),
    (err: unknown) => err instanceof LedgerError && err.code === 'MIGRATION_FAILED' && err.message.includes(`migration ${NEXT} (half-done)`),
  );
  assert.equal(version(db), latestVersion(), 'the released migrations committed, the broken one not');
  assert.ok(!hasTable(db, 'half_done'), 'the partial DDL of the broken migration was rolled back');
});

test('a later migration applies on top, and older code then refuses the newer ledger', (t) => {
  const { db, path } = rawDb(t);
  migrate(db, path);
  const next: Migration[] = [...MIGRATIONS, { version: NEXT, name: 'notes', up: (d) => d.exec('CREATE TABLE notes (x TEXT)') }];
  assert.deepEqual(migrate(db, path, next), [NEXT]);
  assert.equal(version(db), NEXT);
  assert.throws(
    () => Ledger.open(path, { hostId: 'h' }),
    (err: unknown) => err instanceof LedgerError && err.code === 'SCHEMA_TOO_NEW' && /upgrade tollgate/.test(err.message),
  );
});

test('a gap in the migration list is a programming error', (t) => {
  const { db, path } = rawDb(t);
  assert.throws(() => migrate(db, path, [...MIGRATIONS, { version: NEXT + 1, name: 'gap', up() {} }]), new RegExp(`expected ${NEXT}`));
  assert.equal(version(db), 0, 'nothing applied');
});

test('openReadOnly refuses a ledger the agent has not migrated yet', (t) => {
  const { db, path } = rawDb(t);
  db.pragma('journal_mode = WAL'); // an empty but valid SQLite file at version 0
  assert.throws(
    () => Ledger.openReadOnly(path, { hostId: 'h' }),
    (err: unknown) => err instanceof LedgerError && err.code === 'SCHEMA_TOO_OLD',
  );
});

// The schema of a released version-1 ledger, frozen here as such files exist
// in the field; the first test below proves migration 1 still creates it.
const V1_SCHEMA = `
  CREATE TABLE tenants (
    id         INTEGER PRIMARY KEY AUTOINCREMENT CHECK (id >= 0),
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
  );
  INSERT INTO tenants (id, name, created_at) VALUES (0, 'unattributed', 0);
  CREATE TABLE epochs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    host          TEXT NOT NULL,
    boot_id       TEXT NOT NULL,
    counter_id    TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    checkpoint_at INTEGER NOT NULL,
    CHECK (checkpoint_at >= started_at),
    UNIQUE (host, boot_id, counter_id)
  );
  CREATE TABLE checkpoints (
    epoch_id  INTEGER NOT NULL REFERENCES epochs(id),
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    direction TEXT NOT NULL CHECK (direction IN ('ingress', 'egress')),
    packets   INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    PRIMARY KEY (epoch_id, tenant_id, direction)
  ) WITHOUT ROWID;
  CREATE TABLE usage (
    host           TEXT NOT NULL,
    seq            INTEGER NOT NULL CHECK (seq >= 1),
    epoch_id       INTEGER NOT NULL REFERENCES epochs(id),
    tenant_id      INTEGER NOT NULL REFERENCES tenants(id),
    direction      TEXT NOT NULL CHECK (direction IN ('ingress', 'egress')),
    interval_start INTEGER NOT NULL,
    interval_end   INTEGER NOT NULL,
    packets        INTEGER NOT NULL CHECK (packets >= 0),
    bytes          INTEGER NOT NULL CHECK (bytes >= 0),
    CHECK (packets > 0 OR bytes > 0),
    CHECK (interval_start <= interval_end),
    PRIMARY KEY (host, seq),
    UNIQUE (host, epoch_id, tenant_id, direction, interval_end)
  ) WITHOUT ROWID;
  CREATE INDEX usage_by_end ON usage (interval_end);
  CREATE INDEX usage_by_tenant_end ON usage (tenant_id, interval_end);
  CREATE TABLE outbox_seq (
    host     TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL CHECK (last_seq >= 0)
  ) WITHOUT ROWID;
`;

/** The schema objects of a database, comments and layout ignored. */
function schemaOf(db: Database.Database): Array<[string, string]> {
  const rows = db.prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name").all() as Array<{ name: string; sql: string }>;
  return rows.map((r) => [r.name, r.sql.replace(/--[^\n]*/g, '').replace(/\s+/g, ' ')]);
}

test('the frozen version-1 schema is what migration 1 creates', (t) => {
  const a = rawDb(t);
  migrate(a.db, a.path, MIGRATIONS.slice(0, 1));
  const b = rawDb(t);
  b.db.exec(V1_SCHEMA);
  assert.deepEqual(schemaOf(b.db), schemaOf(a.db), 'a released migration was edited, or the frozen copy is wrong');
});

test('a version-1 ledger migrates: its checkpoints and rows become the default class, billable, and recording continues', (t) => {
  const { db, path } = rawDb(t);
  const T0 = Date.UTC(2025, 0, 1);
  const at = (s: number) => T0 + s * 1000;
  const big = 2n ** 63n + 5n; // a checkpoint stored as a negative i64
  db.exec(V1_SCHEMA);
  db.pragma(`application_id = ${APPLICATION_ID}`);
  db.pragma('user_version = 1');
  db.exec(`
    INSERT INTO tenants (id, name, created_at) VALUES (1, 'acme', ${T0}), (2, 'globex', ${T0});
    INSERT INTO epochs (id, host, boot_id, counter_id, started_at, checkpoint_at) VALUES (1, 'host-a', 'boot-1', '17', ${at(0)}, ${at(20)});
    INSERT INTO checkpoints VALUES (1, 1, 'egress', 30, 3000), (1, 0, 'ingress', 2, 120), (1, 2, 'ingress', 2, ${BigInt.asIntN(64, big)});
    INSERT INTO usage VALUES
      ('host-a', 1, 1, 1, 'egress', ${at(0)}, ${at(10)}, 10, 1000),
      ('host-a', 2, 1, 0, 'ingress', ${at(0)}, ${at(10)}, 2, 120),
      ('host-a', 3, 1, 2, 'ingress', ${at(0)}, ${at(10)}, 1, ${2n ** 62n}),
      ('host-a', 4, 1, 1, 'egress', ${at(10)}, ${at(20)}, 20, 2000),
      ('host-a', 5, 1, 2, 'ingress', ${at(10)}, ${at(20)}, 1, ${2n ** 62n + 5n});
    INSERT INTO outbox_seq VALUES ('host-a', 5);
  `);
  assert.throws(
    () => Ledger.openReadOnly(path, { hostId: 'host-a' }),
    (err: unknown) => err instanceof LedgerError && err.code === 'SCHEMA_TOO_OLD',
    'readers wait for the agent to migrate',
  );

  const l = Ledger.open(path, { hostId: 'host-a' });
  t.after(() => l.close());
  assert.equal(version(l.db), latestVersion());
  assert.deepEqual(l.classes().map((c) => [c.id, c.name]), [[0, DEFAULT_CLASS]]);
  const epoch = { bootId: 'boot-1', counterId: '17' };
  assert.deepEqual(
    l.checkpoint(epoch)!.readings.map((r) => [r.tenantId, r.classId, r.direction, r.packets, r.bytes]),
    [
      [0, 0, 'ingress', 2n, 120n],
      [1, 0, 'egress', 30n, 3000n],
      [2, 0, 'ingress', 2n, big],
    ],
  );
  assert.deepEqual(
    l.outbox(0).map((r) => [r.seq, r.tenant, r.classId, r.class, r.billable, r.direction, r.intervalStart.getTime(), r.intervalEnd.getTime(), r.packets, r.bytes]),
    [
      [1, 'acme', 0, DEFAULT_CLASS, true, 'egress', at(0), at(10), 10n, 1000n],
      [2, 'unattributed', 0, DEFAULT_CLASS, true, 'ingress', at(0), at(10), 2n, 120n],
      [3, 'globex', 0, DEFAULT_CLASS, true, 'ingress', at(0), at(10), 1n, 2n ** 62n],
      [4, 'acme', 0, DEFAULT_CLASS, true, 'egress', at(10), at(20), 20n, 2000n],
      [5, 'globex', 0, DEFAULT_CLASS, true, 'ingress', at(10), at(20), 1n, 2n ** 62n + 5n],
    ],
  );
  assert.deepEqual(
    l.usage({ by: 'tenant' }).map((u) => [u.tenant, u.direction, u.bytes, u.billableBytes]),
    [
      ['unattributed', 'ingress', 120n, 120n],
      ['acme', 'egress', 3000n, 3000n],
      ['globex', 'ingress', big, big],
    ],
  );

  // The agent carries on: deltas against the migrated checkpoints, the outbox
  // sequence continues, and new classes get ids >= 1.
  const mgmt = l.ensureClasses(['mgmt']).get('mgmt')!;
  assert.ok(mgmt >= 1);
  const r = l.recordInterval({
    epoch,
    at: new Date(at(30)),
    readings: [
      { tenantId: 1, classId: 0, direction: 'egress', billable: true, packets: 35n, bytes: 3500n },
      { tenantId: 1, classId: mgmt, direction: 'egress', billable: false, packets: 1n, bytes: 90n },
      { tenantId: 2, classId: 0, direction: 'ingress', billable: true, packets: 2n, bytes: big },
    ],
  });
  assert.deepEqual([r.rows, r.packets, r.bytes], [2, 6n, 590n]);
  assert.deepEqual(
    l.outbox(5).map((x) => [x.seq, x.class, x.billable, x.intervalStart.getTime(), x.packets]),
    [
      [6, DEFAULT_CLASS, true, at(20), 5n],
      [7, 'mgmt', false, at(20), 1n],
    ],
  );

  // Nothing left over from the rebuild, and the indexes are back.
  assert.deepEqual(
    schemaOf(l.db).map(([name]) => name),
    [
      'alert_deliveries', 'alert_deliveries_due', 'alerts', 'checkpoints', 'classes', 'container_checkpoints', 'container_usage', 'container_usage_by_end', 'epochs', 'invoices', 'invoices_never_change', 'invoices_never_go', 'outbox_seq', 'sqlite_sequence', 'tenants',
      'usage', 'usage_by_class_end', 'usage_by_end', 'usage_by_tenant_end',
    ],
  );
  assert.deepEqual(l.integrityCheck(), ['ok']);
  assert.deepEqual(l.db.pragma('foreign_key_check'), []);
});

test('a version-2 ledger migrates to per-container usage: billing rows and checkpoints untouched, container slots count from zero in the adopted epoch', (t) => {
  const { db, path } = rawDb(t);
  const T0 = Date.UTC(2025, 0, 1);
  const at = (s: number) => T0 + s * 1000;
  migrate(db, path, MIGRATIONS.slice(0, 2));
  db.exec(`
    INSERT INTO tenants (id, name, created_at) VALUES (1, 'acme', ${T0});
    INSERT INTO epochs (id, host, boot_id, counter_id, started_at, checkpoint_at) VALUES (1, 'host-a', 'boot-1', '17', ${at(0)}, ${at(10)});
    INSERT INTO checkpoints VALUES (1, 1, 0, 'egress', 10, 1000);
    INSERT INTO usage VALUES ('host-a', 1, 1, 1, 0, 'egress', 1, ${at(0)}, ${at(10)}, 10, 1000);
    INSERT INTO outbox_seq VALUES ('host-a', 1);
  `);
  assert.throws(
    () => Ledger.openReadOnly(path, { hostId: 'host-a' }),
    (err: unknown) => err instanceof LedgerError && err.code === 'SCHEMA_TOO_OLD',
  );

  const l = Ledger.open(path, { hostId: 'host-a' });
  t.after(() => l.close());
  assert.equal(version(l.db), latestVersion());
  assert.deepEqual(l.outbox(0).map((r) => [r.seq, r.tenant, r.packets, r.bytes]), [[1, 'acme', 10n, 1000n]]);
  assert.deepEqual(l.usage({ by: 'container' }), []);
  const epoch = { bootId: 'boot-1', counterId: '17' };
  const r = l.recordInterval({
    epoch,
    at: new Date(at(20)),
    readings: [{ tenantId: 1, classId: 0, direction: 'egress', billable: true, packets: 15n, bytes: 1500n }],
    containers: [{ slot: 1, containerId: 'c-aaa', runtime: 'containerd', tenantId: 1, direction: 'egress', packets: 5n, bytes: 500n }],
  });
  assert.deepEqual([r.epochId, r.rows, r.packets, r.containerRows], [1, 1, 5n, 1]);
  assert.deepEqual(l.outbox(1).map((x) => x.seq), [2]);
  assert.deepEqual(
    l.usage({ by: 'container' }).map((u) => [u.tenant, u.container, u.packets, u.bytes, u.first?.getTime(), u.last?.getTime()]),
    [['acme', 'c-aaa', 5n, 500n, at(10), at(20)]],
  );
  assert.deepEqual(l.integrityCheck(), ['ok']);
  assert.deepEqual(l.db.pragma('foreign_key_check'), []);
});
