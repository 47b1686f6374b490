// The billing ledger: turns the kernel's cumulative, monotonic counters per
// (tenant, traffic class, direction) into interval usage rows, exactly once,
// and the per-container counters per (slot, direction) into a breakdown of them.
// Each recordInterval is one IMMEDIATE transaction that writes the deltas AND moves the checkpoint, so a
// crash at any instant leaves either both or neither (docs/ledger.md).

import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { defaultHostId } from './boot.js';
import { checkDelta, checkU64, joinHalves, storedToU64, sumHalvesSql, u64ToStored } from './counters.js';
import { LedgerError, invalid } from './errors.js';
import { checkCompatible, latestVersion, migrate } from './migrations.js';

export type Direction = 'ingress' | 'egress';
export const DIRECTIONS: readonly Direction[] = ['ingress', 'egress'];
export const UNATTRIBUTED_TENANT_ID = 0;
export const UNATTRIBUTED_TENANT = 'unattributed';
/**
 * Id of the policy's fallback class (DEFAULT_CLASS, 'internet', in
 * src/policy/schema.ts): traffic no other class matches. Seeded by migration 2.
 */
export const DEFAULT_CLASS_ID = 0;

/** Identity of one run of monotonic counters. */
export interface EpochKey {
  bootId: string;
  /** Identity of the counter map within the boot, e.g. its kernel map id. */
  counterId: string;
  /**
   * When the counters started from zero (map creation). Used only when this
   * call creates the epoch, as the start of its first interval; defaults to
   * `at` of that first interval.
   */
  startedAt?: Date;
}

export interface Reading {
  tenantId: number;
  /** Issued by ensureClasses; DEFAULT_CLASS_ID for the fallback class. */
  classId: number;
  direction: Direction;
  /**
   * The class's billable flag in the policy when the counters were read.
   * Copied to the usage rows of this interval; not part of the counter's
   * identity, so a policy that flips it does not start a new counter.
   */
  billable: boolean;
  /** Cumulative since the counter map was created (sum over CPUs). */
  packets: bigint;
  bytes: bigint;
}

/** A cumulative counter as a checkpoint keeps it: billable belongs to usage rows. */
export type CheckpointReading = Omit<Reading, 'billable'>;

/**
 * The kernel's counter of one container slot and direction: traffic the cgroup
 * hooks attributed to the container's cgroup. The container, runtime and
 * tenant are what the slot holds now; they label this interval's row only.
 */
export interface ContainerReading {
  /** Assigned by the agent, 1..65535; the counter belongs to the slot. */
  slot: number;
  containerId: string;
  runtime: string;
  tenantId: number;
  direction: Direction;
  /** Cumulative for (slot, direction) since the counter map was created (sum over CPUs). */
  packets: bigint;
  bytes: bigint;
}

export interface IntervalInput {
  epoch: EpochKey;
  /** End of the interval: when the counters were read. */
  at: Date;
  readings: Reading[];
  /** Per-container breakdown, recorded in the same transaction; not billed. */
  containers?: ContainerReading[];
}

export interface IntervalResult {
  epochId: number;
  /** Usage rows written (one per tenant/class/direction with a non-zero delta). */
  rows: number;
  packets: bigint;
  bytes: bigint;
  /** Container usage rows written (one per slot/direction with a non-zero delta). */
  containerRows: number;
}

/** A name the ledger issued an id for: a tenant or a traffic class. */
export interface IssuedName {
  id: number;
  name: string;
  createdAt: Date;
}
export type TenantInfo = IssuedName;
export type ClassInfo = IssuedName;

/** Which usage rows to sum. */
export interface UsageFilter {
  /** Tenant name. */
  tenant?: string;
  /** Class name. */
  class?: string;
  /** Inclusive lower bound on interval_end. */
  since?: Date;
  /** Exclusive upper bound on interval_end. */
  until?: Date;
  /** Only rows recorded by this host; all hosts when absent. */
  host?: string;
}

/**
 * What one usage total sums over: 'tenant-class' keeps every dimension,
 * 'tenant' sums over classes, 'class' sums over tenants; 'container' sums the
 * per-container breakdown instead of the billing rows.
 */
export const USAGE_GROUPINGS = ['tenant-class', 'tenant', 'class', 'container'] as const;
export type UsageGrouping = (typeof USAGE_GROUPINGS)[number];

export interface UsageQuery extends UsageFilter {
  /** Default 'tenant-class'. */
  by?: UsageGrouping;
}

interface UsageSums {
  direction: Direction;
  packets: bigint;
  bytes: bigint;
}

interface UsageSpan {
  /** Earliest interval_start among the summed rows. */
  first: Date | null;
  /** Latest interval_end among the summed rows. */
  last: Date | null;
}

/**
 * by 'tenant-class': one total per tenant, class, billable flag and
 * direction (a class whose flag changed has a total for each flag).
 */
export interface TenantClassUsage extends UsageSums, UsageSpan {
  tenant: string;
  class: string;
  billable: boolean;
}

