import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  hourBucket, hoursIn, nextPeriod, parsePeriod, type Period, type PeriodKind, periodAt, previousPeriod, timeZoneProblem,
} from './period.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const at = (iso: string): number => {
  const t = Date.parse(iso);
  assert.ok(Number.isFinite(t), iso);
  return t;
};
const iso = (t: number): string => new Date(t).toISOString();
const span = (p: Period): [string, string] => [iso(p.start), iso(p.end)];

// Zones for the properties: DST on both hemispheres, changes at midnight (Santiago,
// Beirut, Havana, Sao Paulo until 2019, Asuncion), 30/45-minute offsets (Kolkata,
// Kathmandu, Chatham, St Johns, Tehran), a 30-minute DST shift (Lord_Howe), clocks
// set back across an hour boundary (Troll 2 h, Magadan 2014), a skipped day (Apia
// 2011) and Morocco's Ramadan changes.
const ZONES = [
  'UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Asia/Kathmandu', 'Australia/Lord_Howe', 'America/Santiago',
  'Asia/Beirut', 'America/Havana', 'America/Sao_Paulo', 'America/Asuncion', 'Antarctica/Troll', 'Asia/Magadan',
  'Pacific/Chatham', 'America/St_Johns', 'Asia/Tehran', 'Africa/Casablanca', 'Pacific/Apia', 'Pacific/Kiritimati',
  'Asia/Dhaka', 'America/Caracas',
];
// Zones that change their offset in the middle of a clock hour (Lord_Howe's
// 30-minute shifts at 02:00, Chatham at 02:45/03:45, St Johns at 00:01 until 2011,
// Caracas 2007/2016), and zones whose clocks were set back across the start of an
// hour or day (Troll 03:00 -> 01:00, Magadan 2014 02:00 -> 00:00, Chatham
// 03:45 -> 02:45, St Johns 00:01 -> 23:01).
const MID_HOUR_CHANGES = ['Australia/Lord_Howe', 'Pacific/Chatham', 'America/St_Johns', 'America/Caracas'];
const BACK_ACROSS_BOUNDARY = ['Antarctica/Troll', 'Asia/Magadan', 'Pacific/Chatham', 'America/St_Johns'];
const zoneArb = fc.constantFrom(...ZONES);
const kindArb = fc.constantFrom<PeriodKind>('hour', 'day', 'month');
const instantArb = fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2040, 0, 1) });

// Reference wall clock and offset, written independently of period.ts.
const wallFormats = new Map<string, Intl.DateTimeFormat>();
const offsetFormats = new Map<string, Intl.DateTimeFormat>();
/** Local wall clock at t as "YYYY-MM-DDTHH:MM:SS" (comparable as strings). */
function wallText(tz: string, t: number): string {
  let f = wallFormats.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
    wallFormats.set(tz, f);
  }
  const v: Record<string, string> = {};
  for (const p of f.formatToParts(t)) v[p.type] = p.value;
  return `${v.year.padStart(4, '0')}-${v.month}-${v.day}T${v.hour}:${v.minute}:${v.second}`;
}
/** UTC offset in minutes at t, from the zone-name text ("GMT+05:45"). */
function offsetMinutes(tz: string, t: number): number {
  let f = offsetFormats.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, timeZoneName: 'longOffset' });
    offsetFormats.set(tz, f);
  }
  const name = f.formatToParts(t).find((p) => p.type === 'timeZoneName')!.value;
  const m = /^GMT(?:([+-])(\d\d):(\d\d))?$/.exec(name);
  assert.ok(m, name);
  return m[1] === undefined ? 0 : (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]));
}
/** The first offset change after `from` within 400 days (to the second), if any. */
function nextChange(tz: string, from: number): number | undefined {
  const o = offsetMinutes(tz, from);
  for (let x = from + DAY; x <= from + 400 * DAY; x += DAY) {
    if (offsetMinutes(tz, x) === o) continue;
    let [lo, hi] = [Math.floor((x - DAY) / 1000), Math.floor(x / 1000)]; // seconds
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (offsetMinutes(tz, mid * 1000) === o) lo = mid;
      else hi = mid;
    }
    return hi * 1000;
  }
  return undefined;
}
// Random instants rarely fall near a DST change, so half of the cases are placed
// within 4 hours of the zone's next offset change after a random instant.
const caseArb = fc.oneof(
  fc.record({ t: instantArb, tz: zoneArb }),
  fc.record({ from: instantArb, tz: zoneArb, delta: fc.integer({ min: -4 * HOUR, max: 4 * HOUR }) }).map(({ from, tz, delta }) => {
    const change = nextChange(tz, from);
    return { t: change === undefined ? from : change + delta, tz };
  }),
);

