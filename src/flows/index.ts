// Per-flow analytics (docs/flows.md): kernel snapshots, interval deltas, the
// flow store and top talkers. Flows never feed billing.
export { evictedFlows, FLOW_COUNTER_INDEX, type FlowCounters } from './counters.js';
export { FlowTracker, type FlowInterval, type ResumePoint } from './delta.js';
export { FlowExporter, type FlowExportResult, type FlowExporterEvents, type FlowSource } from './exporter.js';
export { FlowRecorder, type FlowSettings, type FlowSwitch } from './recorder.js';
export { decodeFlowKey, monotonicNs, snapshotFromEntries, type FlowDirection, type FlowKey, type FlowSnapshot } from './snapshot.js';
export {
  FlowStore, FLOW_STORE_APPLICATION_ID, DEFAULT_MAX_BYTES, DEFAULT_RETENTION_MS,
  type FlowHealth, type FlowStoreOptions, type FlowTop, type MapState, type RecordedInterval, type TopQuery,
} from './store.js';
export { TOP_ORDERS, topFlows, type TopFlow, type TopOptions, type TopOrder, type TopResult } from './top.js';