/** by 'tenant': summed over classes; billable* sum only the rows exported as billable. */
export interface TenantUsage extends UsageSums, UsageSpan {
  tenant: string;
  billablePackets: bigint;
  billableBytes: bigint;
}

/** by 'class': one total per class, billable flag and direction, summed over tenants. */
export interface ClassUsage extends UsageSums, UsageSpan {
  class: string;
  billable: boolean;
}

/** by 'container': one total per tenant, container, runtime and direction (no classes). */
export interface ContainerUsage extends UsageSums, UsageSpan {
  tenant: string;
  container: string;
  runtime: string;
}

export type UsageTotal = TenantClassUsage | TenantUsage | ClassUsage | ContainerUsage;

export interface UsageSeriesQuery extends UsageFilter {
  /** Bucket width in ms; rows fall in the bucket holding their interval_end. */
  bucketMs: number;
}

/** Usage of one tenant, class, billable flag and direction in one bucket. */
export interface UsagePoint {
  tenant: string;
  class: string;
  billable: boolean;
  direction: Direction;
  bucketStart: Date;
  packets: bigint;
  bytes: bigint;
}

export interface EpochCheckpoint {
  epochId: number;
  host: string;
  bootId: string;
  counterId: string;
  startedAt: Date;
  /** End of the last recorded interval. */
  at: Date;
  readings: CheckpointReading[];
}

/** A usage row as the outbox ships it. */
export interface UsageRow {
  host: string;
  seq: number;
  epochId: number;
  bootId: string;
  counterId: string;
  tenantId: number;
  tenant: string;
  classId: number;
  class: string;
  direction: Direction;
  billable: boolean;
  intervalStart: Date;
  intervalEnd: Date;
  packets: bigint;
  bytes: bigint;
}

export interface OpenOptions {
  hostId?: string;
  /** How long a writer waits for another connection's lock, ms. */
  busyTimeoutMs?: number;
}

const MAX_NAME = 200;
const DEFAULT_BUSY_MS = 5000;

type Stmts = ReturnType<typeof prepare>;
type Names = ReturnType<typeof prepareNames>;

/** Tenants and classes are issued the same way, each from its own table. */
function prepareNames(db: Db, table: 'tenants' | 'classes', noun: 'tenant' | 'class', unknown: 'UNKNOWN_TENANT' | 'UNKNOWN_CLASS') {
  return {
    noun,
    unknown,
    exists: db.prepare(`SELECT 1 FROM ${table} WHERE id = ?`).pluck(),
    idByName: db.prepare(`SELECT id FROM ${table} WHERE name = ?`).pluck(),
    insert: db.prepare(`INSERT INTO ${table} (name, created_at) VALUES (?, ?)`),
    all: db.prepare(`SELECT id, name, created_at FROM ${table} ORDER BY id`),
  };
}

