import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import {
  computeTopology,
  endpoints,
  examplePolicyYaml,
  findNode,
  isLabNetns,
  LabConfigError,
  nodeByAddress,
  relativeCgroup,
  tenantNodes,
  MAX_TENANTS,
} from './topology.js';
import { findCgroup2Mount } from './exec.js';

const MOUNT = '/sys/fs/cgroup/unified';

test('default topology: host, 3 tenants, internet, attacker, honeypot', () => {
  const t = computeTopology({ cgroupMount: MOUNT });
  assert.equal(t.prefix, 'tg');
  assert.equal(t.hostNetns, 'tg-host');
  assert.equal(t.cgroupRoot, '/sys/fs/cgroup/unified/tollgate-lab/tg');
  assert.deepEqual(
    t.nodes.map((n) => [n.name, n.role, n.netns, n.hostIface]),
    [
      ['host', 'host', 'tg-host', null],
      ['tenant-1', 'tenant', 'tg-t1', 'tgt1h'],
      ['tenant-2', 'tenant', 'tg-t2', 'tgt2h'],
      ['tenant-3', 'tenant', 'tg-t3', 'tgt3h'],
      ['internet', 'internet', 'tg-inet', 'tginh'],
      ['attacker', 'attacker', 'tg-atk', 'tgath'],
      ['honeypot', 'honeypot', 'tg-hp', 'tghph'],
    ],
  );
});

test('addresses, gateways, cgroups and MACs follow the plan', () => {
  const t = computeTopology({ prefix: 'ab1', tenants: 2, cgroupMount: '/sys/fs/cgroup/' });
  const t2 = findNode(t, 'tenant-2');
  assert.equal(t2.ipv4, '198.18.2.2');
  assert.equal(t2.gatewayIpv4, '198.18.2.1');
  assert.equal(t2.ipv6, '2001:2:0:2::2');
  assert.equal(t2.gatewayIpv6, '2001:2:0:2::1');
  assert.equal(t2.cgroup, '/sys/fs/cgroup/tollgate-lab/ab1/tenant-2');
  assert.equal(t2.mac, '02:74:67:01:02:02');
  assert.equal(t2.gatewayMac, '02:74:67:01:02:01');
  assert.equal(t2.tenant, 2);
  assert.deepEqual(
    ['internet', 'attacker', 'honeypot'].map((n) => {
      const x = findNode(t, n);
      return [x.ipv4, x.ipv6, x.gatewayIpv4, x.gatewayIpv6, x.cgroup];
    }),
    [
      ['198.19.0.2', '2001:2:0:100::2', '198.19.0.1', '2001:2:0:100::1', null],
      ['198.19.1.2', '2001:2:0:101::2', '198.19.1.1', '2001:2:0:101::1', null],
      ['198.19.2.2', '2001:2:0:102::2', '198.19.2.1', '2001:2:0:102::1', '/sys/fs/cgroup/tollgate-lab/ab1/honeypot'],
    ],
  );
  assert.equal(relativeCgroup(t, t2.cgroup!), '/tollgate-lab/ab1/tenant-2');
  assert.equal(nodeByAddress(t, '2001:2:0:101::2')?.name, 'attacker');
  assert.equal(nodeByAddress(t, '198.18.9.2'), undefined);
  assert.throws(() => findNode(t, 'tenant-9'), /node: no endpoint node "tenant-9"/);
});

test('50 tenants: names fit IFNAMSIZ, all names, addresses and MACs unique, all in 198.18.0.0/15', () => {
  const t = computeTopology({ prefix: 'abcdef', tenants: MAX_TENANTS, cgroupMount: MOUNT });
  const eps = endpoints(t);
  assert.equal(tenantNodes(t).length, 50);
  for (const n of eps) {
    assert.ok(n.hostIface.length <= 15, n.hostIface);
    assert.match(n.ipv4, /^198\.1[89]\.\d+\.2$/);
    assert.match(n.ipv6, /^2001:2:0:[0-9a-f]+::2$/);
    assert.ok(isLabNetns('abcdef', n.netns), n.netns);
  }
  const uniq = (xs: string[]) => assert.equal(new Set(xs).size, xs.length);
  uniq(eps.map((n) => n.hostIface));
  uniq(t.nodes.map((n) => n.netns));
  uniq(eps.map((n) => n.ipv4));
  uniq(eps.map((n) => n.ipv6));
  uniq(eps.flatMap((n) => [n.mac, n.gatewayMac]));
  for (const m of eps.flatMap((n) => [n.mac, n.gatewayMac])) {
    // Locally administered unicast: bit 1 of the first octet set, bit 0 clear.
    assert.equal(parseInt(m.slice(0, 2), 16) & 0x03, 0x02, m);
  }
});

