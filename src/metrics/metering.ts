// Prometheus exposition for metering. Counter values are read from the kernel
// at scrape time (cumulative for the counter epoch), so /metrics is never
// behind the datapath. Cardinality is bounded by the policy: for each of
// packets and bytes, one series per (tenant, class, direction) that saw
// traffic, at most (tenants + 1) x classes x 2; plus one per reason, one per
// class (tollgate_class_billable) and one per map (fill level).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { MeteringDatapath } from '../metering/datapath.js';
import type { FlowExportResult } from '../flows/index.js';

export interface MeteringMetrics {
  registry: Registry;
  exportDuration: Histogram;
  flowExportDuration: Histogram;
  exportFailures: Counter;
  ledgerRows: Counter;
}

export interface MeteringNames {
  tenant(id: number): string;
  class(id: number): string;
  /** Every class of the live policy with its billable flag. */
  classes(): ReadonlyArray<{ name: string; billable: boolean }>;
  /** The last flow export, while flows are recorded. */
  flows(): FlowExportResult | undefined;
}

export function meteringMetrics(datapath: MeteringDatapath, names: MeteringNames): MeteringMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tollgate_process_' });
  const labelNames = ['tenant', 'class', 'direction'] as const;
  const help = (what: string) => `${what} per tenant, traffic class and direction (seen from the tenant), cumulative for the counter epoch`;
  // One kernel read per scrape fills both gauges: prom-client collects in
  // registration order, so the packets gauge (registered first) reads for both.
  const bytes = new Gauge({ name: 'tollgate_meter_bytes_total', help: help('L3 bytes counted in the kernel'), labelNames, registers: [] });
  new Gauge({
    name: 'tollgate_meter_packets_total',
    help: help('Packets counted in the kernel'),
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      bytes.reset();
      for (const r of datapath.readCounters()) {
        const labels = { tenant: names.tenant(r.tenantId), class: names.class(r.classId), direction: r.direction };
        this.set(labels, Number(r.packets));
        bytes.set(labels, Number(r.bytes));
      }
    },
  });
  registry.registerMetric(bytes);
  new Gauge({
    name: 'tollgate_class_billable',
    help: 'Traffic classes of the live policy: 1 when billable, 0 when free',
    labelNames: ['class'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of names.classes()) this.set({ class: c.name }, c.billable ? 1 : 0);
    },
  });
  // Same pattern: the entries gauge reads the maps once and fills capacity too.
  const capacity = new Gauge({ name: 'tollgate_map_capacity', help: 'How many entries each datapath map holds at most', labelNames: ['map'], registers: [] });
  new Gauge({
    name: 'tollgate_map_entries',
    help: 'Entries in use per datapath hash/LPM map (see tollgate_map_capacity)',
    labelNames: ['map'],
    registers: [registry],
    collect() {
      this.reset();
      capacity.reset();
      for (const m of datapath.fill()) {
        this.set({ map: m.map }, m.entries);
        capacity.set({ map: m.map }, m.capacity);
      }
    },
  });
  registry.registerMetric(capacity);
  new Gauge({
    name: 'tollgate_meter_reason_packets_total',
    help: 'Packets per parser/attribution reason (non_ip, truncated, fragment, vlan, by_iface, by_addr, unattributed, ...)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(datapath.readReasons())) this.set({ reason }, Number(n));
    },
  });
  const exportDuration = new Histogram({
    name: 'tollgate_export_duration_seconds',
    help: 'Time to read the kernel counters and commit one ledger interval',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [registry],
  });
  // Flows (analytics): as of the last flow export, absent while flows are off.
  const flowGauge = (name: string, help: string, value: (r: FlowExportResult) => number | bigint) =>
    new Gauge({
      name, help, registers: [registry],
      collect() {
        this.reset();
        const r = names.flows();
        if (r) this.set(Number(value(r)));
      },
    });
  flowGauge('tollgate_flows_live', 'Flows in the kernel flow table at the last flow export', (r) => r.live);
  flowGauge('tollgate_flows_capacity', 'Capacity of the kernel flow table', (r) => r.capacity);
  flowGauge('tollgate_flows_evicted_total', 'Flows the kernel LRU evicted (inserted minus live), since the flow table was created', (r) => r.evicted);
  new Gauge({
    name: 'tollgate_flow_packets_total',
    help: 'Packets by flow-table outcome (updated, inserted, insert_failed, lookup_failed, no_addr, frag_no_ports), as of the last flow export',
    labelNames: ['outcome'],
    registers: [registry],
    collect() {
      this.reset();
      const r = names.flows();
      if (r) for (const [k, v] of Object.entries(r.counters)) this.set({ outcome: k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) }, Number(v));
    },
  });
  const flowExportDuration = new Histogram({
    name: 'tollgate_flow_export_duration_seconds',
    help: 'Time to read the flow table, diff it and store the interval',
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10],
    registers: [registry],
  });
  const exportFailures = new Counter({ name: 'tollgate_export_failures_total', help: 'Exports that failed (nothing was committed; the next one catches up)', registers: [registry] });
  const ledgerRows = new Counter({ name: 'tollgate_ledger_rows_total', help: 'Usage rows committed to the ledger', registers: [registry] });
  return { registry, exportDuration, flowExportDuration, exportFailures, ledgerRows };
}
