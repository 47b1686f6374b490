// Lossless storage of kernel counters in SQLite.
//
// Kernel counters are u64; SQLite INTEGER is signed 64-bit. Checkpoints hold
// whole cumulative counters, so they are stored as the two's-complement i64
// with the same bits (lossless over the full u64 range). Deltas and usage rows
// are plain non-negative INTEGERs so SQL readers see real numbers; a single
// interval delta above 2^63-1 (9.2 EB in one interval) is refused rather than
// wrapped.

import { LedgerError, invalid } from './errors.js';

export const U64_MAX = (1n << 64n) - 1n;
export const I64_MAX = (1n << 63n) - 1n;

export function checkU64(v: unknown, field: string): bigint {
  if (typeof v !== 'bigint') throw invalid(field, `must be a bigint, got ${typeof v}`);
  if (v < 0n || v > U64_MAX) throw invalid(field, `must be within 0..2^64-1, got ${v}`);
  return v;
}

/** u64 -> the i64 with the same bits, for an INTEGER column. */
export function u64ToStored(v: bigint): bigint {
  return BigInt.asIntN(64, v);
}

/** Inverse of u64ToStored. */
export function storedToU64(v: bigint | number): bigint {
  return BigInt.asUintN(64, BigInt(v));
}

/** A delta that must fit a signed INTEGER column. */
export function checkDelta(delta: bigint, field: string): bigint {
  if (delta > I64_MAX) {
    throw new LedgerError('DELTA_TOO_LARGE', `${field}: interval delta ${delta} exceeds 2^63-1 and cannot be stored; record intervals more often`, { field });
  }
  return delta;
}

/**
 * SQL SUM() of INTEGERs fails past 2^63-1. Summing the high and low 32-bit
 * halves separately keeps every partial sum small for any realistic row count
 * (2^31 rows of maximal low halves), and the halves recombine exactly here.
 */
export function sumHalvesSql(col: string, alias: string): string {
  return `SUM(${col} >> 32) AS ${alias}_hi, SUM(${col} & 4294967295) AS ${alias}_lo`;
}

export function joinHalves(hi: bigint | number | null, lo: bigint | number | null): bigint {
  return (BigInt(hi ?? 0) << 32n) + BigInt(lo ?? 0);
}
