import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatDuration, parseDecimal, parseDuration, parseRate, parseSize, UnitError } from './units.js';

test('durations parse exactly to milliseconds', () => {
  assert.equal(parseDuration('10s'), 10_000);
  assert.equal(parseDuration('1m'), 60_000);
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('1.5h'), 5_400_000);
  assert.equal(parseDuration('7d'), 604_800_000);
  assert.equal(parseDuration(1500), 1500, 'numbers are already milliseconds');
});

test('bad durations name the field', () => {
  for (const bad of ['10', '', 's', '10 s', '1.0001s', '10sec', '-1s', 'abc']) {
    assert.throws(() => parseDuration(bad, 'metering.interval'), (e: unknown) => e instanceof UnitError && e.message.startsWith('metering.interval: '), bad);
  }
});

test('sizes: decimal prefixes are powers of 1000, binary ones powers of 1024', () => {
  assert.equal(parseSize('50MB'), 50_000_000);
  assert.equal(parseSize('1GiB'), 1_073_741_824);
  assert.equal(parseSize('1.5GB'), 1_500_000_000);
  assert.equal(parseSize('1.5KiB'), 1536);
  assert.equal(parseSize('2kB'), 2000);
  assert.equal(parseSize('2KB'), 2000);
  assert.equal(parseSize('12B'), 12);
  assert.equal(parseSize('12'), 12);
  assert.equal(parseSize(4096), 4096);
  assert.equal(parseSize('4PiB'), 4 * 1024 ** 5);
  assert.throws(() => parseSize('8PiB'), /too large/, '2^53 bytes is beyond exact integers');
  assert.throws(() => parseSize('0.3B'), /whole number of bytes/);
  assert.throws(() => parseSize('10mb'), /not a size/);
  assert.throws(() => parseSize('10GiBs'), /not a size/);
  assert.throws(() => parseSize('9000PB'), /too large/);
  assert.throws(() => parseSize(1.5), /whole number/);
});

test('rates are bits per second, tc style', () => {
  assert.equal(parseRate('10mbit'), 10_000_000);
  assert.equal(parseRate('1gbit'), 1_000_000_000);
  assert.equal(parseRate('1Gbit'), 1_000_000_000);
  assert.equal(parseRate('512kbit'), 512_000);
  assert.equal(parseRate('2.5mbit'), 2_500_000);
  assert.equal(parseRate(64000), 64000);
  assert.throws(() => parseRate('10mbps'), /ambiguous/);
  assert.throws(() => parseRate('10mb'), /not a rate/);
});

test('decimals are canonical strings', () => {
  assert.equal(parseDecimal('0.050'), '0.05');
  assert.equal(parseDecimal('007'), '7');
  assert.equal(parseDecimal(12), '12');
  assert.equal(parseDecimal('4.0'), '4');
  assert.throws(() => parseDecimal('1e3'), /exact amount/);
  assert.throws(() => parseDecimal(0.1), /exact amount/);
  assert.throws(() => parseDecimal('-1'), /exact amount/);
});

test('property: every whole duration round-trips through its formatted text', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 10 * 365 * 86_400_000 }), (ms) => parseDuration(formatDuration(ms)) === ms));
});

test('property: n<unit> is exactly n times the unit', () => {
  const units: Array<[string, number]> = [['B', 1], ['kB', 1e3], ['MB', 1e6], ['KiB', 1024], ['MiB', 1024 ** 2], ['GiB', 1024 ** 3]];
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 1_000_000 }), fc.constantFrom(...units), (n, [u, f]) => parseSize(`${n}${u}`) === n * f),
  );
});
