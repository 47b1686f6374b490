// Moves flows from the kernel to the flow store: every interval (and on
// demand) the flow counters and the whole flow map are read, diffed against
// the previous read, and the moved flows stored. Independent of the billing
// export: flows never feed billing, and a failed flow export changes nothing
// in the ledger.
import { bootId } from '../store/index.js';
import { PeriodicTask, type TaskEvents } from '../periodic.js';
import { evictedFlows, type FlowCounters } from './counters.js';
import { FlowTracker } from './delta.js';
import type { FlowBuffers, FlowSnapshot } from './snapshot.js';
import type { FlowStore, RecordedInterval } from './store.js';

/** What the exporter needs from the datapath (MeteringDatapath provides it). */
export interface FlowSource {
  readonly maxFlows: number;
  readFlowCounters(): FlowCounters;
  /** into: buffers of an earlier snapshot nobody uses any more, to read into. */
  readFlows(into?: FlowBuffers): FlowSnapshot;
  /** Buffers a whole read fits in, already faulted in. */
  newFlowBuffers?(): FlowBuffers;
}

export interface FlowExportResult extends RecordedInterval {
  live: number;
  capacity: number;
  counters: FlowCounters;
  evicted: bigint;
  /** Milliseconds spent reading the kernel, diffing, and storing. */
  readMs: number;
  diffMs: number;
  storeMs: number;
  durationMs: number;
}

export type FlowExporterEvents = TaskEvents<FlowExportResult>;

export class FlowExporter extends PeriodicTask<FlowExportResult> {
  private readonly boot: string;
  private readonly tracker: FlowTracker;
  /**
   * Buffers of the read the tracker holds as its previous one (held), and
   * of the one before (spare), free to read into. Reading into memory the
   * process has touched before spares a page fault per 4 KiB: half of a
   * 1M-flow read. The first two reads get buffers faulted in at start.
   */
  #held: FlowBuffers | undefined;
  #spare: FlowBuffers | undefined;
  #second: FlowBuffers | undefined;

  constructor(
    private readonly source: FlowSource,
    private readonly store: FlowStore,
    intervalMs: number,
    events: FlowExporterEvents = {},
    boot = bootId(),
  ) {
    super(intervalMs, events);
    this.boot = boot;
    // A restarted agent continues where the store says the last export left off.
    this.tracker = new FlowTracker(boot, store.resumePoint());
    this.#spare = source.newFlowBuffers?.();
    this.#second = source.newFlowBuffers?.();
    store.reserve(source.maxFlows);
  }

  /** Exports now; concurrent callers share one export. */
  exportNow(): Promise<FlowExportResult> {
    return this.runNow();
  }

  protected async run(): Promise<FlowExportResult> {
    const t0 = performance.now();
    const counters = this.source.readFlowCounters(); // before the map: see evictedFlows
    const snap = this.source.readFlows(this.#spare);
    const t1 = performance.now();
    const iv = this.tracker.next(snap);
    // The tracker now keeps snap instead of the read before it, whose buffers are free for the next read.
    this.#spare = this.#held ?? this.#second;
    this.#second = undefined;
    this.#held = snap.storage;
    const t2 = performance.now();
    const rec = this.store.record(iv, { bootId: this.boot, capacity: this.source.maxFlows, counters });
    const t3 = performance.now();
    return {
      ...rec, live: snap.count, capacity: this.source.maxFlows, counters, evicted: evictedFlows(counters, snap.count),
      readMs: t1 - t0, diffMs: t2 - t1, storeMs: t3 - t2, durationMs: t3 - t0,
    };
  }

}