/** The nominal wall-clock start of a period id and of the period after it. */
function nominalBounds(p: Period): [string, string] {
  const [y, mo, d = 1, h = 0] = p.id.split(/[-T]/).map(Number) as [number, number, number?, number?];
  const next = new Date(Date.UTC(2000, mo - 1, d, h));
  next.setUTCFullYear(y);
  if (p.kind === 'month') next.setUTCMonth(next.getUTCMonth() + 1);
  else if (p.kind === 'day') next.setUTCDate(next.getUTCDate() + 1);
  else next.setUTCHours(next.getUTCHours() + 1);
  const text = (x: Date): string => x.toISOString().slice(0, 19);
  const start = new Date(Date.UTC(2000, mo - 1, d, h));
  start.setUTCFullYear(y);
  return [text(start), text(next)];
}

test('timeZoneProblem accepts IANA names and explains the rest', () => {
  for (const ok of ['UTC', 'Etc/UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe', 'America/Santiago']) {
    assert.equal(timeZoneProblem(ok), undefined, ok);
  }
  for (const bad of ['', ' ', 'Mars/Olympus_Mons', 'Europe/Berln', '+01:00', 'GMT+1:00', 'Europe/Berlin ']) {
    const p = timeZoneProblem(bad);
    assert.ok(p !== undefined, bad);
    if (bad.trim() !== '') assert.ok(p.includes(`"${bad}"`), p);
  }
  assert.throws(() => periodAt(0, 'day', 'Mars/Olympus_Mons'), /unknown time zone "Mars\/Olympus_Mons"/);
  assert.throws(() => parsePeriod('2026-11', 'month', 'Nowhere'), RangeError);
});

test('UTC periods and ids; UTC is the default zone', () => {
  const t = at('2026-11-25T13:45:10.123Z');
  assert.deepEqual(periodAt(t, 'month'), { kind: 'month', timeZone: 'UTC', id: '2026-11', start: at('2026-11-01T00:00:00Z'), end: at('2026-12-01T00:00:00Z') });
  assert.deepEqual(periodAt(t, 'day'), { kind: 'day', timeZone: 'UTC', id: '2026-11-25', start: at('2026-11-25T00:00:00Z'), end: at('2026-11-26T00:00:00Z') });
  assert.deepEqual(periodAt(t, 'hour'), { kind: 'hour', timeZone: 'UTC', id: '2026-11-25T13', start: at('2026-11-25T13:00:00Z'), end: at('2026-11-25T14:00:00Z') });
  assert.deepEqual(parsePeriod('2026-12', 'month'), nextPeriod(periodAt(t, 'month')));
  assert.equal(nextPeriod(parsePeriod('2026-12-31T23', 'hour')).id, '2027-01-01T00');
  assert.equal(previousPeriod(parsePeriod('2026-01', 'month')).id, '2025-12');
  assert.equal(hourBucket(t), at('2026-11-25T13:00:00Z'));
  assert.equal(hoursIn(parsePeriod('2026-11', 'month')), 720);
  assert.equal(parsePeriod('0001-01-01', 'day').start, Date.UTC(2000, 0, 1) - 730_119 * 24 * HOUR, 'years before 100 are not mapped to 19xx');
});

