import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CURRENCY_CODES, currencyDigits, isKnownCurrency } from './currencies.js';
import {
  addRatio, type Decimal, formatDecimal, formatMinor, fromBigInt, fromDecimal, lineAmount, mulRatio,
  parseDecimal, parseMinor, type Ratio, ratio, roundToMinor,
} from './money.js';

const abs = (x: bigint): bigint => (x < 0n ? -x : x);
const gcd = (a: bigint, b: bigint): bigint => (b === 0n ? abs(a) : gcd(b, a % b));

const bigIntArb = fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n });
const denArb = fc.bigInt({ min: 1n, max: 10n ** 20n });
const ratioArb = fc.tuple(bigIntArb, denArb).map(([n, d]) => ratio(n, d));
const digitsArb = fc.integer({ min: 0, max: 6 });
const decimalArb = fc.tuple(bigIntArb, fc.integer({ min: 0, max: 12 })).map(([n, scale]): Decimal => ({ n, scale }));

// Value of r equals num/den, checked by cross-multiplication.
const sameValue = (r: Ratio, num: bigint, den: bigint): boolean => r.num * den === num * r.den;
const isReduced = (r: Ratio): boolean => r.den > 0n && gcd(r.num, r.den) === 1n;

test('currency table: the common codes and their ISO minor units', () => {
  const expected: Record<string, number> = {
    USD: 2, EUR: 2, GBP: 2, CHF: 2, JPY: 0, KRW: 0, CNY: 2, INR: 2, BRL: 2, CAD: 2, AUD: 2, NZD: 2, SEK: 2,
    NOK: 2, DKK: 2, PLN: 2, CZK: 2, HUF: 2, RUB: 2, TRY: 2, ZAR: 2, MXN: 2, SGD: 2, HKD: 2, TWD: 2, THB: 2,
    IDR: 2, ILS: 2, AED: 2, SAR: 2, BHD: 3, KWD: 3, OMR: 3, JOD: 3, TND: 3, LYD: 3, IQD: 3, CLP: 0, ISK: 0,
    VND: 0, UGX: 0, XOF: 0, XAF: 0, PYG: 0, XPF: 0, BIF: 0, DJF: 0, GNF: 0, KMF: 0, RWF: 0, VUV: 0, ZWG: 2,
    SLE: 2, VES: 2, VED: 2, MRU: 2, STN: 2,
  };
  for (const [code, digits] of Object.entries(expected)) {
    assert.equal(currencyDigits(code), digits, code);
    assert.ok(isKnownCurrency(code), code);
  }
});

test('currency table: no funds, metals, withdrawn codes, or lookalikes', () => {
  for (const code of [
    'XAU', 'XAG', 'XPD', 'XPT', 'XDR', 'XXX', 'XTS', 'XSU', 'XUA', 'XBA', 'BOV', 'CHE', 'CHW', 'CLF', 'COU',
    'MXV', 'USN', 'UYI', 'UYW', 'HRK', 'ZWL', 'SLL', 'MRO', 'STD', 'VEF', 'usd', 'Usd', ' USD', 'constructor',
    '__proto__', 'toString', '',
  ]) {
    assert.equal(currencyDigits(code), undefined, code);
    assert.equal(isKnownCurrency(code), false, code);
  }
});

test('CURRENCY_CODES is sorted, unique, three upper-case letters, and matches the lookup', () => {
  assert.ok(CURRENCY_CODES.length >= 150, `${CURRENCY_CODES.length} codes`);
  assert.deepEqual([...CURRENCY_CODES], [...new Set(CURRENCY_CODES)].sort());
  for (const code of CURRENCY_CODES) {
    assert.match(code, /^[A-Z]{3}$/);
    assert.ok([0, 2, 3].includes(currencyDigits(code)!), code);
  }
  assert.ok(Object.isFrozen(CURRENCY_CODES));
});

test('parseDecimal / formatDecimal examples', () => {
  assert.deepEqual(parseDecimal('0.05'), { n: 5n, scale: 2 });
  assert.deepEqual(parseDecimal('12'), { n: 12n, scale: 0 });
  assert.deepEqual(parseDecimal('-3.5'), { n: -35n, scale: 1 });
  assert.deepEqual(parseDecimal('1.50'), { n: 15n, scale: 1 }, 'trailing zeros are normalised away');
  assert.deepEqual(parseDecimal('0.0000001'), { n: 1n, scale: 7 });
  assert.equal(formatDecimal(parseDecimal('-0.0')), '0');
  assert.equal(formatDecimal({ n: 1200n, scale: 2 }), '12');
  assert.equal(formatDecimal({ n: -5n, scale: 3 }), '-0.005');
  assert.equal(formatDecimal({ n: 123456789012345678901234567890n, scale: 10 }), '12345678901234567890.123456789');
  assert.throws(() => formatDecimal({ n: 1n, scale: -1 }), RangeError);
});

