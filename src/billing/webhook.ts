// Delivers recorded alerts (src/store/alerts.ts) to webhooks: an HTTP POST of
// the alert's JSON with an Idempotency-Key header (the same for every attempt,
// so a receiver that saw a retried alert can drop it), retried with
// exponential backoff until a 2xx answer or the last attempt. Runs every
// second; an agent restart resumes where the outbox left off.
import { PeriodicTask, type TaskEvents } from '../periodic.js';
import type { AlertStore, Delivery } from '../store/index.js';

export interface WebhookOptions {
  /** Attempts per delivery before giving up. */
  maxAttempts?: number;
  /** First retry delay; doubles per attempt up to maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
  timeoutMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

export interface DeliveryRound {
  delivered: number;
  failed: Array<{ webhook: string; key: string; attempt: number; error: string; gaveUp: boolean }>;
}

export const WEBHOOK_CHECK_MS = 1000;

export class WebhookSender extends PeriodicTask<DeliveryRound> {
  readonly #store: AlertStore;
  readonly #o: Required<WebhookOptions>;

  constructor(store: AlertStore, opts: WebhookOptions = {}, events: TaskEvents<DeliveryRound> = {}) {
    super(WEBHOOK_CHECK_MS, events);
    this.#store = store;
    this.#o = { maxAttempts: 10, backoffMs: 1000, maxBackoffMs: 300_000, timeoutMs: 5000, now: Date.now, ...opts };
  }

  async #post(d: Delivery): Promise<string | undefined> {
    try {
      const res = await fetch(d.webhook, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': d.key, 'x-tollgate-attempt': String(d.attempts + 1) },
        body: d.body,
        signal: AbortSignal.timeout(this.#o.timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined); // let the connection be reused
      return res.ok ? undefined : `HTTP ${res.status}`;
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      return e.cause?.code ? `${e.message} (${e.cause.code})` : e.message;
    }
  }

  protected async run(): Promise<DeliveryRound> {
    const round: DeliveryRound = { delivered: 0, failed: [] };
    for (const d of this.#store.due(this.#o.now())) {
      const error = await this.#post(d);
      const now = this.#o.now();
      if (error === undefined) {
        this.#store.delivered(d, now);
        round.delivered++;
        continue;
      }
      const attempt = d.attempts + 1;
      const gaveUp = attempt >= this.#o.maxAttempts;
      const delay = Math.min(this.#o.maxBackoffMs, this.#o.backoffMs * 2 ** (attempt - 1));
      this.#store.failed(d, error, gaveUp ? null : now + delay);
      round.failed.push({ webhook: d.webhook, key: d.key, attempt, error, gaveUp });
    }
    return round;
  }
}