function prepare(db: Db) {
  const big = <T extends Statement>(s: T): T => s.safeIntegers(true) as T;
  return {
    tenants: prepareNames(db, 'tenants', 'tenant', 'UNKNOWN_TENANT'),
    classes: prepareNames(db, 'classes', 'class', 'UNKNOWN_CLASS'),
    epochByKey: big(db.prepare('SELECT id, started_at, checkpoint_at FROM epochs WHERE host = ? AND boot_id = ? AND counter_id = ?')),
    insertEpoch: db.prepare('INSERT INTO epochs (host, boot_id, counter_id, started_at, checkpoint_at) VALUES (?, ?, ?, ?, ?)'),
    moveEpoch: db.prepare('UPDATE epochs SET checkpoint_at = ? WHERE id = ?'),
    checkpointsOf: big(db.prepare('SELECT tenant_id, class_id, direction, packets, bytes FROM checkpoints WHERE epoch_id = ?')),
    upsertCheckpoint: db.prepare(
      `INSERT INTO checkpoints (epoch_id, tenant_id, class_id, direction, packets, bytes) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (epoch_id, tenant_id, class_id, direction) DO UPDATE SET packets = excluded.packets, bytes = excluded.bytes`,
    ),
    containerCheckpointsOf: big(db.prepare('SELECT slot, direction, packets, bytes FROM container_checkpoints WHERE epoch_id = ?')),
    upsertContainerCheckpoint: db.prepare(
      `INSERT INTO container_checkpoints (epoch_id, slot, direction, packets, bytes) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (epoch_id, slot, direction) DO UPDATE SET packets = excluded.packets, bytes = excluded.bytes`,
    ),
    insertContainerUsage: db.prepare(
      `INSERT INTO container_usage (host, epoch_id, slot, container_id, runtime, tenant_id, direction, interval_start, interval_end, packets, bytes)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    lastSeq: big(db.prepare('SELECT last_seq FROM outbox_seq WHERE host = ?').pluck()),
    setSeq: db.prepare('INSERT INTO outbox_seq (host, last_seq) VALUES (?, ?) ON CONFLICT (host) DO UPDATE SET last_seq = excluded.last_seq'),
    insertUsage: db.prepare(
      `INSERT INTO usage (host, seq, epoch_id, tenant_id, class_id, direction, billable, interval_start, interval_end, packets, bytes)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    lastExport: db.prepare('SELECT max(checkpoint_at) FROM epochs WHERE host = ?').pluck(),
    lastExportAll: db.prepare('SELECT max(checkpoint_at) FROM epochs').pluck(),
    outbox: big(
      db.prepare(
        `SELECT u.host, u.seq, u.epoch_id, e.boot_id, e.counter_id, u.tenant_id, t.name AS tenant, u.class_id, c.name AS class,
                u.direction, u.billable, u.interval_start, u.interval_end, u.packets, u.bytes
         FROM usage u JOIN epochs e ON e.id = u.epoch_id JOIN tenants t ON t.id = u.tenant_id JOIN classes c ON c.id = u.class_id
         WHERE u.host = ? AND u.seq > ? ORDER BY u.seq LIMIT ?`,
      ),
    ),
  };
}

const DIRECTION_ORDER = "CASE u.direction WHEN 'ingress' THEN 0 ELSE 1 END";

const BILLING_ROWS = 'usage u JOIN tenants t ON t.id = u.tenant_id JOIN classes c ON c.id = u.class_id';

/** Per grouping: the rows summed, and the key columns selected, grouped by and ordered by (ingress first). */
const GROUPINGS: Record<UsageGrouping, { from: string; select: string; group: string; order: string }> = {
  'tenant-class': {
    from: BILLING_ROWS,
    select: 't.name AS tenant, c.name AS class, u.billable',
    group: 'u.tenant_id, u.class_id, u.billable, u.direction',
    order: `u.tenant_id, u.class_id, u.billable DESC, ${DIRECTION_ORDER}`,
  },
  tenant: {
    from: BILLING_ROWS,
    // billable is 0 or 1, so multiplying keeps only the billable rows in the sum.
    select: `t.name AS tenant, ${sumHalvesSql('(u.packets * u.billable)', 'bp')}, ${sumHalvesSql('(u.bytes * u.billable)', 'bb')}`,
    group: 'u.tenant_id, u.direction',
    order: `u.tenant_id, ${DIRECTION_ORDER}`,
  },
  class: {
    from: BILLING_ROWS,
    select: 'c.name AS class, u.billable',
    group: 'u.class_id, u.billable, u.direction',
    order: `u.class_id, u.billable DESC, ${DIRECTION_ORDER}`,
  },
  container: {
    from: 'container_usage u JOIN tenants t ON t.id = u.tenant_id',
    select: 't.name AS tenant, u.container_id AS container, u.runtime',
    group: 'u.tenant_id, u.container_id, u.runtime, u.direction',
    order: `u.tenant_id, u.container_id, u.runtime, ${DIRECTION_ORDER}`,
  },
};

/** Container slots are small integers the agent assigns (the kernel uses 1..4095). */
const MAX_SLOT = 65535;

function checkDate(v: unknown, field: string): number {
  if (!(v instanceof Date)) throw invalid(field, 'must be a Date');
  const ms = v.getTime();
  if (!Number.isFinite(ms)) throw invalid(field, 'is an invalid Date');
  if (ms < 0) throw invalid(field, 'must not be before 1970');
  return ms;
}

function checkText(v: unknown, field: string): string {
  if (typeof v !== 'string') throw invalid(field, `must be a string, got ${typeof v}`);
  if (v.length === 0 || v.length > MAX_NAME) throw invalid(field, `must be 1..${MAX_NAME} characters`);
  if (v.trim() !== v) throw invalid(field, 'must not start or end with whitespace');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(v)) throw invalid(field, 'must not contain control characters');
  return v;
}

function checkDirection(v: unknown, field: string): Direction {
  if (v !== 'ingress' && v !== 'egress') throw invalid(field, `must be 'ingress' or 'egress', got ${JSON.stringify(v)}`);
  return v;
}

function checkId(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalid(field, `must be a non-negative integer, got ${String(v)}`);
  return v;
}

function checkSlot(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > MAX_SLOT) throw invalid(field, `must be an integer from 1 to ${MAX_SLOT}, got ${String(v)}`);
  return v;
}

function checkBoolean(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw invalid(field, `must be a boolean, got ${typeof v}`);
  return v;
}

