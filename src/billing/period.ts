// Billing periods: hours, days and months of a plan's calendar, in UTC or in an
// IANA time zone. Instants are milliseconds since the Unix epoch; a period is the
// half-open interval [start, end) of instants.
//
// Rules:
//  - A period starts at the first instant at which the zone's wall clock reads its
//    nominal start or later. Usually that is the instant the clock reads exactly
//    "2026-11-25 00:00". When clocks jump forward over that time (midnight does not
//    exist on some DST days in America/Santiago, Asia/Beirut, America/Havana...),
//    the period starts at the jump, the first instant that exists locally. When the
//    time occurs twice (clocks set back), the first occurrence counts. So a day is
//    23 or 25 hours long on DST days (23.5 or 24.5 in Australia/Lord_Howe), and an
//    hour period such as "2026-10-25T02" in Europe/Berlin, whose wall-clock hour
//    happens twice, lasts two real hours. A period ends where the next one starts.
//  - So when clocks are set back across a boundary (Antarctica/Troll 03:00 -> 01:00),
//    the instants whose clock reads the earlier hour a second time belong to the
//    later period, which had already begun.
//  - A period the clocks skip entirely (Pacific/Apia, 2011-12-30) is empty:
//    parsePeriod returns it with start === end, periodAt never returns it and
//    nextPeriod/previousPeriod step over it.
//  - Ids name the period in the zone's wall clock: "2026-11", "2026-11-25",
//    "2026-11-25T13". Years 0001-9999.
//  - Active hours use hour buckets (hourBucket), which are real time, not labels:
//    a bucket is a stretch of time during which both the local clock hour and the
//    UTC offset stay the same. So the repeated hour of a fall-back night is two
//    buckets, and in zones offset by 30/45 minutes buckets are not UTC hours. An
//    offset change in the middle of a clock hour cuts that hour into two buckets
//    (Lord_Howe's 30-minute shifts; Pacific/Chatham changes at 02:45 local).

export type PeriodKind = 'hour' | 'day' | 'month';
export const PERIOD_KINDS: readonly PeriodKind[] = ['hour', 'day', 'month'];

export interface Period {
  readonly kind: PeriodKind;
  /** The zone exactly as the caller (the plan) spelled it. */
  readonly timeZone: string;
  /** Local wall-clock name: "2026-11" | "2026-11-25" | "2026-11-25T13". */
  readonly id: string;
  /** First instant of the period (inclusive), ms since the epoch. */
  readonly start: number;
  /** First instant after the period (exclusive). */
  readonly end: number;
}

const SECOND = 1000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
// Wall clocks are at most ~15 hours from UTC (LMT of America/Sitka was +14:58:47),
// so every instant whose wall clock reads W lies within W ± 16 h.
const REACH = 16 * HOUR;

const floorSecond = (t: number): number => Math.floor(t / SECOND) * SECOND;

// A "wall" number is a local date-time encoded as if it were UTC (Date.UTC of the
// fields): wall-clock arithmetic (next day, next month) is then plain Date math.
// offset(t) = wall(t) - t.

interface Zone {
  readonly fmt: Intl.DateTimeFormat | undefined; // undefined for UTC: offset always 0
  /** The last hour bucket computed: instants usually arrive in order, so most lookups hit it. */
  span: { start: number; end: number } | undefined;
}

const zones = new Map<string, Zone>();

function makeFormat(timeZone: string): Intl.DateTimeFormat {
  return new Intl.DateTimeFormat('en-US', {
    timeZone, hourCycle: 'h23', // h23: midnight is "00", never "24"
    year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
  });
}

/** Why `tz` is not a usable IANA time zone name, or undefined if it is. */
export function timeZoneProblem(tz: string): string | undefined {
  if (typeof tz !== 'string' || tz.trim() === '') return 'time zone must be an IANA name such as "UTC" or "Europe/Berlin"';
  try {
    makeFormat(tz);
    return undefined;
  } catch (e) {
    if (e instanceof RangeError) return `unknown time zone "${tz}": expected an IANA name such as "UTC" or "Europe/Berlin"`;
    throw e;
  }
}

// One formatter per zone string (constructing Intl.DateTimeFormat is the slow part).
// Only valid zones are cached, and a plan configures few.
function zone(tz: string): Zone {
  let z = zones.get(tz);
  if (z === undefined) {
    const problem = timeZoneProblem(tz);
    if (problem !== undefined) throw new RangeError(problem);
    const fmt = makeFormat(tz);
    z = { fmt: fmt.resolvedOptions().timeZone === 'UTC' ? undefined : fmt, span: undefined };
    zones.set(tz, z);
  }
  return z;
}

// Date.UTC maps years 0-99 to 1900-1999; setUTCFullYear does not. Months and days
// may overflow (month 13 = January of the next year).
function utc(y: number, month: number, d: number, h = 0, min = 0, s = 0): number {
  const date = new Date(0);
  date.setUTCFullYear(y, month - 1, d);
  date.setUTCHours(h, min, s, 0);
  return date.getTime();
}

