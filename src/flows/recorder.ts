// The agent's flow recording, switched by the policy (metering.flows): the
// kernel flag, the flow store and its exporter come and go together, so a
// reload can turn flows on or off, or change their interval and retention,
// without touching billing.
import type { FlowExportResult, FlowExporterEvents, FlowSource } from './exporter.js';
import { FlowExporter } from './exporter.js';
import { FlowStore } from './store.js';

export interface FlowSettings {
  enabled: boolean;
  intervalMs: number;
  retentionMs: number;
  maxStoreBytes: number;
}

export interface FlowSwitch extends FlowSource {
  setFlows(on: boolean): void;
}

export class FlowRecorder {
  #store: FlowStore | undefined;
  #exporter: FlowExporter | undefined;
  #settings: FlowSettings | undefined;

  constructor(
    private readonly source: FlowSwitch,
    private readonly path: string,
    private readonly events: FlowExporterEvents = {},
  ) {}

  /** The store while flows are recorded (the API's top talkers read it). */
  get store(): FlowStore | undefined {
    return this.#store;
  }

  get last(): FlowExportResult | undefined {
    return this.#exporter?.last;
  }

  get failures(): number {
    return this.#exporter?.failures ?? 0;
  }

  /** Makes recording match the settings; the first export after starting is the baseline. */
  async apply(s: FlowSettings): Promise<void> {
    const same = this.#settings && (Object.keys(s) as Array<keyof FlowSettings>).every((k) => this.#settings![k] === s[k]);
    this.source.setFlows(s.enabled); // written every time: a restarted agent may find a stale flag
    if (same) return;
    await this.stop();
    this.#settings = s;
    if (!s.enabled) return;
    this.#store = FlowStore.open(this.path, { retentionMs: s.retentionMs, maxBytes: s.maxStoreBytes });
    this.#exporter = new FlowExporter(this.source, this.#store, s.intervalMs, this.events);
    this.#exporter.start();
    await this.#exporter.exportNow().catch(() => undefined); // reported through events.onError
  }

  /** Stops exporting and closes the store; the kernel flag stays as it is. */
  async stop(): Promise<void> {
    await this.#exporter?.stop();
    this.#store?.close();
    this.#exporter = undefined;
    this.#store = undefined;
    this.#settings = undefined;
  }
}
