// Live delivery of recorded events to subscribers (the API's event streams).
// A subscriber that throws is dropped; nobody can slow the recorder down.
import type { SecurityEvent } from './event.js';

/** The events, and each one's JSON text (the same index). */
export type EventListener = (events: readonly SecurityEvent[], json: readonly string[]) => void;

export class EventHub {
  readonly #listeners = new Set<EventListener>();

  subscribe(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get subscribers(): number {
    return this.#listeners.size;
  }

  publish(events: readonly SecurityEvent[], json: readonly string[] = events.map((e) => JSON.stringify(e))): void {
    if (events.length === 0) return;
    for (const l of [...this.#listeners]) {
      try {
        l(events, json);
      } catch {
        this.#listeners.delete(l);
      }
    }
  }
}
