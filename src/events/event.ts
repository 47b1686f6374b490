// A security event: what the datapath (or the agent watching it) saw and
// did, in the one shape every consumer gets: the event store, the audit
// file, the API's live stream, the CLI and the metrics (docs/events.md).

/** The packet an event is about; ports are null when the protocol has none. */
export interface EventFlow {
  protocol: string;
  src: string;
  sport: number | null;
  dst: string;
  dport: number | null;
}

/** An event before the store numbered it. */
export interface NewEvent {
  /** When it happened, ms since the Unix epoch. */
  at: number;
  /** Dotted, capability first: "firewall.log", "events.lost", ... */
  type: string;
  tenant: string | null;
  flow: EventFlow | null;
  rule: string | null;
  action: string | null;
  detail: Record<string, unknown>;
}

/** A recorded event: `id` is its place in the store, increasing and never reused. */
export interface SecurityEvent extends Omit<NewEvent, 'at'> {
  id: number;
  /** ISO 8601, ms. */
  at: string;
}

export function numbered(id: number, e: NewEvent): SecurityEvent {
  return { id, at: new Date(e.at).toISOString(), type: e.type, tenant: e.tenant, flow: e.flow, rule: e.rule, action: e.action, detail: e.detail };
}
