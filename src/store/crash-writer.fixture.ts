// Child process for crash.test.ts: records intervals of deterministic,
// monotonically growing fake counters into a file ledger as fast as it can,
// printing each interval index only after its commit returned. The parent
// kills it with SIGKILL at random moments and restarts it; each run resumes
// from what the ledger says was committed, exactly like a restarted agent.
//
// The counter model is exported so the parent can compute what the books must
// say for any number of committed intervals.

import { pathToFileURL } from 'node:url';
import { Ledger, type Direction, type Reading } from './ledger.js';

export const HOST = 'crash-host';
export const COUNTER_ID = '42';
/** Intervals per epoch; each epoch is a fake reboot whose counters restart at zero. */
export const EPOCH_LEN = 40;
export const TENANTS = Array.from({ length: 32 }, (_, j) => `crash-${j}`);
/** Counter classes: the default class (billable) and a free one. */
export const CLASSES = [
  { name: 'internet', billable: true },
  { name: 'crash-mgmt', billable: false },
] as const;
const BASE_MS = Date.UTC(2025, 5, 1);

export const intervalAt = (i: number): Date => new Date(BASE_MS + (i + 1) * 1000);
export const intervalIndex = (d: Date): number => (d.getTime() - BASE_MS) / 1000 - 1;
export const epochOf = (i: number) => {
  const e = Math.floor(i / EPOCH_LEN);
  return { bootId: `boot-${e}`, counterId: COUNTER_ID, startedAt: new Date(intervalAt(e * EPOCH_LEN).getTime() - 500) };
};

/**
 * Cumulative counters after position k (0-based) of an epoch, for counter
 * slot s (0 = unattributed, s >= 1 = TENANTS[s - 1]) and class c (index in
 * CLASSES). Class 0: every fourth slot moves only every third interval (zero
 * deltas write no row); slot 2's bytes grow by 2^58 per interval, so
 * checkpoints pass 2^63 and totals pass 2^64. Class 1: every third slot never
 * moves (zero readings without a checkpoint are ignored).
 */
export function reading(k: number, s: number, c: number, d: Direction): { packets: bigint; bytes: bigint } {
  const dir = d === 'ingress' ? 0n : 1n;
  if (c === 1) {
    const packets = BigInt(k + 1) * BigInt(s % 3);
    return { packets, bytes: packets * 80n };
  }
  const packets = s % 4 === 3 ? BigInt(Math.floor(k / 3)) * 5n : BigInt(k + 1) * (BigInt(s) + 1n + dir);
  const bytes = s === 2 ? BigInt(k + 1) * 2n ** 58n : packets * 1500n + dir;
  return { packets, bytes };
}

export const SLOTS = TENANTS.length + 1;

function main(): void {
  const [path, secondsArg] = process.argv.slice(2);
  if (!path) throw new Error('usage: crash-writer.fixture.ts <db> [seconds]');
  const deadline = Date.now() + Number(secondsArg ?? 10) * 1000;
  const ledger = Ledger.open(path, { hostId: HOST });
  const ids = ledger.ensureTenants(TENANTS);
  const classIds = ledger.ensureClasses(CLASSES.map((c) => c.name));
  const slotId = (s: number) => (s === 0 ? 0 : ids.get(TENANTS[s - 1])!);
  const last = ledger.lastExport();
  let i = last === null ? 0 : intervalIndex(last) + 1;
  process.stdout.write(`start ${i}\n`);
  while (Date.now() < deadline) {
    const k = i % EPOCH_LEN;
    const readings: Reading[] = [];
    for (let s = 0; s < SLOTS; s++) {
      CLASSES.forEach(({ name, billable }, c) => {
        for (const direction of ['ingress', 'egress'] as const) {
          readings.push({ tenantId: slotId(s), classId: classIds.get(name)!, direction, billable, ...reading(k, s, c, direction) });
        }
      });
    }
    ledger.recordInterval({ epoch: epochOf(i), at: intervalAt(i), readings });
    // Printed only after the commit returned: every index the parent sees is durable.
    process.stdout.write(`${i}\n`);
    i++;
  }
  ledger.close();
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
