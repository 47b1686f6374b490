// The audit file: every recorded event as one JSON line, appended and never
// rewritten. Each batch is one write(2) on a file opened with O_APPEND for
// that write, so a rotation that renames the file (logrotate without
// copytruncate) needs no signal: the next batch creates a new file.
//
// The store is written first, the file second. After a crash between the
// two, or a failed write, catchUp() appends what the store has beyond the
// file's last whole line, so the file misses nothing the store recorded.
import { appendFileSync, closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import type { SecurityEvent } from './event.js';
import type { EventStore } from './store.js';

/** Bytes read from the end of the file to find its last line. */
const TAIL_BYTES = 64 * 1024;
const CATCH_UP_BATCH = 10_000;

export class AuditLog {
  constructor(readonly path: string) {}

  append(events: readonly SecurityEvent[]): void {
    this.appendLines(events.map((e) => JSON.stringify(e)));
  }

  /** Events already serialised, one JSON text each. */
  appendLines(json: readonly string[]): void {
    if (json.length === 0) return;
    appendFileSync(this.path, json.join('\n') + '\n', { mode: 0o640 });
  }

  /** The id on the file's last complete line (0 for a missing or empty file), and whether the file ends inside a line. */
  tail(): { lastId: number; cut: boolean } {
    if (!existsSync(this.path)) return { lastId: 0, cut: false };
    const fd = openSync(this.path, 'r');
    try {
      const size = fstatSync(fd).size;
      const len = Math.min(size, TAIL_BYTES);
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, size - len);
      const cut = len > 0 && buf[len - 1] !== 0x0a;
      // A crash or a full disk mid-write can leave a partial last line: take the last line that parses.
      const lines = buf.toString('utf8').split('\n');
      for (let i = lines.length - 1; i >= 0; i--) {
        const line = lines[i]!.trim();
        if (!line) continue;
        try {
          const id = (JSON.parse(line) as { id?: unknown }).id;
          if (typeof id === 'number' && Number.isInteger(id)) return { lastId: id, cut };
        } catch {
          // a cut line: look further back
        }
      }
      return { lastId: 0, cut };
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Brings file and store into line: appends the stored events the file is
   * missing, and makes the store issue ids above the file's. Returns how many
   * events were appended.
   */
  catchUp(store: EventStore): number {
    const { lastId: last, cut } = this.tail();
    if (cut) appendFileSync(this.path, '\n'); // end the cut line, so the next one stands alone
    store.issueAfter(last);
    // A file rotated away (renamed, or emptied) must not get the whole store again: start after
    // what was written to the file, wherever it is now.
    let after = Math.max(last, auditedId(store));
    let n = 0;
    for (;;) {
      const batch = store.list({ after, limit: CATCH_UP_BATCH });
      if (batch.length === 0) return n;
      this.append(batch);
      n += batch.length;
      after = batch[batch.length - 1]!.id;
      markAudited(store, after);
    }
  }
}

const AUDITED = 'audit.lastId';

/** The last id written to the audit file, kept in the store (the file may be rotated away). */
export function auditedId(store: EventStore): number {
  return Number(store.getState(AUDITED) ?? 0);
}

export function markAudited(store: EventStore, id: number): void {
  store.setState(AUDITED, String(id));
}
