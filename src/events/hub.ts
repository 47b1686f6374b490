// Live delivery of recorded events to subscribers (the API's event streams).
// A subscriber that throws is dropped; nobody can slow the recorder down.
import type { SecurityEvent } from './event.js';

export type EventListener = (events: readonly SecurityEvent[]) => void;

export class EventHub {
  readonly #listeners = new Set<EventListener>();

  subscribe(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get subscribers(): number {
    return this.#listeners.size;
  }

  publish(events: readonly SecurityEvent[]): void {
    if (events.length === 0) return;
    for (const l of [...this.#listeners]) {
      try {
        l(events);
      } catch {
        this.#listeners.delete(l);
      }
    }
  }
}
