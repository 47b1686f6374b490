// Work that runs every interval and on demand, never twice at once: the
// billing export and the flow export share this shape.
export abstract class PeriodicTask<R> {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<R> | undefined;

  constructor(protected readonly intervalMs: number) {}

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
    this.#running ??= this.run().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** Stops the timer and waits for a run in progress. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#running) await this.#running.catch(() => undefined);
  }
}