test('parseDecimal rejects anything but plain decimal text, naming the input', () => {
  for (const bad of [
    '1e5', '', '1.', '.5', 'abc', '1,5', '+1', ' 1', '1 ', '01', '-', '--1', '1.2.3', '0x10', 'Infinity', 'NaN',
    '1_000', '١', '-.5', '1.5e-3',
  ]) {
    assert.throws(() => parseDecimal(bad), (e: unknown) => e instanceof RangeError && e.message.includes(JSON.stringify(bad)), bad);
  }
});

test('formatDecimal and parseDecimal round-trip (property)', () => {
  fc.assert(fc.property(decimalArb, (d) => {
    const text = formatDecimal(d);
    assert.match(text, /^-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$/, 'canonical: no trailing zeros');
    const back = parseDecimal(text);
    assert.ok(sameValue(fromDecimal(back), d.n, 10n ** BigInt(d.scale)));
    assert.equal(formatDecimal(back), text);
  }));
});

test('ratio normalises sign and common factors; zero denominators are refused', () => {
  assert.deepEqual(ratio(6n, -4n), { num: -3n, den: 2n });
  assert.deepEqual(ratio(0n, -7n), { num: 0n, den: 1n });
  assert.deepEqual(fromBigInt(-9n), { num: -9n, den: 1n });
  assert.deepEqual(fromDecimal(parseDecimal('0.25')), { num: 1n, den: 4n });
  assert.throws(() => ratio(1n, 0n), RangeError);
});

test('addRatio and mulRatio match bigint cross-multiplication (property)', () => {
  fc.assert(fc.property(ratioArb, ratioArb, (a, b) => {
    const sum = addRatio(a, b);
    assert.ok(isReduced(sum));
    assert.ok(sameValue(sum, a.num * b.den + b.num * a.den, a.den * b.den));
    const product = mulRatio(a, b);
    assert.ok(isReduced(product));
    assert.ok(sameValue(product, a.num * b.num, a.den * b.den));
    assert.deepEqual(addRatio(a, b), addRatio(b, a));
    assert.deepEqual(mulRatio(a, b), mulRatio(b, a));
  }));
  fc.assert(fc.property(bigIntArb, denArb, (n, d) => {
    const r = ratio(n, d);
    assert.ok(isReduced(r) && sameValue(r, n, d));
    assert.deepEqual(ratio(-n, -d), r);
  }));
});

test('roundToMinor: half away from zero at exact .5 boundaries', () => {
  const cases: Array<[string, number, bigint]> = [
    ['12.345', 2, 1235n], ['-12.345', 2, -1235n], ['12.344', 2, 1234n], ['-12.344', 2, -1234n],
    ['0.005', 2, 1n], ['-0.005', 2, -1n], ['0.0049999', 2, 0n], ['-0.0049999', 2, 0n],
    ['0.5', 0, 1n], ['-0.5', 0, -1n], ['1.5', 0, 2n], ['2.5', 0, 3n], ['-2.5', 0, -3n], ['2.4999', 0, 2n],
    ['1.2345', 3, 1235n], ['-1.2345', 3, -1235n], ['1.2344', 3, 1234n], ['0.0005', 3, 1n], ['-0.0005', 3, -1n],
    ['7', 2, 700n], ['-7', 3, -7000n], ['0', 2, 0n], ['0.01', 2, 1n],
  ];
  for (const [text, digits, expected] of cases) {
    assert.equal(roundToMinor(fromDecimal(parseDecimal(text)), digits), expected, `${text} @ ${digits}`);
  }
  assert.equal(roundToMinor(ratio(1n, 3n), 2), 33n);
  assert.equal(roundToMinor(ratio(2n, 3n), 2), 67n);
  assert.equal(roundToMinor(ratio(-2n, 3n), 0), -1n);
  assert.equal(roundToMinor(ratio(1n, 200n), 2), 1n, '1/200 = 0.005 exactly');
  assert.throws(() => roundToMinor(ratio(1n), -1), RangeError);
  assert.throws(() => roundToMinor(ratio(1n), 1.5), RangeError);
  assert.throws(() => roundToMinor({ num: 1n, den: 0n }, 2), RangeError);
});

test('roundToMinor is the nearest integer, ties away from zero, and odd-symmetric (property)', () => {
  fc.assert(fc.property(ratioArb, digitsArb, (r, digits) => {
    const m = roundToMinor(r, digits);
    const scale = 10n ** BigInt(digits);
    // twice the error, in units of 1/den: |2·(r·10^d − m)|·den
    const twiceErr = 2n * (r.num * scale - m * r.den);
    assert.ok(abs(twiceErr) <= r.den, 'within half a minor unit');
    if (abs(twiceErr) === r.den) assert.ok(abs(m) * r.den > abs(r.num) * scale, 'a tie goes away from zero');
    assert.equal(roundToMinor({ num: -r.num, den: r.den }, digits), -m);
  }));
  // Exact ties built on purpose, since random ratios rarely land on one.
  fc.assert(fc.property(bigIntArb, digitsArb, (k, digits) => {
    const tie = ratio(2n * k + 1n, 2n * 10n ** BigInt(digits)); // (k + 0.5) minor units
    assert.equal(roundToMinor(tie, digits), k >= 0n ? k + 1n : k);
  }));
});

