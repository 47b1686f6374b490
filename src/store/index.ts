export { Ledger, DIRECTIONS, UNATTRIBUTED_TENANT, UNATTRIBUTED_TENANT_ID } from './ledger.js';
export type {
  Direction,
  EpochCheckpoint,
  EpochKey,
  IntervalInput,
  IntervalResult,
  OpenOptions,
  Reading,
  TenantInfo,
  UsagePoint,
  UsageQuery,
  UsageRow,
  UsageSeriesQuery,
  UsageTotal,
} from './ledger.js';
export { LedgerError } from './errors.js';
export type { LedgerErrorCode } from './errors.js';
export { bootId, defaultHostId } from './boot.js';
export { MIGRATIONS, latestVersion, APPLICATION_ID } from './migrations.js';
