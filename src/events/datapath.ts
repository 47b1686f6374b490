// Reads the datapath's security events (the pinned tg_sev_ring) into the
// recorder, and reports the records that never made it into the ring (the
// ring reader's lost counter, TG_SEV_LOST). Loss is reported once per lost
// record, also loss that happened while no agent was running: the total
// already reported is kept in the event store, per ring (a new pin counts
// from zero).
import { RingBufReader, TypedMap, u32, u64, type BpfMap } from '../kernel/index.js';
import { TG_SEV_LOST, TG_SEV_SENT, TG_SEV_SUPPRESSED } from '../kernel/abi.gen.js';
import type { NewEvent } from './event.js';
import type { EventRecorder } from './recorder.js';

export interface DatapathEventsOptions {
  ring: BpfMap;
  /** Per-CPU u64 array indexed by enum tg_sev_stat. */
  stats: BpfMap;
  recorder: EventRecorder;
  /** The event a record stands for; undefined skips it. */
  describe(record: Buffer): NewEvent | undefined;
  /** Records lost since the last report, and the ring's total. Also recorded as an "events.lost" event. */
  onLost?(lost: bigint, total: bigint): void;
  onError?(err: Error): void;
}

export interface KernelEventStats {
  sent: bigint;
  lost: bigint;
  suppressed: bigint;
}

export class DatapathEvents {
  readonly #opts: DatapathEventsOptions;
  readonly #stats: TypedMap<number, bigint>;
  readonly #reader: RingBufReader;
  readonly #lostKey: string;
  /** The ring's lost total already reported (kept in the store). */
  #reported: bigint;
  readonly #pending: Buffer[] = [];
  #scheduled: NodeJS.Immediate | undefined;

  private constructor(opts: DatapathEventsOptions) {
    this.#opts = opts;
    this.#stats = new TypedMap(opts.stats, u32, u64);
    this.#lostKey = `kernel.lost.${opts.ring.id}`;
    this.#reported = BigInt(opts.recorder.store.getState(this.#lostKey) ?? '0');
    this.#reader = new RingBufReader(opts.ring, { lostCounter: { map: opts.stats, index: TG_SEV_LOST } });
    // Batches that arrive in the same turn of the event loop are stored in one transaction.
    this.#reader.on('records', (records) => {
      for (const r of records) this.#pending.push(r);
      this.#scheduled ??= setImmediate(() => {
        this.#scheduled = undefined;
        this.#take(this.#pending.splice(0));
      });
    });
    this.#reader.on('lost', (n) => this.#guard(() => this.#report(n)));
    this.#reader.on('error', (err) => opts.onError?.(err));
  }

  /** Starts reading; resolves once the reader runs. Loss that happened while nobody read is reported right away. */
  static async start(opts: DatapathEventsOptions): Promise<DatapathEvents> {
    const d = new DatapathEvents(opts);
    try {
      await d.#reader.ready;
      if (d.#reader.lostAtStart > d.#reported) d.#report(d.#reader.lostAtStart - d.#reported);
    } catch (err) {
      await d.stop();
      throw err;
    }
    return d;
  }

  /** The kernel's totals for this ring (for the life of its pin). */
  stats(): KernelEventStats {
    const sums = new Map(this.#stats.entriesSum());
    return { sent: sums.get(TG_SEV_SENT) ?? 0n, lost: sums.get(TG_SEV_LOST) ?? 0n, suppressed: sums.get(TG_SEV_SUPPRESSED) ?? 0n };
  }

  /** Records received by this reader. */
  get received(): number {
    return this.#reader.received;
  }

  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#opts.onError?.(err as Error);
    }
  }

  #take(records: Buffer[]): void {
    this.#guard(() => {
      const events: NewEvent[] = [];
      for (const r of records) {
        const e = this.#opts.describe(r);
        if (e) events.push(e);
      }
      this.#opts.recorder.record(events);
    });
  }

  #report(lost: bigint): void {
    const total = this.#reported + lost;
    this.#opts.recorder.record([{
      at: Date.now(), type: 'events.lost', tenant: null, flow: null, rule: null, action: null,
      detail: { lost: Number(lost), total: Number(total), reason: 'the datapath found its event ring full; enforcement was not affected' },
    }]);
    this.#opts.recorder.store.setState(this.#lostKey, String(total));
    this.#reported = total;
    this.#opts.onLost?.(lost, total);
  }

  /** Stops reading; what is still in the ring is delivered first. */
  async stop(): Promise<void> {
    await this.#reader.stop();
    if (this.#scheduled) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    this.#take(this.#pending.splice(0));
  }
}
