// Moves kernel counters into the ledger: every interval (and on demand) the
// cumulative per-CPU counters are read and the ledger stores the deltas and
// new checkpoints in one transaction. Reads are never destructive, so a crash
// anywhere in here loses nothing: the next export picks up from the last
// committed checkpoint. TOLLGATE_TEST_FAULT lets crash tests kill the
// process at the two instants that matter (docs/ledger.md, "Crash testing").
import type { ContainerReading, Ledger } from '../store/index.js';
import { bootId } from '../store/index.js';
import { PeriodicTask, type TaskEvents } from '../periodic.js';
import type { MeteringDatapath } from './datapath.js';

export interface ExportResult {
  at: Date;
  rows: number;
  packets: bigint;
  bytes: bigint;
  durationMs: number;
}

export interface ExporterOptions extends TaskEvents<ExportResult> {
  /** The per-container breakdown to record with each interval (read right after the billing counters). */
  containers?(): ContainerReading[];
}

export const FAULT_ENV = 'TOLLGATE_TEST_FAULT';
/** after-read: counters read, nothing committed; after-commit: committed, nothing else done. */
export const FAULT_POINTS = ['after-read', 'after-commit'] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];

export interface Fault {
  point: FaultPoint;
  /** Chance that one export dies at the point, in (0, 1]. */
  probability: number;
}

/** `<point>:<probability>`, e.g. "after-read:0.3"; unset or empty is no fault. */
export function parseFault(value: string | undefined): Fault | undefined {
  if (value === undefined || value === '') return undefined;
  const [point, probability, ...rest] = value.split(':');
  if (!FAULT_POINTS.includes(point as FaultPoint) || probability === undefined || rest.length > 0) {
    throw new Error(`${FAULT_ENV}: must be <point>:<probability> with point one of ${FAULT_POINTS.join(', ')}, got ${JSON.stringify(value)}`);
  }
  const p = Number(probability);
  if (!/^\d*\.?\d+$/.test(probability) || !(p > 0 && p <= 1)) {
    throw new Error(`${FAULT_ENV}: probability must be a decimal number in (0, 1], got ${JSON.stringify(probability)}`);
  }
  return { point: point as FaultPoint, probability: p };
}

export class Exporter extends PeriodicTask<ExportResult> {
  private readonly boot = bootId();
  private readonly fault = parseFault(process.env[FAULT_ENV]);
  private exportsStarted = 0;

  constructor(
    private readonly datapath: MeteringDatapath,
    private readonly ledger: Ledger,
    intervalMs: number,
    /** Whether a class is billable, as the policy says now; rows record it. */
    private readonly billable: (classId: number) => boolean,
    private readonly events: ExporterOptions = {},
  ) {
    super(intervalMs, events);
  }

  /** Exports now; concurrent callers share one export. */
  exportNow(): Promise<ExportResult> {
    return this.runNow();
  }

  protected async run(): Promise<ExportResult> {
    const t0 = performance.now();
    this.exportsStarted++;
    const readings = this.datapath.readCounters().map((r) => ({ ...r, billable: this.billable(r.classId) }));
    const containers = this.events.containers?.() ?? [];
    const at = new Date();
    if (this.fault) this.crashAt('after-read');
    const r = this.ledger.recordInterval({
      epoch: { bootId: this.boot, counterId: this.datapath.counterId() },
      at,
      readings,
      containers,
    });
    if (this.fault) this.crashAt('after-commit');
    return { at, rows: r.rows, packets: r.packets, bytes: r.bytes, durationMs: performance.now() - t0 };
  }

  /**
   * kill -9 of this process, with the fault's probability. Never in the
   * process's first export: the agent makes it before it serves its API, and
   * a test must be able to tell a crash from an agent that never came up.
   */
  private crashAt(point: FaultPoint): void {
    if (this.fault?.point !== point || this.exportsStarted === 1 || Math.random() >= this.fault.probability) return;
    // Writes to stderr are synchronous for files, TTYs and pipes on Linux: the test sees the line.
    process.stderr.write(`tollgate: ${FAULT_ENV}: SIGKILL ${point}\n`);
    process.kill(process.pid, 'SIGKILL');
  }

}