test('formatMinor examples', () => {
  assert.equal(formatMinor(123456n, 2), '1234.56');
  assert.equal(formatMinor(-123456n, 2), '-1234.56');
  assert.equal(formatMinor(-5n, 2), '-0.05');
  assert.equal(formatMinor(0n, 2), '0.00');
  assert.equal(formatMinor(12n, 0), '12');
  assert.equal(formatMinor(-12n, 0), '-12');
  assert.equal(formatMinor(1n, 3), '0.001');
  assert.equal(formatMinor(1234567n, 3), '1234.567');
  assert.equal(formatMinor(10n ** 25n, 2), '100000000000000000000000.00');
});

test('parseMinor reads back exactly and refuses to round', () => {
  assert.equal(parseMinor('1234.56', 2), 123456n);
  assert.equal(parseMinor('12', 2), 1200n);
  assert.equal(parseMinor('12.5', 2), 1250n);
  assert.equal(parseMinor('12.500', 2), 1250n, 'extra zeros are exact');
  assert.equal(parseMinor('-0.05', 2), -5n);
  assert.equal(parseMinor('12', 0), 12n);
  assert.equal(parseMinor('0.001', 3), 1n);
  assert.throws(() => parseMinor('12.345', 2), /"12\.345" has more than 2 decimal places/);
  assert.throws(() => parseMinor('0.5', 0), RangeError);
  assert.throws(() => parseMinor('1,00', 2), /"1,00"/);
});

test('formatMinor / parseMinor round-trip (property)', () => {
  fc.assert(fc.property(bigIntArb, digitsArb, (minor, digits) => {
    const text = formatMinor(minor, digits);
    assert.equal(parseMinor(text, digits), minor);
    if (digits > 0) assert.match(text, new RegExp(`^-?(0|[1-9][0-9]*)\\.[0-9]{${digits}}$`));
    else assert.match(text, /^-?(0|[1-9][0-9]*)$/);
  }));
});

test('a year of five-minute samples summed as one Ratio does not drift', () => {
  // 365 days × 288 samples/day = 105,120 samples, each metered in bytes and billed
  // at 0.0000001 USD per byte: the total must be exactly sum(bytes) / 10^7.
  const samples = 365 * 288;
  const price = fromDecimal(parseDecimal('0.0000001'));
  let total = fromBigInt(0n);
  let bytes = 0n;
  let float = 0;
  for (let i = 0; i < samples; i += 1) {
    const q = BigInt(1_000 + ((i * 7_919) % 50_000)); // deterministic, uneven usage
    bytes += q;
    total = addRatio(total, mulRatio(fromBigInt(q), price));
    float += Number(q) * 0.0000001;
  }
  assert.equal(samples, 105_120);
  assert.deepEqual(total, ratio(bytes, 10n ** 7n));
  const cents = roundToMinor(total, 2);
  // Reference: round sum(bytes)/10^7 USD to cents by integer arithmetic, half up (positive).
  assert.equal(cents, (bytes + 50_000n) / 100_000n);
  assert.equal(formatMinor(cents, 2), formatMinor((bytes * 100n + 5_000_000n) / 10_000_000n, 2));
  // The float total is already off in the low digits: this is the drift we avoid.
  assert.notEqual(float, Number(bytes) / 1e7);

  // One sample priced as if nothing was used still contributes exactly zero.
  assert.deepEqual(addRatio(total, mulRatio(fromBigInt(0n), price)), total);
});

test('lineAmount: quantity × unit price, rounded once', () => {
  assert.equal(lineAmount(fromBigInt(3n), parseDecimal('0.333'), 2), 100n, '0.999 -> 1.00');
  assert.equal(lineAmount(ratio(3n, 2n), parseDecimal('0.125'), 2), 19n, '0.1875 -> 0.19');
  assert.equal(lineAmount(ratio(-3n, 2n), parseDecimal('0.125'), 2), -19n, 'a credit mirrors the charge');
  assert.equal(lineAmount(fromBigInt(1n), parseDecimal('1.0005'), 3), 1001n, 'BHD tie rounds up');
  assert.equal(lineAmount(fromBigInt(7n), parseDecimal('0.5'), 0), 4n, 'JPY 3.5 -> 4');
  // Rounding per line, not per unit: 1,000 × 0.004 = 4.00, whereas rounding the unit price first gives 0.
  assert.equal(lineAmount(fromBigInt(1000n), parseDecimal('0.004'), 2), 400n);
  fc.assert(fc.property(ratioArb, decimalArb, digitsArb, (q, price, digits) => {
    assert.equal(lineAmount(q, price, digits), roundToMinor(mulRatio(q, fromDecimal(price)), digits));
  }));
});
