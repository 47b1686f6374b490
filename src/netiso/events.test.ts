import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TgNiEvent, TG_NIEV_CONN_LIMIT, TG_NIEV_CONNECT_DENIED, TG_NIEV_EGRESS_DENIED, TG_NIEV_SENDMSG_DENIED, TG_NIEV_UNTRACKED, type TgNiEvent as NiEvent,
} from '../kernel/abi.gen.js';
import type { IsolationScope } from '../policy/index.js';
import { kernelScopeId } from './compile.js';
import { describeNetEvent, type NetEventNames } from './events.js';

const comm = (s: string): number[] => {
  const b = Buffer.alloc(16);
  Buffer.from(s).copy(b);
  return [...b];
};
const addr = (bytes: number[]): Buffer => {
  const b = Buffer.alloc(16);
  Buffer.from(bytes).copy(b);
  return b;
};

function record(over: Partial<NiEvent> & { dport?: number }): Buffer {
  const { dport, ...rest } = over;
  const b = TgNiEvent.encode({
    at_ns: 37_000_000_000n + 1_700_000_000_000n * 1_000_000n, cgroup_id: 4242n, type: TG_NIEV_CONNECT_DENIED, pid: 100, tid: 101, uid: 0,
    group: 3, scope: kernelScopeId(1, 1), rule: 2, limit: 0, sock_type: 1, pad: 0, daddr_be: addr([198, 18, 0, 7]), dport_be: 0,
    ip_ver: 4, proto: 6, pad2: 0, comm: comm('curl'), ...rest,
  });
  if (dport !== undefined) b.writeUInt16BE(dport, 72); // network order, as the kernel writes it
  return b;
}

const scopes: IsolationScope[] = [
  { tenant: 'acme', execs: { log: false, alert: [] } },
  { tenant: 'acme', containers: '/acme/**', execs: { log: false, alert: [] }, maxConnections: 10 },
];
const names: NetEventNames = {
  container: (id) => (id === 4242n ? { id: 'ab'.repeat(32), runtime: 'docker', tenant: 'acme' } : undefined),
  group: (slot) => (slot === 3 ? { key: `container:${'ab'.repeat(32)}`, kind: 'container', tenant: 'acme' } : undefined),
  scopes: () => scopes,
};
const TAI = 37_000;

test('a denied connect: the rule, the destination and the task', () => {
  const e = describeNetEvent(record({ dport: 443 }), names, TAI);
  assert.deepEqual(e, {
    at: 1_700_000_000_000,
    type: 'connect.denied',
    tenant: 'acme',
    flow: { protocol: 'tcp', src: '0.0.0.0', sport: null, dst: '198.18.0.7', dport: 443 },
    rule: 'isolation[1].destinations.rules[1]',
    action: 'deny',
    detail: {
      container: 'ab'.repeat(32), runtime: 'docker', cgroupId: '4242', pid: 100, tid: 101, uid: 0, command: 'curl', socket: 'stream',
      group: `container:${'ab'.repeat(32)}`, reason: 'connect() to a denied destination failed with EPERM',
    },
  });
});

test('each kind of record: type, action, rule', () => {
  const cases: Array<[string, Partial<NiEvent> & { dport?: number }, string, string, string]> = [
    ['default deny at sendmsg (UDP, IPv6)', { type: TG_NIEV_SENDMSG_DENIED, rule: 0, proto: 17, ip_ver: 6, sock_type: 2, daddr_be: Buffer.from('20010002000000000000000000000009', 'hex'), dport: 53 },
      'sendmsg.denied', 'deny', 'isolation[1].destinations.default'],
    ['raw ICMP dropped at egress', { type: TG_NIEV_EGRESS_DENIED, rule: 1, proto: 1, sock_type: 3 }, 'egress.denied', 'drop', 'isolation[1].destinations.rules[0]'],
    ['the connection limit', { type: TG_NIEV_CONN_LIMIT, rule: 0, limit: 10, dport: 80 }, 'connections.limit', 'deny', 'isolation[1].maxConnections'],
    ['a socket that could not be tracked', { type: TG_NIEV_UNTRACKED, rule: 0, limit: 10 }, 'connections.untracked', 'deny', 'isolation[1].maxConnections'],
  ];
  for (const [what, over, type, action, rule] of cases) {
    const e = describeNetEvent(record(over), names, TAI);
    assert.deepEqual([e.type, e.action, e.rule], [type, action, rule], what);
  }
  const udp = describeNetEvent(record(cases[0]![1]), names, TAI);
  assert.deepEqual(udp.flow, { protocol: 'udp', src: '::', sport: null, dst: '2001:2::9', dport: 53 });
  assert.equal(udp.detail.socket, 'dgram');
  const icmp = describeNetEvent(record(cases[1]![1]), names, TAI);
  assert.equal(icmp.flow!.dport, null, 'ICMP has no ports');
  assert.equal(icmp.detail.socket, 'raw');
  const limit = describeNetEvent(record(cases[2]![1]), names, TAI);
  assert.equal(limit.detail.limit, 10);
  assert.equal(limit.flow!.dport, 80);
  assert.equal('limit' in describeNetEvent(record({}), names, TAI).detail, false, 'only limit events carry the limit');
});

test('gone containers, unknown scopes and unreadable destinations still make an event', () => {
  const gone = describeNetEvent(record({ cgroup_id: 1n, group: 9 }), names, TAI);
  assert.equal(gone.detail.container, null);
  assert.equal(gone.detail.group, null);
  assert.equal(gone.tenant, 'acme', 'from the scope');
  const noScope = describeNetEvent(record({ cgroup_id: 1n, group: 9, scope: 0 }), names, TAI);
  assert.equal(noScope.rule, null);
  assert.equal(noScope.tenant, null);
  const unreadable = describeNetEvent(record({ type: TG_NIEV_EGRESS_DENIED, ip_ver: 0, proto: 0, rule: 0 }), names, TAI);
  assert.equal(unreadable.flow, null);
  assert.match(String(unreadable.detail.reason), /could not be read/);
  assert.equal(describeNetEvent(record({ type: 99 }), names, TAI).type, 'netiso.99');
  assert.equal(describeNetEvent(record({ proto: 200 }), names, TAI).flow!.protocol, '200');
});
