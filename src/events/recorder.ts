// Records security events: the store numbers them, the audit file gets a
// line each, the per-type counts move, and live subscribers get them, in
// that order. A failed audit write is reported and does not stop the rest:
// the store has the events, and the next start appends them to the file.
import { AuditLog, markAudited } from './audit.js';
import type { NewEvent, SecurityEvent } from './event.js';
import { EventHub } from './hub.js';
import { EventStore } from './store.js';

export interface RecorderOptions {
  /** Store file (SQLite). */
  db: string;
  /** Audit file (JSON lines). */
  audit: string;
  onAuditError?(err: Error): void;
}

export class EventRecorder {
  readonly store: EventStore;
  readonly audit: AuditLog;
  readonly hub = new EventHub();
  /** Events recorded by this process, by type. */
  readonly counts = new Map<string, number>();
  /** Events the audit file caught up with at open (recorded before a crash). */
  readonly caughtUp: number;
  readonly #onAuditError: (err: Error) => void;
  /** A write to the audit file failed: the next record catches the file up from the store. */
  #auditBehind = false;
  /** The last id this process appended to the audit file, and when the store last heard of it. */
  #audited = 0;
  #markedAt = 0;

  constructor(opts: RecorderOptions) {
    this.store = EventStore.open(opts.db);
    this.audit = new AuditLog(opts.audit);
    this.#onAuditError = opts.onAuditError ?? (() => undefined);
    try {
      this.caughtUp = this.audit.catchUp(this.store);
    } catch (err) {
      this.store.close();
      throw new Error(`audit file ${opts.audit}: ${(err as Error).message}`, { cause: err });
    }
  }

  record(events: readonly NewEvent[]): SecurityEvent[] {
    const out = this.store.append(events);
    if (out.length === 0) return out;
    const json = out.map((e) => JSON.stringify(e)); // once, for the file and every stream
    try {
      if (this.#auditBehind) this.audit.catchUp(this.store); // these events included
      else {
        this.audit.appendLines(json);
        this.#audited = out[out.length - 1]!.id;
        this.#markAudited(false);
      }
      this.#auditBehind = false;
    } catch (err) {
      this.#auditBehind = true;
      this.#onAuditError(err as Error);
    }
    for (const e of out) this.counts.set(e.type, (this.counts.get(e.type) ?? 0) + 1);
    this.hub.publish(out, json);
    return out;
  }

  /**
   * Keeps the audit file's position in the store at most once a second (a
   * transaction per batch would cost more than the batch), and at close: a
   * file rotated away just before a crash gets at most that second again.
   */
  #markAudited(now: boolean): void {
    if (this.#audited === 0 || (!now && Date.now() - this.#markedAt < 1000)) return;
    markAudited(this.store, this.#audited);
    this.#markedAt = Date.now();
  }

  close(): void {
    this.#markAudited(true);
    this.store.close();
  }
}
