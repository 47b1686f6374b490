import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TG_BW_MAX_GROUPS, TG_BW_PACE } from '../kernel/abi.gen.js';
import { BandwidthError, bandwidthGroups, compileBandwidth, groupIdent, INGRESS_MIN_BURST_NS, type BandwidthGroup, type ShaperContainer } from './compile.js';

const c = (id: string, tenant: string, cgroupId: bigint, below: bigint[] = []): ShaperContainer => ({ id, tenant, cgroupId, below });
const a1 = c('a1', 'acme', 101n, [102n, 103n]);
const a2 = c('a2', 'acme', 201n);
const b1 = c('b1', 'beta', 301n);
const M = 1_000_000;

test('a container group and a tenant group: slots from 1, every cgroup mapped, limits as time at the rate', () => {
  const out = compileBandwidth([
    { container: b1, egress: { rate: 10 * M, burst: 125_000 } },
    { tenant: 'acme', containers: [a1, a2], egress: { rate: 100 * M, burst: 1_250_000 }, ingress: { rate: 10 * M, burst: 1514 } },
  ]);
  assert.deepEqual(out.groups.map((g) => [g.key, g.slot, g.containers]), [['container:b1', 1, ['b1']], ['tenant:acme', 2, ['a1', 'a2']]]);
  assert.deepEqual([...out.cgroups], [[301n, 1], [101n, 2], [102n, 2], [103n, 2], [201n, 2]]);
  assert.deepEqual([...out.slots], [['container:b1', 1], ['tenant:acme', 2]]);
  const [b, acme] = out.groups;
  // 125,000 bytes at 10 Mbit/s take 100 ms
  assert.deepEqual(b!.egress, { rate_bps: 10_000_000n, burst_ns: 100_000_000n, burst_bytes: 125_000n, ident: groupIdent('container:b1'), flags: TG_BW_PACE, pad: 0 });
  assert.deepEqual(b!.ingress, { rate_bps: 0n, burst_ns: 0n, burst_bytes: 0n, ident: groupIdent('container:b1'), flags: 0, pad: 0 }, 'no ingress limit: rate 0, identity kept');
  assert.equal(acme!.egress.burst_ns, 100_000_000n);
  // ingress: 1514 bytes at 10 Mbit/s would be 1.2 ms; the floor is 250 ms
  assert.equal(acme!.ingress.burst_ns, INGRESS_MIN_BURST_NS);
  assert.equal(acme!.ingress.burst_bytes, 1514n);
  assert.equal(acme!.ingress.flags, 0, 'pacing is an egress matter');
});

test('burst_ns rounds up, and an ingress burst above the floor is kept', () => {
  const [g] = compileBandwidth([{ container: a1, egress: { rate: 3 * M, burst: 1515 }, ingress: { rate: 8_000, burst: 1_000_000 } }]).groups;
  assert.equal(g!.egress.burst_ns, 4_040_000n); // 1515 * 8e9 / 3e6 = 4,040,000 exactly
  assert.equal(compileBandwidth([{ container: a1, egress: { rate: 7 * M, burst: 1515 } }]).groups[0]!.egress.burst_ns, 1_731_429n); // 1,731,428.57 up
  assert.equal(g!.ingress.burst_ns, 1_000_000_000_000n, '1 MB at 8 kbit/s: 1000 s');
});

test('pacing off leaves the egress flags empty', () => {
  const [g] = compileBandwidth([{ container: a1, egress: { rate: M, burst: 2000 } }], { pacing: false }).groups;
  assert.equal(g!.egress.flags, 0);
});

test('slots: a group keeps its earlier slot, new groups take free ones and avoid slots just released', () => {
  const first = compileBandwidth([
    { container: a1, egress: { rate: M, burst: 2000 } },
    { container: a2, egress: { rate: M, burst: 2000 } },
    { container: b1, egress: { rate: M, burst: 2000 } },
  ]);
  assert.deepEqual([...first.slots.values()], [1, 2, 3]);
  // a2 goes, a new group comes: it gets 4, not a2's 2 (whose counters may still be read)
  const a3 = c('a3', 'acme', 401n);
  const second = compileBandwidth(
    [
      { container: b1, egress: { rate: 2 * M, burst: 2000 } },
      { container: a3, egress: { rate: M, burst: 2000 } },
      { container: a1, egress: { rate: M, burst: 2000 } },
    ],
    { previous: first.slots },
  );
  assert.deepEqual([...second.slots], [['container:b1', 3], ['container:a1', 1], ['container:a3', 4]]);
  assert.equal(second.groups[0]!.egress.rate_bps, 2_000_000n);
});

