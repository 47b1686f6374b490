// Every failure the ledger reports on purpose. A code for programs (the API
// maps codes to HTTP statuses), a message for people, and the offending input
// field when there is one, so a caller never has to parse the message.

export type LedgerErrorCode =
  | 'INVALID_INPUT' // a caller passed something malformed; `field` names it
  | 'UNKNOWN_TENANT' // a tenant name or id the ledger has never issued
  | 'UNKNOWN_CLASS' // a traffic class name or id the ledger has never issued
  | 'COUNTER_REGRESSION' // a cumulative reading went down inside one epoch
  | 'DELTA_TOO_LARGE' // one interval's delta does not fit SQLite's signed 64-bit INTEGER
  | 'INTERVAL_NOT_AFTER_CHECKPOINT' // interval end is not later than the epoch's last checkpoint
  | 'SCHEMA_TOO_NEW' // the database was written by a newer tollgate
  | 'SCHEMA_TOO_OLD' // a read-only open found a schema the agent has not migrated yet
  | 'NOT_A_LEDGER' // the file is some other SQLite database
  | 'MIGRATION_FAILED'
  | 'READ_ONLY' // a write was attempted on a ledger opened with openReadOnly
  | 'CLOSED'
  | 'ALREADY_CLOSED' // a billing period that was closed before
  | 'OPEN_FAILED';

export class LedgerError extends Error {
  override readonly name = 'LedgerError';
  readonly code: LedgerErrorCode;
  /** Path of the offending input, e.g. `readings[3].bytes`. */
  readonly field?: string;

  constructor(code: LedgerErrorCode, message: string, opts: { field?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    if (opts.field !== undefined) this.field = opts.field;
  }
}

export function invalid(field: string, message: string): LedgerError {
  return new LedgerError('INVALID_INPUT', `${field}: ${message}`, { field });
}