/** UTC offset in ms at instant t (formatters resolve whole seconds, as do tz offsets and transitions). */
function offsetAt(z: Zone, t: number): number {
  if (z.fmt === undefined) return 0;
  const sec = floorSecond(t);
  let y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  for (const p of z.fmt.formatToParts(sec)) {
    switch (p.type) {
      case 'year': y = Number(p.value); break;
      case 'month': mo = Number(p.value); break;
      case 'day': d = Number(p.value); break;
      case 'hour': h = Number(p.value); break;
      case 'minute': mi = Number(p.value); break;
      case 'second': s = Number(p.value); break;
    }
  }
  return utc(y, mo, d, h, mi, s) - sec;
}

const wallAt = (z: Zone, t: number): number => t + offsetAt(z, t);

/**
 * Smallest whole second in (lo, hi] where `pred` holds, given pred(lo) false,
 * pred(hi) true and pred monotone in between (one offset transition).
 */
function firstSecond(lo: number, hi: number, pred: (t: number) => boolean): number {
  lo = floorSecond(lo);
  hi = floorSecond(hi);
  while (hi - lo > SECOND) {
    const mid = lo + Math.floor((hi - lo) / (2 * SECOND)) * SECOND;
    if (pred(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** The first instant whose wall clock reads `wall` or later (see the rules at the top). */
function firstInstantAtOrAfter(z: Zone, wall: number): number {
  if (z.fmt === undefined) return wall;
  // Assumes at most one offset change within wall ± REACH (true of all tz data in use).
  const before = offsetAt(z, wall - REACH);
  const after = offsetAt(z, wall + REACH);
  let first = Infinity;
  for (const o of before === after ? [before] : [before, after]) {
    const t = wall - o;
    if (offsetAt(z, t) === o && t < first) first = t; // the clock reads exactly `wall` at t
  }
  if (first !== Infinity) return first;
  // No instant reads `wall`: it fell into a forward jump at some instant T, with
  // wall - after < T <= wall - before. Find T.
  if (after <= before) return wall - after; // not a single transition; cannot happen with real tz data
  return firstSecond(wall - after, wall - before, (t) => wallAt(z, t) >= wall);
}

// ---- wall-clock arithmetic per kind ----

function truncateWall(kind: PeriodKind, wall: number): number {
  const d = new Date(wall);
  const [y, mo, day] = [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate()];
  return kind === 'month' ? utc(y, mo, 1) : kind === 'day' ? utc(y, mo, day) : utc(y, mo, day, d.getUTCHours());
}

function addWall(kind: PeriodKind, wall: number, n: number): number {
  if (kind === 'hour') return wall + n * HOUR;
  if (kind === 'day') return wall + n * DAY;
  const d = new Date(wall);
  return utc(d.getUTCFullYear(), d.getUTCMonth() + 1 + n, 1);
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

function formatId(kind: PeriodKind, wall: number): string {
  const d = new Date(wall);
  const y = d.getUTCFullYear();
  if (y < 1 || y > 9999) throw new RangeError(`billing period outside the years 0001-9999 (${kind} starting ${d.toISOString()})`);
  const month = `${pad(y, 4)}-${pad(d.getUTCMonth() + 1)}`;
  if (kind === 'month') return month;
  const day = `${month}-${pad(d.getUTCDate())}`;
  return kind === 'day' ? day : `${day}T${pad(d.getUTCHours())}`;
}

// Years 0001-9999 (ids have four digits; Intl gives no sign for years before 1).
const MIN_INSTANT = utc(1, 1, 2);
const MAX_INSTANT = utc(9999, 12, 31);

function checkInstant(instant: number): void {
  if (!(instant >= MIN_INSTANT && instant < MAX_INSTANT)) {
    throw new RangeError(`instant ${instant} is not a number of ms within the years 0001-9999`);
  }
}

function checkKind(kind: PeriodKind): void {
  if (!PERIOD_KINDS.includes(kind)) throw new RangeError(`unknown period kind "${String(kind)}": expected hour, day or month`);
}

function fromWall(kind: PeriodKind, timeZone: string, z: Zone, wall: number): Period {
  const id = formatId(kind, wall);
  return { kind, timeZone, id, start: firstInstantAtOrAfter(z, wall), end: firstInstantAtOrAfter(z, addWall(kind, wall, 1)) };
}

// ---- public API ----

/** The period of `kind` in `timeZone` that contains `instant`. */
export function periodAt(instant: number, kind: PeriodKind, timeZone = 'UTC'): Period {
  checkKind(kind);
  checkInstant(instant);
  const z = zone(timeZone);
  let wall = truncateWall(kind, wallAt(z, instant));
  let p = fromWall(kind, timeZone, z, wall);
  // The wall clock's own period is almost always right. It is not when clocks went
  // back across a period boundary (Antarctica/Troll sets them back 2 hours, from
  // 03:00 to 01:00): the second 01:xx then belongs to hour "02", which had already
  // begun at the first 02:00. Step to the period whose bounds hold the instant.
  while (instant >= p.end) p = fromWall(kind, timeZone, z, (wall = addWall(kind, wall, 1)));
  while (instant < p.start) p = fromWall(kind, timeZone, z, (wall = addWall(kind, wall, -1)));
  return p;
}

/** The period right after `p` (starting at p.end). */
export function nextPeriod(p: Period): Period {
  return periodAt(p.end, p.kind, p.timeZone);
}

/** The period right before `p` (ending at p.start). */
export function previousPeriod(p: Period): Period {
  return periodAt(p.start - 1, p.kind, p.timeZone);
}

const ID_SHAPES: Record<PeriodKind, { re: RegExp; format: string; example: string }> = {
  month: { re: /^(\d{4})-(\d{2})$/, format: 'YYYY-MM', example: '2026-11' },
  day: { re: /^(\d{4})-(\d{2})-(\d{2})$/, format: 'YYYY-MM-DD', example: '2026-11-25' },
  hour: { re: /^(\d{4})-(\d{2})-(\d{2})T(\d{2})$/, format: 'YYYY-MM-DDTHH', example: '2026-11-25T13' },
};

/**
 * The period named `id` (as in Period.id). Strict: exactly the shape of `kind`, a
 * real calendar date, hour 00-23; anything else throws a RangeError naming the id.
 * May return an empty period (start === end) for a day the zone skipped.
 */
export function parsePeriod(id: string, kind: PeriodKind, timeZone = 'UTC'): Period {
  checkKind(kind);
  const { re, format, example } = ID_SHAPES[kind];
  const bad = (why: string): RangeError => new RangeError(`invalid ${kind} period id "${id}": ${why}; expected ${format}, e.g. ${example}`);
  const m = typeof id === 'string' ? re.exec(id) : null;
  if (m === null) throw bad('wrong shape');
  const [y, mo, d, h] = [Number(m[1]), Number(m[2]), m[3] === undefined ? 1 : Number(m[3]), m[4] === undefined ? 0 : Number(m[4])];
  if (y < 1) throw bad('year 0000 does not exist');
  if (mo < 1 || mo > 12) throw bad(`month ${m[2]} does not exist`);
  const days = new Date(utc(y, mo + 1, 0)).getUTCDate(); // day 0 of the next month = last day of this one
  if (d < 1 || d > days) throw bad(`${m[1]}-${m[2]} has ${days} days`);
  if (h > 23) throw bad(`hour ${m[4]} does not exist`);
  return fromWall(kind, timeZone, zone(timeZone), utc(y, mo, d, h));
}

/** The hour bucket containing t: [start, end) with a constant local clock hour and UTC offset. */
function hourSpan(z: Zone, t: number): { start: number; end: number } {
  const cached = z.span;
  if (cached !== undefined && cached.start <= t && t < cached.end) return cached;
  const o = offsetAt(z, t);
  const wall = t + o;
  // Where this local hour starts and ends if the offset stays `o` all hour long.
  const h0 = wall - (((wall % HOUR) + HOUR) % HOUR) - o;
  const h1 = h0 + HOUR;
  // Otherwise the bucket is cut at the offset change (one at most within an hour).
  const start = offsetAt(z, h0) === o ? h0 : firstSecond(h0, t, (x) => offsetAt(z, x) === o);
  const end = offsetAt(z, h1 - SECOND) === o ? h1 : firstSecond(t, h1 - SECOND, (x) => offsetAt(z, x) !== o);
  return (z.span = { start, end });
}

/**
 * UTC ms at which the local clock hour containing `instant` began (in zones offset
 * by 30/45 minutes that is not a UTC hour boundary); "active hours" are the
 * distinct values of this over a tenant's traffic. If the offset changed during
 * that clock hour, the bucket starts at the change instead (see the rules at the top).
 */
export function hourBucket(instant: number, timeZone = 'UTC'): number {
  checkInstant(instant);
  return hourSpan(zone(timeZone), instant).start;
}

/**
 * The number of hour buckets in `p`, i.e. the most active hours a tenant can have
 * in it: 24 for most days, 23 or 25 on DST days, 2 for an hour period whose clock
 * hour happens twice. It equals the elapsed hours, (p.end - p.start) / 3_600_000,
 * except where an offset change cuts a clock hour in two, which adds one bucket:
 * 24 and 25 on Lord_Howe's 23.5- and 24.5-hour days, 24 and 26 on Chatham's 23-
 * and 25-hour days.
 */
export function hoursIn(p: Period): number {
  const z = zone(p.timeZone);
  if (z.fmt === undefined) return (p.end - p.start) / HOUR;
  let n = 0;
  // Period bounds are bucket bounds (each is a local hour start or an offset change).
  for (let t = p.start; t < p.end; t = hourSpan(z, t).end) n++;
  return n;
}
