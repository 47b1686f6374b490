// Moves kernel counters into the ledger: every interval (and on demand) the
// cumulative per-CPU counters are read and the ledger stores the deltas and
// new checkpoints in one transaction. Reads are never destructive, so a crash
// anywhere in here loses nothing: the next export picks up from the last
// committed checkpoint.
import type { Ledger } from '../store/index.js';
import { bootId } from '../store/index.js';
import type { MeteringDatapath } from './datapath.js';

export interface ExportResult {
  at: Date;
  rows: number;
  packets: bigint;
  bytes: bigint;
  durationMs: number;
}

export interface ExporterEvents {
  onExport?(r: ExportResult): void;
  onError?(err: unknown): void;
}

export class Exporter {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<ExportResult> | undefined;
  private readonly boot = bootId();
  last: ExportResult | undefined;
  failures = 0;

  constructor(
    private readonly datapath: MeteringDatapath,
    private readonly ledger: Ledger,
    private readonly intervalMs: number,
    /** Whether a class is billable, as the policy says now; rows record it. */
    private readonly billable: (classId: number) => boolean,
    private readonly events: ExporterEvents = {},
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.exportNow().catch(() => undefined);
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Exports now; concurrent callers share one export. */
  exportNow(): Promise<ExportResult> {
    this.running ??= this.run().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async run(): Promise<ExportResult> {
    const t0 = performance.now();
    try {
      const readings = this.datapath.readCounters().map((r) => ({ ...r, billable: this.billable(r.classId) }));
      const at = new Date();
      const r = this.ledger.recordInterval({
        epoch: { bootId: this.boot, counterId: this.datapath.counterId() },
        at,
        readings,
      });
      const res: ExportResult = { at, rows: r.rows, packets: r.packets, bytes: r.bytes, durationMs: performance.now() - t0 };
      this.last = res;
      this.events.onExport?.(res);
      return res;
    } catch (err) {
      this.failures++;
      this.events.onError?.(err);
      throw err;
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.running) await this.running.catch(() => undefined);
  }
}