test('UTC months have their calendar lengths, leap years included', () => {
  const expected = (y: number, m: number): number =>
    m === 2 ? ((y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28) : [4, 6, 9, 11].includes(m) ? 30 : 31;
  for (const [id, days] of [['2000-02', 29], ['1900-02', 28], ['2100-02', 28], ['2024-02', 29], ['2026-02', 28], ['2026-04', 30], ['2026-12', 31]] as const) {
    assert.equal(hoursIn(parsePeriod(id, 'month')), days * 24, id);
  }
  fc.assert(fc.property(fc.integer({ min: 1, max: 9998 }), fc.integer({ min: 1, max: 12 }), (y, m) => {
    const p = parsePeriod(`${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}`, 'month');
    assert.equal(p.end - p.start, expected(y, m) * 24 * HOUR);
    assert.equal(hoursIn(p), expected(y, m) * 24);
  }));
});

test('DST days: 23 and 25 hours, starts at local midnight', () => {
  const cases: [string, string, string, string, number][] = [
    ['Europe/Berlin', '2026-03-29', '2026-03-28T23:00:00.000Z', '2026-03-29T22:00:00.000Z', 23],
    ['Europe/Berlin', '2026-10-25', '2026-10-24T22:00:00.000Z', '2026-10-25T23:00:00.000Z', 25],
    ['Europe/Berlin', '2026-10-26', '2026-10-25T23:00:00.000Z', '2026-10-26T23:00:00.000Z', 24],
    ['America/New_York', '2026-03-08', '2026-03-08T05:00:00.000Z', '2026-03-09T04:00:00.000Z', 23],
    ['America/New_York', '2026-11-01', '2026-11-01T04:00:00.000Z', '2026-11-02T05:00:00.000Z', 25],
    ['Asia/Kolkata', '2026-11-25', '2026-11-24T18:30:00.000Z', '2026-11-25T18:30:00.000Z', 24],
  ];
  for (const [tz, id, start, end, hours] of cases) {
    const p = parsePeriod(id, 'day', tz);
    assert.deepEqual(span(p), [start, end], `${tz} ${id}`);
    assert.equal(hoursIn(p), hours, `${tz} ${id}`);
    assert.equal((p.end - p.start) / HOUR, hours, `${tz} ${id}`);
    assert.deepEqual(periodAt(p.start, 'day', tz), p);
    assert.deepEqual(periodAt(p.end - 1, 'day', tz), p);
  }
  const march = parsePeriod('2026-03', 'month', 'Europe/Berlin');
  assert.deepEqual(span(march), ['2026-02-28T23:00:00.000Z', '2026-03-31T22:00:00.000Z']);
  assert.equal(hoursIn(march), 31 * 24 - 1);
  assert.equal(hoursIn(parsePeriod('2026-10', 'month', 'Europe/Berlin')), 31 * 24 + 1);
  // The repeated wall-clock hour is one hour period of two real hours, and two buckets.
  const twice = parsePeriod('2026-10-25T02', 'hour', 'Europe/Berlin');
  assert.deepEqual(span(twice), ['2026-10-25T00:00:00.000Z', '2026-10-25T02:00:00.000Z']);
  assert.equal(hoursIn(twice), 2);
  assert.equal(hourBucket(at('2026-10-25T00:30:00Z'), 'Europe/Berlin'), at('2026-10-25T00:00:00Z'));
  assert.equal(hourBucket(at('2026-10-25T01:30:00Z'), 'Europe/Berlin'), at('2026-10-25T01:00:00Z'));
  // The skipped hour 02 of the spring day: the id is valid, the period starts where 03:00 does.
  const skipped = parsePeriod('2026-03-29T02', 'hour', 'Europe/Berlin');
  assert.deepEqual(span(skipped), ['2026-03-29T01:00:00.000Z', '2026-03-29T01:00:00.000Z']);
  assert.equal(nextPeriod(parsePeriod('2026-03-29T01', 'hour', 'Europe/Berlin')).id, '2026-03-29T03');
});

test('midnight that does not exist: the day starts at the first instant that exists locally', () => {
  // America/Santiago 2026-09-06: 24:00 of the 5th (-04) becomes 01:00 of the 6th (-03).
  const chile = parsePeriod('2026-09-06', 'day', 'America/Santiago');
  assert.deepEqual(span(chile), ['2026-09-06T04:00:00.000Z', '2026-09-07T03:00:00.000Z']);
  assert.equal(wallText('America/Santiago', chile.start), '2026-09-06T01:00:00');
  assert.equal(parsePeriod('2026-09-05', 'day', 'America/Santiago').end, chile.start);
  assert.equal(hoursIn(chile), 23);
  // ...and Saturday 2026-04-04 has 25 hours: 24:00 (-03) is set back to 23:00 (-04).
  const chileBack = parsePeriod('2026-04-04', 'day', 'America/Santiago');
  assert.deepEqual(span(chileBack), ['2026-04-04T03:00:00.000Z', '2026-04-05T04:00:00.000Z']);
  assert.equal(hoursIn(chileBack), 25);
  // Asia/Beirut: 00:00 -> 01:00 on 2026-03-29; 00:00 -> 23:00 of the 24th on 2026-10-25.
  assert.deepEqual(span(parsePeriod('2026-03-29', 'day', 'Asia/Beirut')), ['2026-03-28T22:00:00.000Z', '2026-03-29T21:00:00.000Z']);
  assert.deepEqual(span(parsePeriod('2026-10-24', 'day', 'Asia/Beirut')), ['2026-10-23T21:00:00.000Z', '2026-10-24T22:00:00.000Z']);
  // America/Havana: 00:00 -> 01:00 on 2026-03-08; 01:00 -> 00:00 on 2026-11-01 (midnight happens twice: the first counts).
  assert.deepEqual(span(parsePeriod('2026-03-08', 'day', 'America/Havana')), ['2026-03-08T05:00:00.000Z', '2026-03-09T04:00:00.000Z']);
  assert.deepEqual(span(parsePeriod('2026-11-01', 'day', 'America/Havana')), ['2026-11-01T04:00:00.000Z', '2026-11-02T05:00:00.000Z']);
  // A month whose first midnight did not exist (Havana, 2012-04-01 00:00 -> 01:00).
  const april = parsePeriod('2012-04', 'month', 'America/Havana');
  assert.deepEqual(span(april), ['2012-04-01T05:00:00.000Z', '2012-05-01T04:00:00.000Z']);
  assert.equal(parsePeriod('2012-03', 'month', 'America/Havana').end, april.start);
  assert.equal(hoursIn(april), 30 * 24 - 1);
  // Asia/Dhaka ended DST at midnight of new year 2010: 2009-12-31 had 25 hours.
  assert.deepEqual(span(parsePeriod('2009-12-31', 'day', 'Asia/Dhaka')), ['2009-12-30T17:00:00.000Z', '2009-12-31T18:00:00.000Z']);
});

test('Australia/Lord_Howe: 30-minute DST shift, half-hour buckets', () => {
  // 2026-04-05 02:00 (+11) -> 01:30 (+10:30) at 2026-04-04T15:00Z.
  const back = parsePeriod('2026-04-05', 'day', 'Australia/Lord_Howe');
  assert.deepEqual(span(back), ['2026-04-04T13:00:00.000Z', '2026-04-05T13:30:00.000Z']);
  assert.equal(back.end - back.start, 24.5 * HOUR);
  assert.equal(hoursIn(back), 25, 'the repeated half hour 01:30-02:00 is a bucket of its own');
  const bucket = (s: string): string => iso(hourBucket(at(s), 'Australia/Lord_Howe'));
  assert.equal(bucket('2026-04-04T14:59:59Z'), '2026-04-04T14:00:00.000Z'); // 01:59:59 +11
  assert.equal(bucket('2026-04-04T15:10:00Z'), '2026-04-04T15:00:00.000Z'); // 01:40 +10:30, cut at the change
  assert.equal(bucket('2026-04-04T15:30:00Z'), '2026-04-04T15:30:00.000Z'); // 02:00 +10:30
  const one = parsePeriod('2026-04-05T01', 'hour', 'Australia/Lord_Howe');
  assert.deepEqual(span(one), ['2026-04-04T14:00:00.000Z', '2026-04-04T15:30:00.000Z']);
  assert.equal(hoursIn(one), 2);
  // 2026-10-04 02:00 (+10:30) -> 02:30 (+11) at 2026-10-03T15:30Z.
  const fwd = parsePeriod('2026-10-04', 'day', 'Australia/Lord_Howe');
  assert.deepEqual(span(fwd), ['2026-10-03T13:30:00.000Z', '2026-10-04T13:00:00.000Z']);
  assert.equal(hoursIn(fwd), 24, '23.5 hours, but 02:30-03:00 is a clock hour with traffic like any other');
  assert.equal(bucket('2026-10-03T15:10:00Z'), '2026-10-03T14:30:00.000Z'); // 01:40 +10:30
  assert.equal(bucket('2026-10-03T15:40:00Z'), '2026-10-03T15:30:00.000Z'); // 02:40 +11, starts at the change
  assert.equal(bucket('2026-10-03T16:10:00Z'), '2026-10-03T16:00:00.000Z'); // 03:10 +11
});

test('hour buckets in zones with 30- and 45-minute offsets', () => {
  assert.equal(iso(hourBucket(at('2026-11-25T13:00:00Z'), 'Asia/Kolkata')), '2026-11-25T12:30:00.000Z');
  assert.equal(iso(hourBucket(at('2026-11-25T12:29:59.999Z'), 'Asia/Kolkata')), '2026-11-25T11:30:00.000Z');
  assert.equal(iso(hourBucket(at('2026-11-25T13:00:00Z'), 'Asia/Kathmandu')), '2026-11-25T12:15:00.000Z');
  assert.equal(iso(hourBucket(at('2026-11-25T13:00:00Z'), 'America/St_Johns')), '2026-11-25T12:30:00.000Z');
  assert.equal(iso(hourBucket(at('2026-11-25T13:00:00Z'), 'UTC')), '2026-11-25T13:00:00.000Z');
  // Chatham (+13:45 -> +12:45 at 03:45 local) changes in the middle of a clock hour:
  // 03:00-03:45 and then 02:45-03:00 are buckets of their own, so its 25-hour day has 26.
  const chatham = parsePeriod('2026-04-05', 'day', 'Pacific/Chatham');
  assert.equal((chatham.end - chatham.start) / HOUR, 25);
  assert.equal(hoursIn(chatham), 26);
  assert.equal(hoursIn(parsePeriod('2026-09-27', 'day', 'Pacific/Chatham')), 24, 'a 23-hour day');
  // Out-of-order lookups do not confuse the one-bucket cache.
  assert.equal(iso(hourBucket(at('2026-01-01T00:10:00Z'), 'Asia/Kolkata')), '2025-12-31T23:30:00.000Z');
  assert.equal(iso(hourBucket(at('2026-11-25T13:00:00Z'), 'Asia/Kolkata')), '2026-11-25T12:30:00.000Z');
});

test('clocks set back across a boundary: periods still partition time', () => {
  // Antarctica/Troll 2026-10-25T01:00Z: 03:00 (+02) -> 01:00 (+00). Hour "02" began at
  // the first 02:00 and lasts until 03:00 is first reached, so the second 01:xx belongs to it.
  const t = at('2026-10-25T01:30:00Z');
  assert.equal(wallText('Antarctica/Troll', t), '2026-10-25T01:30:00');
  const p = periodAt(t, 'hour', 'Antarctica/Troll');
  assert.equal(p.id, '2026-10-25T02');
  assert.deepEqual(span(p), ['2026-10-25T00:00:00.000Z', '2026-10-25T03:00:00.000Z']);
  assert.equal(previousPeriod(p).id, '2026-10-25T01');
  assert.equal(previousPeriod(p).end, p.start);
  assert.equal(hoursIn(p), 3);
});

test('a day the zone skipped is empty (Pacific/Apia, 2011-12-30)', () => {
  const skipped = parsePeriod('2011-12-30', 'day', 'Pacific/Apia');
  assert.equal(skipped.start, skipped.end);
  assert.equal(iso(skipped.start), '2011-12-30T10:00:00.000Z');
  assert.equal(hoursIn(skipped), 0);
  const before = parsePeriod('2011-12-29', 'day', 'Pacific/Apia');
  assert.equal(nextPeriod(before).id, '2011-12-31');
  assert.equal(previousPeriod(nextPeriod(before)).id, '2011-12-29');
  assert.equal(periodAt(skipped.start, 'day', 'Pacific/Apia').id, '2011-12-31');
});

test('bad ids are rejected with the id and the expected format named', () => {
  const bad: [string, PeriodKind, RegExp][] = [
    ['2026-13', 'month', /month 13/],
    ['2026-00', 'month', /month 00/],
    ['0000-01', 'month', /year 0000/],
    ['2026-11-25', 'month', /wrong shape/],
    ['2026-1', 'month', /wrong shape/],
    ['26-11', 'month', /wrong shape/],
    ['2026-02-30', 'day', /2026-02 has 28 days/],
    ['2024-02-30', 'day', /2024-02 has 29 days/],
    ['2026-04-31', 'day', /2026-04 has 30 days/],
    ['2026-11-00', 'day', /has 30 days/],
    ['2026-11', 'day', /wrong shape/],
    ['2026-11-25T13', 'day', /wrong shape/],
    ['2026-11-25 ', 'day', /wrong shape/],
    ['2026/11/25', 'day', /wrong shape/],
    ['２０２６-11-25', 'day', /wrong shape/],
    ['2026-11-25T24', 'hour', /hour 24/],
    ['2026-11-25T1', 'hour', /wrong shape/],
    ['2026-11-25 13', 'hour', /wrong shape/],
    ['2026-11-25T13:00', 'hour', /wrong shape/],
    ['2026-11-25', 'hour', /wrong shape/],
    ['', 'day', /wrong shape/],
  ];
  const formats: Record<PeriodKind, string> = { month: 'YYYY-MM', day: 'YYYY-MM-DD', hour: 'YYYY-MM-DDTHH' };
  for (const [id, kind, why] of bad) {
    assert.throws(() => parsePeriod(id, kind, 'Europe/Berlin'), (e: unknown) => {
      assert.ok(e instanceof RangeError, id);
      assert.ok(e.message.includes(`"${id}"`), e.message);
      assert.ok(e.message.includes(`expected ${formats[kind]}`), e.message);
      assert.match(e.message, why);
      return true;
    });
  }
  assert.throws(() => parsePeriod('2026-11', 'week' as PeriodKind), /unknown period kind "week"/);
  assert.throws(() => periodAt(Number.NaN, 'day'), RangeError);
  assert.throws(() => hourBucket(Infinity), RangeError);
});

test('property: periodAt(t) contains t and round-trips through its id', () => {
  fc.assert(fc.property(caseArb, kindArb, ({ t, tz }, kind) => {
    const p = periodAt(t, kind, tz);
    assert.ok(p.start <= t && t < p.end, `${tz} ${p.id} [${iso(p.start)}, ${iso(p.end)}) ∌ ${iso(t)}`);
    assert.deepEqual(parsePeriod(p.id, kind, tz), p);
    assert.equal(p.timeZone, tz);
    assert.equal(p.kind, kind);
    // The id names the wall-clock period at t, except when clocks were set back
    // across a boundary (then t belongs to the period that had already begun).
    const wall = wallText(tz, t);
    const [nominal] = nominalBounds(p);
    if (!BACK_ACROSS_BOUNDARY.includes(tz)) assert.equal(wall.slice(0, p.id.length), p.id, `${tz} ${iso(t)}`);
    else assert.ok(wall.slice(0, p.id.length) <= p.id && nominal <= wallText(tz, p.start));
  }), { numRuns: 300 });
});

test('property: bounds follow the rule "first instant whose wall clock reads the nominal start or later"', () => {
  fc.assert(fc.property(caseArb, kindArb, ({ t, tz }, kind) => {
    const p = periodAt(t, kind, tz);
    const [nominalStart, nominalEnd] = nominalBounds(p);
    assert.ok(wallText(tz, p.start - 1000) < nominalStart && nominalStart <= wallText(tz, p.start), `${tz} ${p.id} start`);
    assert.ok(wallText(tz, p.end - 1000) < nominalEnd && nominalEnd <= wallText(tz, p.end), `${tz} ${p.id} end`);
  }), { numRuns: 300 });
});

test('property: next/previous are inverse and periods partition time', () => {
  fc.assert(fc.property(caseArb, kindArb, ({ t, tz }, kind) => {
    const p = periodAt(t, kind, tz);
    assert.equal(nextPeriod(p).start, p.end);
    assert.equal(previousPeriod(p).end, p.start);
    assert.deepEqual(previousPeriod(nextPeriod(p)), p);
    assert.deepEqual(nextPeriod(previousPeriod(p)), p);
    let q = p;
    for (let i = 0; i < 6; i++) {
      const r = nextPeriod(q);
      assert.equal(r.start, q.end, 'no gap, no overlap');
      assert.ok(r.start < r.end, 'never empty');
      assert.ok(r.id > q.id, 'ids increase');
      assert.deepEqual(periodAt(r.start, kind, tz), r);
      assert.deepEqual(periodAt(r.end - 1, kind, tz), r);
      q = r;
    }
  }), { numRuns: 200 });
});

test('property: hourBucket is the start of the local clock hour (cut at offset changes)', () => {
  fc.assert(fc.property(caseArb, ({ t, tz }) => {
    const b = hourBucket(t, tz);
    assert.ok(b <= t && t - b < HOUR, `${tz} ${iso(t)} -> ${iso(b)}`);
    assert.equal(hourBucket(b, tz), b);
    const off = offsetMinutes(tz, b);
    assert.equal(offsetMinutes(tz, t), off, 'same offset as its bucket start');
    assert.equal(wallText(tz, t).slice(0, 13), wallText(tz, b).slice(0, 13), 'same local clock hour');
    // b is where the local hour begins, or where the offset changed within it.
    const hourStart = (b + off * 60_000) % HOUR === 0;
    assert.ok(hourStart || offsetMinutes(tz, b - 1000) !== off, `${tz} ${iso(b)}`);
    assert.notEqual(hourBucket(b - 1, tz), b);
  }), { numRuns: 500 });
});

test('property: hoursIn(p) counts the distinct hour buckets of p', () => {
  fc.assert(fc.property(caseArb, kindArb, ({ t, tz }, kind) => {
    const p = periodAt(t, kind, tz);
    const buckets = new Set<number>();
    // Offsets and changes are whole minutes (St Johns changed at 00:01 local, making
    // one-minute buckets), so every bucket contains one of these steps.
    for (let x = p.start; x < p.end; x += 60_000) buckets.add(hourBucket(x, tz));
    assert.equal(hoursIn(p), buckets.size, `${tz} ${p.id}`);
    assert.equal(Math.min(...buckets), p.start, 'a period starts with a bucket');
    // One bucket per elapsed hour, unless the zone changes its offset in the middle of
    // a clock hour, which cuts that hour in two.
    const elapsed = (p.end - p.start) / HOUR;
    if (!MID_HOUR_CHANGES.includes(tz)) assert.equal(hoursIn(p), elapsed, `${tz} ${p.id}`);
    else assert.ok(elapsed <= hoursIn(p) && hoursIn(p) <= elapsed + 1, `${tz} ${p.id}: ${hoursIn(p)} buckets in ${elapsed} h`);
  }), { numRuns: 150 });
});
