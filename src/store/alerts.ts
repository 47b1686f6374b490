// Alerts and their webhook deliveries, in the ledger: an alert raised just
// before a crash is still delivered after it, and one raised twice (the same
// idempotency key) is recorded, and delivered, once.
import type { Database as Db } from 'better-sqlite3';
import type { Ledger } from './ledger.js';

export interface Delivery {
  alertId: number;
  key: string;
  body: string;
  webhook: string;
  /** Attempts made before this one. */
  attempts: number;
}

export class AlertStore {
  readonly #db: Db;

  constructor(ledger: Ledger) {
    this.#db = ledger.db;
  }

  /** Records an alert and a delivery to each webhook; false (and nothing written) when the key was recorded before. */
  record(key: string, body: string, webhooks: readonly string[], now: number): boolean {
    return this.#db.transaction(() => {
      const r = this.#db.prepare('INSERT INTO alerts (key, created_at, body) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING').run(key, now, body);
      if (r.changes === 0) return false;
      const id = Number(r.lastInsertRowid);
      const add = this.#db.prepare('INSERT INTO alert_deliveries (alert_id, webhook, next_at) VALUES (?, ?, ?)');
      for (const w of webhooks) add.run(id, w, now);
      return true;
    }).immediate();
  }

  /** Deliveries whose next attempt is due, oldest alert first. */
  due(now: number, limit = 100): Delivery[] {
    return (this.#db
      .prepare(`SELECT d.alert_id, a.key, a.body, d.webhook, d.attempts FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id
                WHERE d.next_at IS NOT NULL AND d.next_at <= ? ORDER BY d.alert_id, d.webhook LIMIT ?`)
      .all(now, limit) as Array<{ alert_id: number; key: string; body: string; webhook: string; attempts: number }>)
      .map((r) => ({ alertId: r.alert_id, key: r.key, body: r.body, webhook: r.webhook, attempts: r.attempts }));
  }

  delivered(d: Delivery, now: number): void {
    this.#db.prepare('UPDATE alert_deliveries SET attempts = attempts + 1, next_at = NULL, delivered_at = ?, last_error = NULL WHERE alert_id = ? AND webhook = ?')
      .run(now, d.alertId, d.webhook);
  }

  /** A failed attempt: retried at nextAt, or given up when nextAt is null. */
  failed(d: Delivery, error: string, nextAt: number | null): void {
    this.#db.prepare('UPDATE alert_deliveries SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE alert_id = ? AND webhook = ?')
      .run(nextAt, error.slice(0, 500), d.alertId, d.webhook);
  }

  /** Deliveries not yet made: still retrying, and given up. */
  backlog(): { pending: number; abandoned: number } {
    const r = this.#db
      .prepare(`SELECT sum(next_at IS NOT NULL) AS pending, sum(next_at IS NULL AND delivered_at IS NULL) AS abandoned FROM alert_deliveries`)
      .get() as { pending: number | null; abandoned: number | null };
    return { pending: r.pending ?? 0, abandoned: r.abandoned ?? 0 };
  }

  /** The latest alerts, newest first, with the state of each delivery. */
  recent(limit = 100): AlertRecord[] {
    const alerts = this.#db.prepare('SELECT id, key, created_at, body FROM alerts ORDER BY id DESC LIMIT ?')
      .all(limit) as Array<{ id: number; key: string; created_at: number; body: string }>;
    const deliveries = this.#db.prepare('SELECT webhook, attempts, next_at, delivered_at, last_error FROM alert_deliveries WHERE alert_id = ? ORDER BY webhook');
    return alerts.map((a) => ({
      key: a.key,
      createdAt: new Date(a.created_at).toISOString(),
      alert: JSON.parse(a.body) as unknown,
      deliveries: (deliveries.all(a.id) as Array<{ webhook: string; attempts: number; next_at: number | null; delivered_at: number | null; last_error: string | null }>)
        .map((d) => ({
          webhook: d.webhook,
          state: d.delivered_at !== null ? 'delivered' as const : d.next_at !== null ? 'pending' as const : 'abandoned' as const,
          attempts: d.attempts,
          lastError: d.last_error,
        })),
    }));
  }
}

export interface AlertRecord {
  key: string;
  createdAt: string;
  /** The alert as POSTed. */
  alert: unknown;
  deliveries: Array<{ webhook: string; state: 'delivered' | 'pending' | 'abandoned'; attempts: number; lastError: string | null }>;
}
