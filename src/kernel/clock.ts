// CLOCK_TAI, the clock of bpf_ktime_get_tai_ns: it follows the wall clock
// (NTP steps included) at a whole number of seconds ahead of UTC (37 s since
// 2017), so times computed from calendar dates can be handed to programs.
import { libc } from './libbpf.js';

const CLOCK_REALTIME = 0;
const CLOCK_TAI = 11;

function readClock(clk: number, ts: Buffer): bigint {
  if (libc().clock_gettime(clk, ts) !== 0) throw new Error(`clock_gettime(${clk}) failed`);
  return ts.readBigInt64LE(0) * 1_000_000_000n + ts.readBigInt64LE(8);
}

/** TAI minus UTC in milliseconds, read from the kernel (0 where no NTP daemon set the offset). */
export function taiOffsetMs(): number {
  const ts = Buffer.alloc(16);
  const tai = readClock(CLOCK_TAI, ts);
  const utc = readClock(CLOCK_REALTIME, ts);
  // Whole seconds by definition; the two reads are microseconds apart.
  return Math.round(Number(tai - utc) / 1e9) * 1000 + 0; // + 0: never -0
}
