// Prometheus exposition for metering. Counter values are read from the kernel
// at scrape time (cumulative for the counter epoch), so /metrics is never
// behind the datapath. Cardinality: 2 series per tenant (direction) for each
// of packets and bytes, plus one per reason: bounded by the policy's tenants.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { MeteringDatapath } from '../metering/datapath.js';

export interface MeteringMetrics {
  registry: Registry;
  exportDuration: Histogram;
  exportFailures: Counter;
  ledgerRows: Counter;
}

export function meteringMetrics(datapath: MeteringDatapath, tenantName: (id: number) => string): MeteringMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tollgate_process_' });
  const counterGauge = (field: 'packets' | 'bytes', help: string) =>
    new Gauge({
      name: `tollgate_meter_${field}_total`,
      help: `${help} per tenant and direction (seen from the tenant), cumulative for the counter epoch`,
      labelNames: ['tenant', 'direction'],
      registers: [registry],
      collect() {
        this.reset();
        for (const r of datapath.readCounters()) this.set({ tenant: tenantName(r.tenantId), direction: r.direction }, Number(r[field]));
      },
    });
  counterGauge('packets', 'Packets counted in the kernel');
  counterGauge('bytes', 'L3 bytes counted in the kernel');
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
  const exportFailures = new Counter({ name: 'tollgate_export_failures_total', help: 'Exports that failed (nothing was committed; the next one catches up)', registers: [registry] });
  const ledgerRows = new Counter({ name: 'tollgate_ledger_rows_total', help: 'Usage rows committed to the ledger', registers: [registry] });
  return { registry, exportDuration, exportFailures, ledgerRows };
}
