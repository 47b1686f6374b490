// Exact money arithmetic for invoices. Everything is bigint: binary floats cannot
// represent 0.1, so float sums drift and two runs over the same usage could bill
// different amounts. Here intermediate results are exact rationals and the only
// lossy step is roundToMinor, done once per line item, so an invoice is reproducible
// from its inputs.

/** A decimal number: value = n / 10^scale, scale a non-negative integer. */
export type Decimal = { readonly n: bigint; readonly scale: number };

/**
 * An exact rational num/den. Functions here always return it reduced with den > 0,
 * so structurally equal ratios are equal values (deepEqual works) and numbers stay
 * small across long sums.
 */
export type Ratio = { readonly num: bigint; readonly den: bigint };

// Plain decimal notation only. No exponent, grouping, leading "+", ".5" or "1.":
// prices come from config and contracts, and a lenient reader would turn a typo
// ("1,5" meaning 1.5 or 15?) into a wrong bill rather than an error.
const DECIMAL_RE = /^(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?$/;

function pow10(k: number): bigint {
  return 10n ** BigInt(k);
}

function checkDigits(digits: number, what: string): void {
  if (!Number.isSafeInteger(digits) || digits < 0) {
    throw new RangeError(`${what} must be a non-negative integer, got ${digits}`);
  }
}

function abs(x: bigint): bigint {
  return x < 0n ? -x : x;
}

function gcd(a: bigint, b: bigint): bigint {
  a = abs(a);
  b = abs(b);
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

// Drops trailing zeros so that equal values have one representation.
function normalizeDecimal(n: bigint, scale: number): Decimal {
  while (scale > 0 && n % 10n === 0n) {
    n /= 10n;
    scale -= 1;
  }
  return { n, scale };
}

/**
 * Parses plain decimal text ("12", "0.05", "-3.5", "1.50"); the result is normalised
 * (no trailing fractional zeros). Throws RangeError naming the input otherwise.
 */
export function parseDecimal(text: string): Decimal {
  const m = DECIMAL_RE.exec(text);
  if (m === null) throw new RangeError(`not a plain decimal number: ${JSON.stringify(text)}`);
  const [, sign, int, frac = ''] = m;
  const n = BigInt(int + frac);
  return normalizeDecimal(sign === '-' ? -n : n, frac.length);
}

/** Canonical text: no trailing zeros, no exponent, "-" only for values below zero. */
export function formatDecimal(d: Decimal): string {
  checkDigits(d.scale, 'Decimal scale');
  const { n, scale } = normalizeDecimal(d.n, d.scale);
  return formatScaled(n, scale);
}

// n / 10^scale as text with exactly `scale` fractional digits.
function formatScaled(n: bigint, scale: number): string {
  const digits = abs(n).toString().padStart(scale + 1, '0');
  const int = digits.slice(0, digits.length - scale);
  const body = scale === 0 ? int : `${int}.${digits.slice(digits.length - scale)}`;
  return n < 0n ? `-${body}` : body;
}

/** num/den reduced, sign on the numerator. Throws RangeError when den is 0. */
export function ratio(num: bigint, den: bigint = 1n): Ratio {
  if (den === 0n) throw new RangeError(`ratio with zero denominator: ${num}/0`);
  if (den < 0n) {
    num = -num;
    den = -den;
  }
  const g = gcd(num, den);
  return g === 1n ? { num, den } : { num: num / g, den: den / g };
}

export function fromBigInt(n: bigint): Ratio {
  return { num: n, den: 1n };
}

export function fromDecimal(d: Decimal): Ratio {
  checkDigits(d.scale, 'Decimal scale');
  return ratio(d.n, pow10(d.scale));
}

export function addRatio(a: Ratio, b: Ratio): Ratio {
  // Same denominator is the common case in a sum of one price times many quantities.
  if (a.den === b.den) return ratio(a.num + b.num, a.den);
  return ratio(a.num * b.den + b.num * a.den, a.den * b.den);
}

export function mulRatio(a: Ratio, b: Ratio): Ratio {
  return ratio(a.num * b.num, a.den * b.den);
}

/**
 * Rounds an amount in MAJOR units (12.345 EUR) to an integer count of MINOR units
 * (1235 cents) for a currency with `digits` minor-unit digits.
 *
 * Rule: round half away from zero (commercial rounding): 0.5 -> 1, -0.5 -> -1,
 * 12.345 -> 12.35, -12.345 -> -12.35. It is symmetric, so a credit note is exactly
 * the negation of the charge it reverses. Apply it once per line item, to the exact
 * line total; rounding partial results and adding them is what makes bills drift.
 */
export function roundToMinor(r: Ratio, digits: number): bigint {
  checkDigits(digits, 'digits');
  if (r.den <= 0n) throw new RangeError(`ratio denominator must be positive, got ${r.den}`);
  const scaled = abs(r.num) * pow10(digits);
  let q = scaled / r.den;
  // Remainder at least half the denominator: a tie or more rounds up in magnitude.
  if (2n * (scaled % r.den) >= r.den) q += 1n;
  return r.num < 0n ? -q : q;
}

/** Minor units as major-unit text: (123456n, 2) -> "1234.56", (-5n, 2) -> "-0.05", (12n, 0) -> "12". */
export function formatMinor(minor: bigint, digits: number): string {
  checkDigits(digits, 'digits');
  return formatScaled(minor, digits);
}

/**
 * Reads major-unit text back into minor units, the inverse of formatMinor. Accepts
 * the plain decimal syntax of parseDecimal with any number of fractional digits as
 * long as the value is a whole number of minor units ("12" and "12.50" are fine for
 * digits 2); throws RangeError rather than round when it is not ("12.345").
 */
export function parseMinor(text: string, digits: number): bigint {
  checkDigits(digits, 'digits');
  const d = parseDecimal(text);
  if (d.scale > digits) {
    throw new RangeError(`${JSON.stringify(text)} has more than ${digits} decimal places`);
  }
  return d.n * pow10(digits - d.scale);
}

/** quantity × unitPrice, rounded once to minor units (see roundToMinor). */
export function lineAmount(quantity: Ratio, unitPrice: Decimal, digits: number): bigint {
  return roundToMinor(mulRatio(quantity, fromDecimal(unitPrice)), digits);
}