function checkGrouping(v: unknown): UsageGrouping {
  if (!USAGE_GROUPINGS.includes(v as UsageGrouping)) {
    throw invalid('by', `must be one of ${USAGE_GROUPINGS.map((g) => `'${g}'`).join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v as UsageGrouping;
}

/**
 * Each element of list (objects only) through check, named field[i] in
 * errors; two elements with the same key are refused, named by what.
 */
function checkList<T>(list: unknown, field: string, check: (x: T, f: string) => T, key: (t: T) => string, what: (t: T) => string): T[] {
  if (!Array.isArray(list)) throw invalid(field, 'must be an array');
  const seen = new Set<string>();
  return list.map((x: unknown, i) => {
    const f = `${field}[${i}]`;
    if (x === null || typeof x !== 'object') throw invalid(f, 'must be an object');
    const t = check(x as T, f);
    const k = key(t);
    if (seen.has(k)) throw invalid(f, `duplicate reading for ${what(t)}`);
    seen.add(k);
    return t;
  });
}

const counterKey = (r: { tenantId: number | bigint; classId: number | bigint; direction: Direction }): string => `${r.tenantId}/${r.classId}/${r.direction}`;
const slotKey = (r: { slot: number | bigint; direction: Direction }): string => `${r.slot}/${r.direction}`;

const num = (v: bigint | number): number => Number(v);

type StoredCheckpoint = { tenant_id: bigint; class_id: bigint; direction: Direction; packets: bigint; bytes: bigint };
type StoredContainerCheckpoint = { slot: bigint; direction: Direction; packets: bigint; bytes: bigint };
type Counts = { packets: bigint; bytes: bigint };
type StoredSums = { direction: Direction; p_hi: bigint; p_lo: bigint; b_hi: bigint; b_lo: bigint; first: bigint | null; last: bigint | null };

export class Ledger {
  readonly path: string;
  readonly hostId: string;
  readonly readOnly: boolean;
  #db: Db;
  #s: Stmts;
  #closed = false;

  private constructor(db: Db, path: string, hostId: string, readOnly: boolean) {
    this.#db = db;
    this.path = path;
    this.hostId = hostId;
    this.readOnly = readOnly;
    this.#s = prepare(db);
  }

  /** Opens (creating and migrating as needed) the ledger the agent writes. */
  static open(path: string, opts: OpenOptions = {}): Ledger {
    checkText(path, 'path');
    const hostId = opts.hostId === undefined ? defaultHostId() : checkText(opts.hostId, 'opts.hostId');
    const busy = opts.busyTimeoutMs ?? DEFAULT_BUSY_MS;
    if (!Number.isSafeInteger(busy) || busy < 0) throw invalid('opts.busyTimeoutMs', 'must be a non-negative integer');
    let db: Db;
    try {
      db = new Database(path);
    } catch (cause) {
      throw new LedgerError('OPEN_FAILED', `cannot open ledger ${path}: ${(cause as Error).message}`, { cause });
    }
    try {
      db.pragma(`busy_timeout = ${busy}`);
      // Readers (CLI, API) never block the writer and see only committed
      // intervals; FULL fsyncs the WAL at every commit because we bill from it.
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new LedgerError('OPEN_FAILED', `${path}: cannot enable WAL journal mode (got ${String(mode)})`);
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      migrate(db, path);
      return new Ledger(db, path, hostId, false);
    } catch (err) {
      db.close();
      if (err instanceof LedgerError) throw err;
      throw new LedgerError('OPEN_FAILED', `cannot open ledger ${path}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Opens an existing ledger for reading while the agent writes it. Refuses a
   * schema this code does not match exactly, since it cannot migrate.
   */
  static openReadOnly(path: string, opts: OpenOptions = {}): Ledger {
    checkText(path, 'path');
    if (!existsSync(path)) throw new LedgerError('OPEN_FAILED', `no ledger at ${path}`);
    const hostId = opts.hostId === undefined ? defaultHostId() : checkText(opts.hostId, 'opts.hostId');
    let db: Db;
    try {
      db = new Database(path, { readonly: true, fileMustExist: true });
    } catch (cause) {
      throw new LedgerError('OPEN_FAILED', `cannot open ledger ${path} read-only: ${(cause as Error).message}`, { cause });
    }
    try {
      db.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? DEFAULT_BUSY_MS}`);
      const version = checkCompatible(db, path);
      if (version < latestVersion()) {
        throw new LedgerError('SCHEMA_TOO_OLD', `${path} has ledger schema version ${version}, this code needs ${latestVersion()}; start the agent once to migrate it`);
      }
      return new Ledger(db, path, hostId, true);
    } catch (err) {
      db.close();
      if (err instanceof LedgerError) throw err;
      throw new LedgerError('OPEN_FAILED', `cannot open ledger ${path} read-only: ${(err as Error).message}`, { cause: err });
    }
  }

  #live(write: boolean): void {
    if (this.#closed) throw new LedgerError('CLOSED', `ledger ${this.path} is closed`);
    if (write && this.readOnly) throw new LedgerError('READ_ONLY', `ledger ${this.path} was opened read-only`);
  }

  /**
   * Issues ids for new tenant names and returns the id of every name given.
   * Ids are >= 1, stable, and never reissued to another name;
   * UNATTRIBUTED_TENANT maps to 0.
   */
  ensureTenants(names: string[]): Map<string, number> {
    return this.#ensureNames(this.#s.tenants, names);
  }

  tenants(): TenantInfo[] {
    return this.#issuedNames(this.#s.tenants);
  }

  /**
   * Issues ids for new traffic class names, exactly like ensureTenants: ids
   * >= 1, stable, never reissued; the default class 'internet' maps to
   * DEFAULT_CLASS_ID (0).
   */
  ensureClasses(names: string[]): Map<string, number> {
    return this.#ensureNames(this.#s.classes, names);
  }

  classes(): ClassInfo[] {
    return this.#issuedNames(this.#s.classes);
  }

  #ensureNames(n: Names, names: string[]): Map<string, number> {
    this.#live(true);
    if (!Array.isArray(names)) throw invalid('names', `must be an array of ${n.noun} names`);
    names.forEach((x, i) => checkText(x, `names[${i}]`));
    const now = Date.now();
    return this.#db
      .transaction(() => {
        const out = new Map<string, number>();
        for (const name of names) {
          // Look up before inserting: an INSERT that hits the UNIQUE name
          // still uses up an AUTOINCREMENT id, and the kernel indexes
          // fixed-size counter arrays by id, so every policy reload would
          // waste slots.
          const id = (n.idByName.get(name) as number | undefined) ?? Number(n.insert.run(name, now).lastInsertRowid);
          out.set(name, id);
        }
        return out;
      })
      .immediate();
  }

  #issuedNames(n: Names): IssuedName[] {
    this.#live(false);
    return (n.all.all() as Array<{ id: number; name: string; created_at: number }>).map((r) => ({
      id: r.id,
      name: r.name,
      createdAt: new Date(r.created_at),
    }));
  }

  /**
   * Records one export interval of cumulative counters: per reading, the delta
   * since the epoch's checkpoint becomes a usage row and the reading becomes
   * the new checkpoint, all in one transaction; container readings likewise
   * become container usage rows and container checkpoints in that same
   * transaction. A reading below its checkpoint rejects the whole interval and
   * writes nothing.
   */
  recordInterval(r: IntervalInput): IntervalResult {
    this.#live(true);
    if (r === null || typeof r !== 'object') throw invalid('interval', 'must be an object');
    if (r.epoch === null || typeof r.epoch !== 'object') throw invalid('epoch', 'must be an object');
    const bootId = checkText(r.epoch.bootId, 'epoch.bootId');
    const counterId = checkText(r.epoch.counterId, 'epoch.counterId');
    const atMs = checkDate(r.at, 'at');
    const startedMs = r.epoch.startedAt === undefined ? atMs : checkDate(r.epoch.startedAt, 'epoch.startedAt');
    if (startedMs > atMs) throw invalid('epoch.startedAt', `${r.epoch.startedAt?.toISOString()} is after the interval end ${r.at.toISOString()}`);
    const readings = checkList(r.readings, 'readings', (x: Reading, f): Reading => ({
      tenantId: checkId(x.tenantId, `${f}.tenantId`),
      classId: checkId(x.classId, `${f}.classId`),
      direction: checkDirection(x.direction, `${f}.direction`),
      billable: checkBoolean(x.billable, `${f}.billable`),
      packets: checkU64(x.packets, `${f}.packets`),
      bytes: checkU64(x.bytes, `${f}.bytes`),
    }), counterKey, (x) => `tenant ${x.tenantId} class ${x.classId} ${x.direction}`);
    const containers = checkList(r.containers === undefined ? [] : r.containers, 'containers', (x: ContainerReading, f): ContainerReading => ({
      slot: checkSlot(x.slot, `${f}.slot`),
      containerId: checkText(x.containerId, `${f}.containerId`),
      runtime: checkText(x.runtime, `${f}.runtime`),
      tenantId: checkId(x.tenantId, `${f}.tenantId`),
      direction: checkDirection(x.direction, `${f}.direction`),
      packets: checkU64(x.packets, `${f}.packets`),
      bytes: checkU64(x.bytes, `${f}.bytes`),
    }), slotKey, (x) => `container slot ${x.slot} ${x.direction}`);

    const s = this.#s;
    const host = this.hostId;
    return this.#db
      .transaction((): IntervalResult => {
        const found = s.epochByKey.get(host, bootId, counterId) as { id: bigint; started_at: bigint; checkpoint_at: bigint } | undefined;
        let epochId: number;
        let fromMs: number;
        if (found === undefined) {
          epochId = num(s.insertEpoch.run(host, bootId, counterId, startedMs, atMs).lastInsertRowid);
          fromMs = startedMs;
        } else {
          epochId = num(found.id);
          fromMs = num(found.checkpoint_at);
          // Strictly later: an equal end would collide with the idempotency
          // key, an earlier one would make intervals overlap. Nothing is lost
          // by refusing: the next accepted reading carries the whole delta.
          if (atMs <= fromMs) {
            throw new LedgerError(
              'INTERVAL_NOT_AFTER_CHECKPOINT',
              `at: interval end ${r.at.toISOString()} is not after epoch ${epochId}'s last checkpoint ${new Date(fromMs).toISOString()} (clock stepped back or interval recorded twice)`,
              { field: 'at' },
            );
          }
          s.moveEpoch.run(atMs, epochId);
        }

        const stored = (c: Counts): Counts => ({ packets: storedToU64(c.packets), bytes: storedToU64(c.bytes) });
        const prev = new Map<string, Counts>();
        for (const c of s.checkpointsOf.all(epochId) as StoredCheckpoint[]) {
          prev.set(counterKey({ tenantId: c.tenant_id, classId: c.class_id, direction: c.direction }), stored(c));
        }
        const prevSlots = new Map<string, Counts>();
        for (const c of s.containerCheckpointsOf.all(epochId) as StoredContainerCheckpoint[]) prevSlots.set(slotKey(c), stored(c));

        /** reading - checkpoint (0 without one); `what` names the counter in the regression message. */
        const deltaOf = (rd: Counts, cp: Counts | undefined, f: string, what: string): Counts => {
          const base = cp ?? { packets: 0n, bytes: 0n };
          for (const k of ['packets', 'bytes'] as const) {
            if (rd[k] < base[k]) {
              throw new LedgerError(
                'COUNTER_REGRESSION',
                `${f}.${k}: ${what} ${k} went from ${base[k]} to ${rd[k]} within epoch ${epochId} (boot ${bootId}, counter ${counterId}); ` +
                  'a counter that restarted needs a new epoch (boot id or counter id); interval rejected, nothing written',
                { field: `${f}.${k}` },
              );
            }
          }
          return { packets: checkDelta(rd.packets - base.packets, `${f}.packets`), bytes: checkDelta(rd.bytes - base.bytes, `${f}.bytes`) };
        };
        const checkTenantIssued = (tenantId: number, f: string): void => {
          if (tenantId === UNATTRIBUTED_TENANT_ID || s.tenants.exists.get(tenantId) !== undefined) return;
          throw new LedgerError('UNKNOWN_TENANT', `${f}.tenantId: tenant id ${tenantId} was never issued by this ledger but has traffic; interval rejected`, {
            field: `${f}.tenantId`,
          });
        };
        const moved = (d: Counts): boolean => d.packets !== 0n || d.bytes !== 0n;

        // Plan every row before writing any, so a regression anywhere is
        // reported against the input and not half-applied (the transaction
        // would roll back anyway; this keeps the error precise).
        const plan: Array<{ r: Reading; d: Counts }> = [];
        readings.forEach((rd, i) => {
          const f = `readings[${i}]`;
          const cp = prev.get(counterKey(rd));
          const d = deltaOf(rd, cp, f, `tenant ${rd.tenantId} class ${rd.classId} ${rd.direction}`);
          // A zero reading never seen before writes nothing, so callers may
          // pass whole counter arrays including unused tenant and class slots.
          // A stored checkpoint proves both ids exist (foreign keys).
          if (!moved(d)) return;
          if (cp === undefined) checkTenantIssued(rd.tenantId, f);
          if (cp === undefined && rd.classId !== DEFAULT_CLASS_ID && s.classes.exists.get(rd.classId) === undefined) {
            throw new LedgerError('UNKNOWN_CLASS', `${f}.classId: class id ${rd.classId} was never issued by this ledger but has traffic; interval rejected`, {
              field: `${f}.classId`,
            });
          }
          plan.push({ r: rd, d });
        });
        const containerPlan: Array<{ c: ContainerReading; d: Counts }> = [];
        containers.forEach((c, i) => {
          const f = `containers[${i}]`;
          // The checkpoint belongs to the slot, whoever held it: a slot handed
          // to a new container continues from it, and the new container's
          // first row carries only its own traffic because the agent reassigns
          // a slot only after the old container's last traffic was recorded.
          const d = deltaOf(c, prevSlots.get(slotKey(c)), f, `container slot ${c.slot} (${c.containerId}) ${c.direction}`);
          if (!moved(d)) return;
          // The slot's checkpoint proves nothing about this tenant: slots change hands.
          checkTenantIssued(c.tenantId, f);
          containerPlan.push({ c, d });
        });

        let seq = BigInt((s.lastSeq.get(host) as bigint | undefined) ?? 0n);
        let packets = 0n;
        let bytes = 0n;
        for (const p of plan) {
          seq += 1n;
          s.insertUsage.run(host, seq, epochId, p.r.tenantId, p.r.classId, p.r.direction, p.r.billable ? 1 : 0, fromMs, atMs, p.d.packets, p.d.bytes);
          s.upsertCheckpoint.run(epochId, p.r.tenantId, p.r.classId, p.r.direction, u64ToStored(p.r.packets), u64ToStored(p.r.bytes));
          packets += p.d.packets;
          bytes += p.d.bytes;
        }
        if (plan.length > 0) s.setSeq.run(host, seq);
        for (const { c, d } of containerPlan) {
          s.insertContainerUsage.run(host, epochId, c.slot, c.containerId, c.runtime, c.tenantId, c.direction, fromMs, atMs, d.packets, d.bytes);
          s.upsertContainerCheckpoint.run(epochId, c.slot, c.direction, u64ToStored(c.packets), u64ToStored(c.bytes));
        }
        return { epochId, rows: plan.length, packets, bytes, containerRows: containerPlan.length };
      })
      .immediate();
  }

  /** The epoch's last checkpoint, or null if it was never recorded. */
  checkpoint(epoch: { bootId: string; counterId: string }, host: string = this.hostId): EpochCheckpoint | null {
    this.#live(false);
    const bootId = checkText(epoch?.bootId, 'epoch.bootId');
    const counterId = checkText(epoch?.counterId, 'epoch.counterId');
    const found = this.#s.epochByKey.get(host, bootId, counterId) as { id: bigint; started_at: bigint; checkpoint_at: bigint } | undefined;
    if (found === undefined) return null;
    const readings: CheckpointReading[] = (this.#s.checkpointsOf.all(found.id) as StoredCheckpoint[]).map((c) => ({
      tenantId: num(c.tenant_id),
      classId: num(c.class_id),
      direction: c.direction,
      packets: storedToU64(c.packets),
      bytes: storedToU64(c.bytes),
    }));
    readings.sort((a, b) => a.tenantId - b.tenantId || a.classId - b.classId || a.direction.localeCompare(b.direction));
    return {
      epochId: num(found.id),
      host,
      bootId,
      counterId,
      startedAt: new Date(num(found.started_at)),
      at: new Date(num(found.checkpoint_at)),
      readings,
    };
  }

  #where(q: UsageFilter): { sql: string; params: Record<string, unknown> } {
    const conds: string[] = [];
    const params: Record<string, unknown> = {};
    if (q.tenant !== undefined) {
      conds.push('u.tenant_id = @tenant');
      params.tenant = this.#idOf(this.#s.tenants, q.tenant);
    }
    if (q.class !== undefined) {
      conds.push('u.class_id = @class');
      params.class = this.#idOf(this.#s.classes, q.class);
    }
    if (q.since !== undefined) {
      conds.push('u.interval_end >= @since');
      params.since = checkDate(q.since, 'since');
    }
    if (q.until !== undefined) {
      conds.push('u.interval_end < @until');
      params.until = checkDate(q.until, 'until');
    }
    if (q.since !== undefined && q.until !== undefined && (params.since as number) > (params.until as number)) {
      throw invalid('until', `must not be before since (${q.since.toISOString()} > ${q.until.toISOString()})`);
    }
    if (q.host !== undefined) {
      conds.push('u.host = @host');
      params.host = checkText(q.host, 'host');
    }
    return { sql: conds.length ? `WHERE ${conds.join(' AND ')}` : '', params };
  }

  /** The id of an issued name; the query field is named like the noun (tenant, class). */
  #idOf(n: Names, name: unknown): number {
    const id = n.idByName.get(checkText(name, n.noun)) as number | undefined;
    if (id === undefined) throw new LedgerError(n.unknown, `${n.noun}: no ${n.noun} named ${JSON.stringify(name)}`, { field: n.noun });
    return id;
  }

  /**
   * Totals over rows whose interval_end is in [since, until), grouped by
   * q.by (default 'tenant-class': per tenant, class, billable flag and
   * direction; 'container' sums the container rows, which have no class).
   * Only groups with usage appear.
   */
  usage(q?: UsageQuery & { by?: 'tenant-class' }): TenantClassUsage[];
  usage(q: UsageQuery & { by: 'tenant' }): TenantUsage[];
  usage(q: UsageQuery & { by: 'class' }): ClassUsage[];
  usage(q: UsageQuery & { by: 'container' }): ContainerUsage[];
  usage(q?: UsageQuery): UsageTotal[];
  usage(q: UsageQuery = {}): UsageTotal[] {
    this.#live(false);
    if (q === null || typeof q !== 'object') throw invalid('query', 'must be an object');
    const by = q.by === undefined ? 'tenant-class' : checkGrouping(q.by);
    if (by === 'container' && q.class !== undefined) throw invalid('class', "container usage has no traffic class; leave out class with by 'container'");
    const g = GROUPINGS[by];
    const w = this.#where(q);
    const rows = this.#db
      .prepare(
        `SELECT ${g.select}, u.direction, ${sumHalvesSql('u.packets', 'p')}, ${sumHalvesSql('u.bytes', 'b')},
                min(u.interval_start) AS first, max(u.interval_end) AS last
         FROM ${g.from} ${w.sql}
         GROUP BY ${g.group}
         ORDER BY ${g.order}`,
      )
      .safeIntegers(true)
      .all(w.params) as Array<
      StoredSums & { tenant: string; class: string; billable: bigint; bp_hi: bigint; bp_lo: bigint; bb_hi: bigint; bb_lo: bigint; container: string; runtime: string }
    >;
    const sums = (r: StoredSums): UsageSums => ({ direction: r.direction, packets: joinHalves(r.p_hi, r.p_lo), bytes: joinHalves(r.b_hi, r.b_lo) });
    const span = (r: StoredSums): UsageSpan => ({
      first: r.first === null ? null : new Date(num(r.first)),
      last: r.last === null ? null : new Date(num(r.last)),
    });
    if (by === 'tenant') {
      return rows.map((r) => ({ tenant: r.tenant, ...sums(r), billablePackets: joinHalves(r.bp_hi, r.bp_lo), billableBytes: joinHalves(r.bb_hi, r.bb_lo), ...span(r) }));
    }
    if (by === 'class') return rows.map((r) => ({ class: r.class, billable: r.billable === 1n, ...sums(r), ...span(r) }));
    if (by === 'container') return rows.map((r) => ({ tenant: r.tenant, container: r.container, runtime: r.runtime, ...sums(r), ...span(r) }));
    return rows.map((r) => ({ tenant: r.tenant, class: r.class, billable: r.billable === 1n, ...sums(r), ...span(r) }));
  }

  /** Usage per tenant, class, billable flag and direction in fixed buckets of interval_end. */
  usageSeries(q: UsageSeriesQuery): UsagePoint[] {
    this.#live(false);
    if (q === null || typeof q !== 'object') throw invalid('query', 'must be an object');
    if (typeof q.bucketMs !== 'number' || !Number.isSafeInteger(q.bucketMs) || q.bucketMs < 1000) {
      throw invalid('bucketMs', `must be an integer number of milliseconds >= 1000, got ${String(q.bucketMs)}`);
    }
    const w = this.#where(q);
    const g = GROUPINGS['tenant-class'];
    // better-sqlite3 binds JS numbers as REAL; a BigInt makes the division integral.
    const rows = this.#db
      .prepare(
        `SELECT ${g.select}, u.direction, (u.interval_end / @bucket) * @bucket AS bucket,
                ${sumHalvesSql('u.packets', 'p')}, ${sumHalvesSql('u.bytes', 'b')}
         FROM ${g.from} ${w.sql}
         GROUP BY bucket, ${g.group}
         ORDER BY bucket, ${g.order}`,
      )
      .safeIntegers(true)
      .all({ ...w.params, bucket: BigInt(q.bucketMs) }) as Array<{
      tenant: string;
      class: string;
      billable: bigint;
      direction: Direction;
      bucket: bigint;
      p_hi: bigint;
      p_lo: bigint;
      b_hi: bigint;
      b_lo: bigint;
    }>;
    return rows.map((r) => ({
      tenant: r.tenant,
      class: r.class,
      billable: r.billable === 1n,
      direction: r.direction,
      bucketStart: new Date(num(r.bucket)),
      packets: joinHalves(r.p_hi, r.p_lo),
      bytes: joinHalves(r.b_hi, r.b_lo),
    }));
  }

  /**
   * End of the latest interval this host recorded (its newest checkpoint), or
   * null before the first one; `allHosts` takes the maximum over all hosts.
   */
  lastExport(opts: { allHosts?: boolean } = {}): Date | null {
    this.#live(false);
    const v = (opts.allHosts ? this.#s.lastExportAll.get() : this.#s.lastExport.get(this.hostId)) as number | null;
    return v === null ? null : new Date(v);
  }

  /** Last outbox sequence number issued to this host (0 when none). */
  lastSequence(): number {
    this.#live(false);
    return num((this.#s.lastSeq.get(this.hostId) as bigint | undefined) ?? 0n);
  }

  /** Usage rows of this host with seq > afterSeq, in sequence order. */
  outbox(afterSeq: number, limit = 1000): UsageRow[] {
    this.#live(false);
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw invalid('afterSeq', 'must be a non-negative integer');
    if (!Number.isSafeInteger(limit) || limit < 1) throw invalid('limit', 'must be a positive integer');
    const rows = this.#s.outbox.all(this.hostId, afterSeq, limit) as Array<{
      host: string;
      seq: bigint;
      epoch_id: bigint;
      boot_id: string;
      counter_id: string;
      tenant_id: bigint;
      tenant: string;
      class_id: bigint;
      class: string;
      direction: Direction;
      billable: bigint;
      interval_start: bigint;
      interval_end: bigint;
      packets: bigint;
      bytes: bigint;
    }>;
    return rows.map((r) => ({
      host: r.host,
      seq: num(r.seq),
      epochId: num(r.epoch_id),
      bootId: r.boot_id,
      counterId: r.counter_id,
      tenantId: num(r.tenant_id),
      tenant: r.tenant,
      classId: num(r.class_id),
      class: r.class,
      direction: r.direction,
      billable: r.billable === 1n,
      intervalStart: new Date(num(r.interval_start)),
      intervalEnd: new Date(num(r.interval_end)),
      packets: r.packets,
      bytes: r.bytes,
    }));
  }

  /** PRAGMA integrity_check; ['ok'] when healthy. */
  integrityCheck(): string[] {
    this.#live(false);
    const rows = this.#db.pragma('integrity_check') as Array<{ integrity_check: string }>;
    return rows.map((r) => r.integrity_check);
  }

  /** The raw connection, for tests, diagnostics and the store's other tables (invoices.ts). */
  get db(): Db {
    this.#live(false);
    return this.#db;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }
}
