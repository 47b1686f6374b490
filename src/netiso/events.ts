// What a record of tg_ni_ring means as a security event (docs/events.md):
//  - connect.denied: connect() to a destination the container's scope denies
//    (TCP, UDP, ping sockets); the caller got EPERM;
//  - sendmsg.denied: an unconnected UDP send to a denied destination (EPERM);
//  - egress.denied: a packet the socket hooks never see (raw sockets, ICMP,
//    ...) to a denied destination, dropped at cgroup egress;
//  - connections.limit: a TCP connect() refused (EPERM) because the
//    container's group already had maxConnections open;
//  - connections.untracked: a TCP connect() of a limited group refused
//    because its socket could not be marked (kernel out of memory).
// Pure, apart from decoding the record.
import { TgNiEvent, TG_NIEV_CONN_LIMIT, TG_NIEV_CONNECT_DENIED, TG_NIEV_EGRESS_DENIED, TG_NIEV_SENDMSG_DENIED, TG_NIEV_UNTRACKED } from '../kernel/abi.gen.js';
import type { NewEvent } from '../events/event.js';
import { formatAddress } from '../policy/cidr.js';
import type { IsolationScope } from '../policy/index.js';
import { PORT_PROTOCOLS, PROTOCOLS } from '../policy/schema.js';
import { policyScopeIndex } from './compile.js';

export interface NetEventNames {
  /** The container a cgroup (its own or one below it) belongs to now. */
  container(cgroupId: bigint): { id: string; runtime: string; tenant: string } | undefined;
  /** The connection group counting in a slot now. */
  group(slot: number): { key: string; kind: 'container' | 'tenant'; tenant: string } | undefined;
  /** The policy's isolation scopes. */
  scopes(): readonly IsolationScope[];
}

const DPORT_AT = 72;
const protocolNames = new Map<number, string>(Object.entries(PROTOCOLS).map(([name, n]) => [n, name]));
const SOCK_TYPES = new Map<number, string>([[1, 'stream'], [2, 'dgram'], [3, 'raw'], [5, 'seqpacket']]);

const TYPES = new Map<number, { type: string; action: string; why: string }>([
  [TG_NIEV_CONNECT_DENIED, { type: 'connect.denied', action: 'deny', why: 'connect() to a denied destination failed with EPERM' }],
  [TG_NIEV_SENDMSG_DENIED, { type: 'sendmsg.denied', action: 'deny', why: 'a datagram to a denied destination failed with EPERM' }],
  [TG_NIEV_EGRESS_DENIED, { type: 'egress.denied', action: 'drop', why: 'a packet to a denied destination was dropped' }],
  [TG_NIEV_CONN_LIMIT, { type: 'connections.limit', action: 'deny', why: 'connect() failed with EPERM: the connection limit was reached' }],
  [TG_NIEV_UNTRACKED, { type: 'connections.untracked', action: 'deny', why: 'connect() failed with EPERM: the socket could not be tracked for the connection limit (kernel out of memory)' }],
]);

const text = (bytes: readonly number[]): string => {
  const b = Buffer.from(bytes.map((x) => x & 0xff));
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('utf8');
};

/** The event a record stands for. */
export function describeNetEvent(record: Buffer, names: NetEventNames, taiOffsetMs: number): NewEvent {
  const e = TgNiEvent.decode(record);
  const container = names.container(e.cgroup_id);
  const group = e.group ? names.group(e.group) : undefined;
  const index = policyScopeIndex(e.scope);
  const scope = index === undefined ? undefined : names.scopes()[index];
  const kind = TYPES.get(e.type);
  const limitEvent = e.type === TG_NIEV_CONN_LIMIT || e.type === TG_NIEV_UNTRACKED;
  let rule: string | null = null;
  if (index !== undefined) {
    if (limitEvent) rule = `isolation[${index}].maxConnections`;
    else rule = e.rule > 0 ? `isolation[${index}].destinations.rules[${e.rule - 1}]` : `isolation[${index}].destinations.default`;
  }
  const family = e.ip_ver === 6 ? 6 : 4;
  const ports = PORT_PROTOCOLS.has(e.proto);
  const flow = e.ip_ver === 4 || e.ip_ver === 6
    ? {
      protocol: protocolNames.get(e.proto) ?? String(e.proto),
      // The hooks run before the kernel picks a source: unspecified.
      src: family === 4 ? '0.0.0.0' : '::',
      sport: null,
      dst: formatAddress(family, e.daddr_be.subarray(0, family === 4 ? 4 : 16)),
      dport: ports ? record.readUInt16BE(DPORT_AT) : null,
    }
    : null;
  return {
    at: Number(e.at_ns / 1_000_000n) - taiOffsetMs,
    type: kind?.type ?? `netiso.${e.type}`,
    tenant: container?.tenant ?? group?.tenant ?? scope?.tenant ?? null,
    flow,
    rule,
    action: kind?.action ?? null,
    detail: {
      container: container?.id ?? null,
      runtime: container?.runtime ?? null,
      cgroupId: String(e.cgroup_id),
      pid: e.pid,
      tid: e.tid,
      uid: e.uid,
      command: text(e.comm),
      socket: SOCK_TYPES.get(e.sock_type) ?? null,
      group: group?.key ?? null,
      ...(limitEvent ? { limit: e.limit } : {}),
      reason: flow === null && !limitEvent ? 'a packet whose destination could not be read was dropped (the scope checks destinations)' : kind?.why ?? null,
    },
  };
}
