// Opening a SQLite file that belongs to one tollgate store: an empty file is
// made that store (schema, application_id, user_version in one transaction);
// any other file, the ledger included, is refused before anything in it
// changes, journal mode included.
import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';

export interface OwnFile {
  /** PRAGMA application_id marking the store, e.g. 0x54475343 ('TGSC'). */
  applicationId: number;
  version: number;
  /** "syscall store": for error messages. */
  what: string;
  /** SQL creating the schema of `version`. */
  schema: string;
}

export function openOwnFile(path: string, own: OwnFile): Db {
  const db = new Database(path);
  try {
    db.pragma('busy_timeout = 5000');
    const fresh = (): boolean => {
      const app = db.pragma('application_id', { simple: true }) as number;
      const version = db.pragma('user_version', { simple: true }) as number;
      const tables = (db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'").get() as { n: number }).n;
      if (app === 0 && version === 0 && tables === 0) return true;
      if (app !== own.applicationId) throw new Error(`${path} is not a tollgate ${own.what} (application_id ${app})`);
      if (version !== own.version) throw new Error(`${path} has ${own.what} schema ${version}, this tollgate reads ${own.version}`);
      return false;
    };
    fresh();
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.transaction(() => {
      if (!fresh()) return; // another process made it the store meanwhile
      db.exec(own.schema);
      db.pragma(`application_id = ${own.applicationId}`);
      db.pragma(`user_version = ${own.version}`);
    }).immediate();
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}
