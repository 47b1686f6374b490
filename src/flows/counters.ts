// The kernel's flow counters (tg_flow_stats, enum tg_flow_stat) and what the
// agent derives from them.
import {
  TG_FLOW_FRAG_NO_PORTS, TG_FLOW_INSERTED, TG_FLOW_INSERT_FAILED, TG_FLOW_LOOKUP_FAILED, TG_FLOW_NO_ADDR, TG_FLOW_UPDATED,
} from '../kernel/abi.gen.js';

/** Packets, summed over CPUs, since the flow map was created. */
export interface FlowCounters {
  /** Added to an existing flow. */
  updated: bigint;
  /** Created a flow. */
  inserted: bigint;
  /** Their new flow could not be inserted: in no flow. */
  insertFailed: bigint;
  /** Another CPU created their flow first and it was gone again: in no flow. */
  lookupFailed: bigint;
  /** No trusted IP header (non-IP, cut, malformed): in no flow. */
  noAddr: bigint;
  /** Later fragments whose first fragment was not seen: in a flow with ports 0. */
  fragNoPorts: bigint;
}

/** Index of each counter in tg_flow_stats. */
export const FLOW_COUNTER_INDEX: Readonly<Record<keyof FlowCounters, number>> = {
  updated: TG_FLOW_UPDATED,
  inserted: TG_FLOW_INSERTED,
  insertFailed: TG_FLOW_INSERT_FAILED,
  lookupFailed: TG_FLOW_LOOKUP_FAILED,
  noAddr: TG_FLOW_NO_ADDR,
  fragNoPorts: TG_FLOW_FRAG_NO_PORTS,
};

/**
 * Flows the LRU evicted since the map was created. The kernel does not
 * report evictions, and the agent never deletes flows, so every flow ever
 * inserted is either still live or was evicted. Counters are read before
 * the map, so flows created during the read can only make this low, never
 * high; it never goes below 0.
 */
export function evictedFlows(c: Pick<FlowCounters, 'inserted'>, live: number): bigint {
  const e = c.inserted - BigInt(live);
  return e > 0n ? e : 0n;
}
