// Human-written quantities in the policy document (durations, sizes, rates)
// parsed EXACTLY to integers. Fractions are allowed only when the result is a
// whole number of the base unit ("1.5GB" is fine, "0.3B" is an error), so a
// budget or a price never carries binary-float rounding.

/** Milliseconds. */
export type Millis = number;
/** Bytes. */
export type Bytes = number;
/** Bits per second. */
export type BitsPerSecond = number;

/** Raised for a malformed quantity; `field` names where it came from. */
export class UnitError extends Error {
  constructor(readonly field: string, readonly detail: string) {
    super(`${field}: ${detail}`);
    this.name = 'UnitError';
  }
}

const DECIMAL = /^(\d+)(?:\.(\d+))?$/;

/** value * multiplier, exactly, or undefined when the result is not an integer. */
function scaleExact(num: string, multiplier: bigint): bigint | undefined {
  const m = DECIMAL.exec(num);
  if (!m) return undefined;
  const frac = m[2] ?? '';
  const coef = BigInt(m[1] + frac) * multiplier;
  const div = 10n ** BigInt(frac.length);
  return coef % div === 0n ? coef / div : undefined;
}

function toSafe(v: bigint, field: string, text: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new UnitError(field, `"${text}" is too large`);
  return Number(v);
}

const DURATION_UNITS: Record<string, bigint> = { ms: 1n, s: 1000n, m: 60_000n, h: 3_600_000n, d: 86_400_000n };

/**
 * "10s", "1m30s", "250ms", "1.5h", "7d" -> milliseconds. A bare number has no
 * unit and is rejected (seconds or milliseconds would be a guess). A number is
 * taken as already-parsed milliseconds, so callers may pass a policy field or a
 * command-line string alike.
 */
export function parseDuration(text: string | number, field = 'duration'): Millis {
  if (typeof text === 'number') {
    if (!Number.isSafeInteger(text) || text < 0) throw new UnitError(field, `expected a whole number of milliseconds, got ${text}`);
    return text;
  }
  const s = text.trim();
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0n;
  let pos = 0;
  let m: RegExpExecArray | null;
  while (s.length > 0 && (m = re.exec(s)) !== null) {
    const part = scaleExact(m[1], DURATION_UNITS[m[2]]);
    if (part === undefined) throw new UnitError(field, `"${text}" is not a whole number of milliseconds`);
    total += part;
    pos = re.lastIndex;
  }
  if (s.length === 0 || pos !== s.length) {
    throw new UnitError(field, `"${text}" is not a duration; use a number with a unit (ms, s, m, h, d), e.g. "10s" or "1m30s"`);
  }
  return toSafe(total, field, text);
}

// Decimal prefixes are powers of 1000, binary ones (Ki, Mi, ...) powers of 1024.
const SIZE_UNITS: Record<string, bigint> = {
  B: 1n,
  kB: 1000n, KB: 1000n, MB: 1000n ** 2n, GB: 1000n ** 3n, TB: 1000n ** 4n, PB: 1000n ** 5n,
  KiB: 1024n, MiB: 1024n ** 2n, GiB: 1024n ** 3n, TiB: 1024n ** 4n, PiB: 1024n ** 5n,
};

/** "50MB" (50 000 000), "1GiB" (1 073 741 824), "1.5GB", or a bare integer of bytes -> bytes. */
export function parseSize(text: string | number, field = 'size'): Bytes {
  if (typeof text === 'number') {
    if (!Number.isSafeInteger(text) || text < 0) throw new UnitError(field, `expected a whole number of bytes, got ${text}`);
    return text;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s?([A-Za-z]*)\s*$/.exec(text);
  const unit = m?.[2] || 'B';
  const mult = m ? SIZE_UNITS[unit] : undefined;
  if (!m || mult === undefined) {
    throw new UnitError(field, `"${text}" is not a size; use bytes with a unit: B, kB/KB/MB/GB/TB/PB (powers of 1000) or KiB/MiB/GiB/TiB/PiB (powers of 1024)`);
  }
  const v = scaleExact(m[1], mult);
  if (v === undefined) throw new UnitError(field, `"${text}" is not a whole number of bytes`);
  return toSafe(v, field, text);
}

const RATE_UNITS: Record<string, bigint> = { bit: 1n, kbit: 1000n, mbit: 1000n ** 2n, gbit: 1000n ** 3n, tbit: 1000n ** 4n };

/** "10mbit", "1gbit", "512kbit" (powers of 1000, as tc reads them), or a bare integer -> bits per second. */
export function parseRate(text: string | number, field = 'rate'): BitsPerSecond {
  if (typeof text === 'number') {
    if (!Number.isSafeInteger(text) || text < 0) throw new UnitError(field, `expected a whole number of bits per second, got ${text}`);
    return text;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s?([A-Za-z]*)\s*$/.exec(text);
  const unit = (m?.[2] || 'bit').toLowerCase();
  if (m && /bps$/.test(unit)) {
    throw new UnitError(field, `"${text}": "bps" is ambiguous (tc reads it as bytes per second); write bits per second, e.g. "10mbit"`);
  }
  const mult = m ? RATE_UNITS[unit] : undefined;
  if (!m || mult === undefined) {
    throw new UnitError(field, `"${text}" is not a rate; use bits per second with a unit: bit, kbit, mbit, gbit, tbit (powers of 1000), e.g. "10mbit"`);
  }
  const v = scaleExact(m[1], mult);
  if (v === undefined) throw new UnitError(field, `"${text}" is not a whole number of bits per second`);
  return toSafe(v, field, text);
}

/** Formats milliseconds back to the shortest exact duration string ("90s" -> "1m30s"). */
export function formatDuration(ms: Millis): string {
  if (ms === 0) return '0s';
  let rest = ms;
  let out = '';
  for (const [u, f] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]] as const) {
    const n = Math.floor(rest / f);
    if (n > 0) out += `${n}${u}`;
    rest -= n * f;
  }
  return out;
}

/**
 * Money and other exact decimals: "12", "0.05", "4.5" or a non-negative
 * integer -> canonical decimal string (no exponent, no trailing zeros).
 */
export function parseDecimal(text: string | number, field = 'amount'): string {
  const s = typeof text === 'number' ? (Number.isSafeInteger(text) && text >= 0 ? String(text) : '') : text.trim();
  const m = DECIMAL.exec(s);
  if (!m) {
    throw new UnitError(field, `${JSON.stringify(text)} is not an exact amount; write a non-negative integer or a decimal string such as "0.05"`);
  }
  const int = m[1].replace(/^0+(?=\d)/, '');
  const frac = (m[2] ?? '').replace(/0+$/, '');
  return frac ? `${int}.${frac}` : int;
}