test('slots run out of fresh numbers: released ones are taken again', () => {
  const previous = new Map(Array.from({ length: TG_BW_MAX_GROUPS - 1 }, (_, i) => [`container:gone${i}`, i + 1] as const));
  const out = compileBandwidth([{ container: a1, egress: { rate: M, burst: 2000 } }], { previous });
  assert.equal(out.groups[0]!.slot, 1);
});

test('identities are stable hashes of the key and never 0', () => {
  assert.equal(groupIdent('tenant:acme'), groupIdent('tenant:acme'));
  assert.notEqual(groupIdent('tenant:acme'), groupIdent('container:acme'));
  assert.equal(groupIdent(''), 0xcbf29ce484222325n);
});

test('validation errors name the field', () => {
  const bad = (groups: unknown, field: string, msg: RegExp) =>
    assert.throws(() => compileBandwidth(groups as BandwidthGroup[]), (e: unknown) => {
      assert.ok(e instanceof BandwidthError, String(e));
      assert.equal(e.field, field);
      assert.match(e.message, msg);
      return true;
    });
  const lim = { rate: M, burst: 2000 };
  bad([{ container: a1, egress: { rate: 7_999, burst: 2000 } }], 'groups[0].egress.rate', /from 8000 \(8kbit\) to 100000000000 \(100gbit\), got 7999/);
  bad([{ container: a1, egress: { rate: 1.5e6 + 0.5, burst: 2000 } }], 'groups[0].egress.rate', /whole number/);
  bad([{ container: a1, ingress: { rate: M, burst: 1513 } }], 'groups[0].ingress.burst', /from 1514 \(one full-size frame\)/);
  bad([{ container: a1, ingress: { rate: M, burst: '2k' } }], 'groups[0].ingress.burst', /got 2k/);
  bad([{ container: a1, egress: 5 }], 'groups[0].egress', /must be \{ rate, burst \}/);
  bad([{ container: a1 }], 'groups[0]', /egress limit, an ingress limit or both/);
  bad([{ container: a1, tenant: 'acme', egress: lim }], 'groups[0]', /either container .* or tenant and containers/);
  bad([{ tenant: 'acme', egress: lim }], 'groups[0]', /either container/);
  bad([{ container: { ...a1, id: '' }, egress: lim }], 'groups[0].container.id', /non-empty/);
  bad([{ container: { ...a1, cgroupId: 5 }, egress: lim }], 'groups[0].container.cgroupId', /positive 64-bit bigint\), got 5/);
  bad([{ container: { ...a1, below: [1n, -2n] }, egress: lim }], 'groups[0].container.below[1]', /got -2/);
  bad([{ tenant: 'acme', containers: [a1, b1], egress: lim }], 'groups[0].containers[1].tenant', /container b1 belongs to tenant "beta", not to the group's tenant "acme"/);
  bad([{ container: a1, egress: lim }, { container: a1, ingress: lim }], 'groups[1]', /the same group as groups\[0\] \(container:a1\)/);
  bad([{ container: a1, egress: lim }, { tenant: 'acme', containers: [a2, a1], egress: lim }], 'groups[1].containers[1].id', /container a1 is already limited by groups\[0\].container/);
  bad([{ container: a1, egress: lim }, { container: c('x', 'acme', 103n), egress: lim }], 'groups[1].container.cgroupId', /cgroup 103 is already groups\[0\].container.below\[1\]/);
  bad(Array.from({ length: TG_BW_MAX_GROUPS }, (_, i) => ({ container: c(`c${i}`, 't', BigInt(i + 1)), egress: lim })), 'groups', /at most 1023 groups/);
});

test('an empty list compiles to nothing', () => {
  const out = compileBandwidth([]);
  assert.deepEqual(out, { groups: [], cgroups: new Map(), slots: new Map() });
});

test('groups from isolation scopes: per container with a glob, the tenant together without one, nothing without limits', () => {
  const lim = { rate: 10 * M, burst: 2000 };
  const scopes = [
    { tenant: 'acme', containers: '/t/x/*', bandwidth: { egress: lim } },
    { tenant: 'acme', bandwidth: { ingress: lim } },
    { tenant: 'beta' },
    { tenant: 'gamma', bandwidth: { egress: lim } },
  ];
  const a3 = c('a3', 'acme', 401n);
  const groups = bandwidthGroups(scopes, [{ container: a1, scope: 0 }, { container: a2, scope: 0 }, { container: a3, scope: 1 }, { container: b1, scope: 2 }]);
  assert.deepEqual(groups, [
    { container: a1, egress: lim },
    { container: a2, egress: lim },
    { tenant: 'acme', containers: [a3], ingress: lim },
  ]);
  assert.deepEqual(compileBandwidth(groups).groups.map((g) => g.key), ['container:a1', 'container:a2', 'tenant:acme']);
});
