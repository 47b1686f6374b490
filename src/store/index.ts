export { Ledger, DEFAULT_CLASS_ID, DIRECTIONS, UNATTRIBUTED_TENANT, UNATTRIBUTED_TENANT_ID, USAGE_GROUPINGS } from './ledger.js';
export type {
  CheckpointReading,
  ClassInfo,
  ClassUsage,
  ContainerReading,
  ContainerUsage,
  Direction,
  EpochCheckpoint,
  EpochKey,
  IntervalInput,
  IntervalResult,
  IssuedName,
  OpenOptions,
  Reading,
  TenantClassUsage,
  TenantInfo,
  TenantUsage,
  UsageFilter,
  UsageGrouping,
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
export { InvoiceStore } from './invoices.js';
export type { ClosedInvoice, Cut, RawPeriodUsage, UsageWindow, VolumeRow } from './invoices.js';
export { AlertStore } from './alerts.js';
export type { Delivery } from './alerts.js';
