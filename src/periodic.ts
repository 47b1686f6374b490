// Work that runs every interval and on demand, never twice at once, and
// keeps its last result and failure count: the billing export and the flow
// export share this shape.

/** Told after every run. */
export interface TaskEvents<R> {
  onExport?(r: R): void;
  onError?(err: unknown): void;
}

export abstract class PeriodicTask<R> {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<R> | undefined;
  /** The last successful run's result. */
  last: R | undefined;
  /** Runs that threw (a listener that throws counts too). */
  failures = 0;

  constructor(
    protected readonly intervalMs: number,
    private readonly taskEvents: TaskEvents<R> = {},
  ) {}

  protected abstract run(): Promise<R>;

  /** Runs every interval from now on; the timer does not keep the process alive. */
  start(): void {
    this.#timer = setInterval(() => {
      this.runNow().catch(() => undefined); // failures are the subclass's to report
    }, this.intervalMs);
    this.#timer.unref();
  }

  /** Runs now; concurrent callers share one run. */
  runNow(): Promise<R> {
    this.#running ??= this.#runOnce().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #runOnce(): Promise<R> {
    try {
      const r = await this.run();
      this.last = r;
      this.taskEvents.onExport?.(r);
      return r;
    } catch (err) {
      this.failures++;
      this.taskEvents.onError?.(err);
      throw err;
    }
  }

  /** Stops the timer and waits for a run in progress. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#running) await this.#running.catch(() => undefined);
  }
}

/**
 * Synchronous work now and every ms (the SYN-flood and flood/scan polls): an
 * exception goes to onError and the next round runs anyway. The timer does
 * not keep the process alive. Returns what stops it.
 */
export function pollEvery(ms: number, fn: () => void, onError?: (err: Error) => void): () => void {
  const round = () => {
    try {
      fn();
    } catch (err) {
      onError?.(err as Error);
    }
  };
  round();
  const timer = setInterval(round, ms);
  timer.unref();
  return () => clearInterval(timer);
}
