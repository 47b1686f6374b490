import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import { LedgerError } from './errors.js';
import { Ledger } from './ledger.js';
import { MIGRATIONS, latestVersion, migrate, type Migration } from './migrations.js';

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
  assert.deepEqual(migrate(db, path), [1]);
  assert.equal(version(db), 1);
  assert.ok(hasTable(db, 'usage'));
  assert.deepEqual(migrate(db, path), []);
});

test('a failing migration is rolled back whole and leaves the previous version', (t) => {
  const { db, path } = rawDb(t);
  const broken: Migration[] = [
    ...MIGRATIONS,
    {
      version: 2,
      name: 'half-done',
      up(d) {
        d.exec('CREATE TABLE invoices (id INTEGER PRIMARY KEY)');
        d.exec('INSERT INTO no_such_table VALUES (1)');
      },
    },
  ];
  assert.throws(
    () => migrate(db, path, broken),
    (err: unknown) => err instanceof LedgerError && err.code === 'MIGRATION_FAILED' && /migration 2 \(half-done\)/.test(err.message),
  );
  assert.equal(version(db), 1, 'version 1 committed, version 2 not');
  assert.ok(!hasTable(db, 'invoices'), 'the partial DDL of migration 2 was rolled back');
});

test('a later migration applies on top, and older code then refuses the newer ledger', (t) => {
  const { db, path } = rawDb(t);
  migrate(db, path);
  const next: Migration[] = [...MIGRATIONS, { version: 2, name: 'notes', up: (d) => d.exec('CREATE TABLE notes (x TEXT)') }];
  assert.deepEqual(migrate(db, path, next), [2]);
  assert.equal(version(db), 2);
  assert.throws(
    () => Ledger.open(path, { hostId: 'h' }),
    (err: unknown) => err instanceof LedgerError && err.code === 'SCHEMA_TOO_NEW' && /upgrade tollgate/.test(err.message),
  );
});

test('a gap in the migration list is a programming error', (t) => {
  const { db, path } = rawDb(t);
  assert.throws(() => migrate(db, path, [...MIGRATIONS, { version: 3, name: 'gap', up() {} }]), /expected 2/);
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
