// Builders for the flow unit tests: kernel-shaped flow entries and snapshots.
import { TgFlow, TgFlowKey, TG_DIR_EGRESS } from '../kernel/abi.gen.js';
import { parseAddress } from '../policy/cidr.js';
import { snapshotFromEntries, type FlowSnapshot } from './snapshot.js';

export interface FlowSpec {
  tenant?: number;
  dir?: number;
  src?: string;
  dst?: string;
  sport?: number;
  dport?: number;
  proto?: number;
  packets: bigint;
  bytes: bigint;
  first: bigint;
  last: bigint;
  cls?: number;
}

function addr(s: string): Buffer {
  const a = parseAddress(s);
  if (!a) throw new TypeError(`not an address: ${s}`);
  return a.addr;
}

/** One tg_flows entry as a batch read returns it. */
export function entry(f: FlowSpec): [Buffer, Buffer] {
  const src = addr(f.src ?? '198.18.1.1');
  const swap = (p: number) => ((p & 0xff) << 8) | (p >> 8); // __be16 through a little-endian codec
  const key = TgFlowKey.encode({
    saddr_be: src, daddr_be: addr(f.dst ?? '198.19.0.1'), sport_be: swap(f.sport ?? 1000), dport_be: swap(f.dport ?? 443),
    tenant_id: f.tenant ?? 1, ip_ver: src.length === 4 ? 4 : 6, proto: f.proto ?? 6, direction: f.dir ?? TG_DIR_EGRESS, pad: 0,
  });
  const value = TgFlow.encode({ packets: f.packets, bytes: f.bytes, first_seen_ns: f.first, last_seen_ns: f.last, class_id: f.cls ?? 0, pad: 0 });
  return [key, value];
}

/** A snapshot read between startNs and endNs (wall clock at endNs: `at`). */
export function snapshot(flows: FlowSpec[], o: { mapId?: number; startNs: bigint; endNs: bigint; at?: Date }): FlowSnapshot {
  return snapshotFromEntries(flows.map(entry), { mapId: o.mapId ?? 7, startNs: o.startNs, endNs: o.endNs, at: o.at ?? new Date(1_700_000_000_000 + Number(o.endNs / 1_000_000n)) });
}