test('bad prefix, tenants, port or mount: errors name the field', () => {
  const bad = (opts: object, field: string) =>
    assert.throws(
      () => computeTopology({ cgroupMount: MOUNT, ...opts }),
      (e: unknown) => e instanceof LabConfigError && e.field === field && e.message.startsWith(`${field}: `),
    );
  for (const prefix of ['', 'Tg', '1tg', 'tg-1', 'abcdefg', 'tg x', 7]) bad({ prefix }, 'prefix');
  for (const tenants of [0, 51, 1.5, -1, '2']) bad({ tenants }, 'tenants');
  for (const servicePort of [0, 65536, 80.5]) bad({ servicePort }, 'servicePort');
  for (const cgroupMount of ['relative/path', '']) bad({ cgroupMount }, 'cgroupMount');
});

test('isLabNetns matches exactly the names a lab creates', () => {
  for (const n of ['tg-host', 'tg-t1', 'tg-t50', 'tg-inet', 'tg-atk', 'tg-hp']) assert.ok(isLabNetns('tg', n), n);
  for (const n of ['tgl-host', 'tg-t0', 'tg-t51', 'tg-t01', 'tg-hostx', 'tg-', 'tg-other', 'xtg-host', 'tg-t1a']) {
    assert.ok(!isLabNetns('tg', n), n);
  }
});

test('examplePolicyYaml: one tenant per lab tenant, metering on every tenant veth, three classes, a plan', () => {
  const t = computeTopology({ prefix: 'tg', tenants: 2, cgroupMount: MOUNT });
  const doc = parse(examplePolicyYaml(t));
  assert.deepEqual(doc, {
    version: 1,
    metering: {
      interval: '10s',
      interfaces: [
        { name: 'tgt1h', mode: 'tc' },
        { name: 'tgt2h', mode: 'tc' },
      ],
      flows: { enabled: true, maxFlows: 65536, interval: '5s', retention: '1h' },
    },
    classes: [
      { name: 'management', billable: false, match: { cidrs: ['198.19.0.2/32', '2001:2:0:100::2/128'], protocols: ['tcp', 'udp'], ports: [22, 53] } },
      { name: 'internal', billable: false, match: { cidrs: ['198.18.0.0/16', '2001:2::/56'] } },
      { name: 'internet', billable: true },
    ],
    plans: [
      {
        name: 'lab',
        currency: 'EUR',
        rates: [{ class: 'internet', direction: 'both', free: '1MB', pricePerGB: '25' }],
        hourly: [{ name: 'active hours', basis: 'active', pricePerHour: '0.01' }],
        flatFees: [{ name: 'base fee', amount: '10' }],
      },
    ],
    tenants: [
      {
        name: 'tenant-1',
        plan: 'lab',
        selectors: {
          interfaces: ['tgt1h'],
          cidrs: ['198.18.1.0/24', '2001:2:0:1::/64'],
          cgroups: ['/tollgate-lab/tg/tenant-1'],
        },
      },
      {
        name: 'tenant-2',
        plan: 'lab',
        selectors: {
          interfaces: ['tgt2h'],
          cidrs: ['198.18.2.0/24', '2001:2:0:2::/64'],
          cgroups: ['/tollgate-lab/tg/tenant-2'],
        },
      },
    ],
  });
});

test('findCgroup2Mount reads hybrid and pure v2 /proc/mounts', () => {
  const hybrid = [
    'tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0',
    'cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0',
    'cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0',
  ].join('\n');
  assert.equal(findCgroup2Mount(hybrid), '/sys/fs/cgroup/unified');
  assert.equal(findCgroup2Mount('cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n'), '/sys/fs/cgroup');
  assert.equal(findCgroup2Mount('none /mnt/my\\040cg cgroup2 rw 0 0\n'), '/mnt/my cg');
  assert.throws(() => findCgroup2Mount('proc /proc proc rw 0 0\n'), /no cgroup2 file system is mounted/);
});
