// Turns the datapath's event records (struct tg_sev) into security events:
// addresses and protocol spelled out, ids replaced by the names the agent
// knows them by (docs/events.md).
import { TgSev, TG_HOOK_EGRESS, TG_SEV_FW_LOG, TG_SEV_L7_MATCH, TG_SEV_RATE_LIMITED, TG_SEV_REDIRECTED } from '../kernel/abi.gen.js';
import { formatAddress } from '../policy/cidr.js';
import { PORT_PROTOCOLS, PROTOCOLS } from '../policy/schema.js';
import type { NewEvent } from '../events/event.js';
import { ACTION_CODES } from './compile.js';

export interface EventNames {
  rule(slot: number): string | null;
  /** L7 signature index -> name. */
  signature?(index: number): string | null;
  tenant(id: number): string | null;
  iface(ifindex: number): string | null;
}

const protocolNames = new Map<number, string>(Object.entries(PROTOCOLS).map(([name, n]) => [n, name]));
const actionNames = new Map<number, string>(Object.entries(ACTION_CODES).map(([name, n]) => [n, name]));
const TYPES = new Map<number, string>([[TG_SEV_FW_LOG, 'firewall.log'], [TG_SEV_RATE_LIMITED, 'firewall.rate_limited'], [TG_SEV_L7_MATCH, 'l7.match'], [TG_SEV_REDIRECTED, 'firewall.redirect']]);
const SPORT_AT = 64;
const DPORT_AT = 66;

export function describeSev(record: Buffer, names: EventNames, taiOffsetMs: number): NewEvent {
  const e = TgSev.decode(record);
  const family = e.ip_ver === 4 ? 4 : 6;
  const len = family === 4 ? 4 : 16;
  const ports = PORT_PROTOCOLS.has(e.proto);
  const to = e.to_tenant ? names.tenant(e.to_tenant) : null;
  const from = e.from_tenant ? names.tenant(e.from_tenant) : null;
  return {
    at: Number(e.at_ns / 1_000_000n) - taiOffsetMs,
    type: TYPES.get(e.type) ?? `datapath.${e.type}`,
    tenant: to ?? from,
    flow: {
      protocol: protocolNames.get(e.proto) ?? String(e.proto),
      src: formatAddress(family, e.saddr_be.subarray(0, len)),
      sport: ports ? record.readUInt16BE(SPORT_AT) : null,
      dst: formatAddress(family, e.daddr_be.subarray(0, len)),
      dport: ports ? record.readUInt16BE(DPORT_AT) : null,
    },
    rule: e.type === TG_SEV_L7_MATCH ? names.signature?.(e.detail) ?? `signature-${e.detail}` : e.slot === 0 ? '(default)' : names.rule(e.slot) ?? `slot-${e.slot}`,
    action: actionNames.get(e.action) ?? String(e.action),
    detail: {
      bytes: e.bytes,
      interface: names.iface(e.ifindex) ?? e.ifindex,
      hook: e.hook === TG_HOOK_EGRESS ? 'egress' : 'ingress',
      toTenant: to,
      fromTenant: from,
    },
  };
}
