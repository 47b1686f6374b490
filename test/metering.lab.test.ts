// Acceptance: known traffic per tenant, in both directions, over IPv4 and
// IPv6, through sockets and through an AF_PACKET TX ring (non-linear skbs),
// appears in the ledger exactly. The real agent runs against the lab's host
// namespace; ground truth comes from the traffic drivers, and for TCP from
// the interfaces' own counters.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  examplePolicyYaml, findNode, pinDirPath, ifaceCounters, labDown, labUp, ping, tcpTransfer, tenantNodes, trafgenBurst, udpBurst,
  type EndpointNode, type Topology,
} from '../lab/index.js';
import { cleanupAgentDir, flushedClassUsage, flushedUsage, runCli, startAgentProcess, usageDelta, type AgentProcess, type UsageTable } from './helpers/agent.js';

const prefix = `tgi${Math.random().toString(36).slice(2, 5)}`;
const ETH = 14;
const metricsPort = 20000 + Math.floor(Math.random() * 10000);
const listen = ['--listen', `127.0.0.1:${metricsPort}`];

type Truth = Map<string, { packets: number; bytes: number }>;
function add(t: Truth, key: string, packets: number, bytes: number): void {
  const v = t.get(key) ?? { packets: 0, bytes: 0 };
  t.set(key, { packets: v.packets + packets, bytes: v.bytes + bytes });
}

function assertExact(delta: UsageTable, truth: Truth, what: string): void {
  const keys = [...new Set([...delta.keys(), ...truth.keys()])].sort();
  const got = Object.fromEntries(keys.map((k) => [k, delta.get(k) ?? { packets: 0, bytes: 0 }]));
  const want = Object.fromEntries(keys.map((k) => [k, truth.get(k) ?? { packets: 0, bytes: 0 }]));
  assert.deepEqual(got, want, `${what}: ledger deltas differ from ground truth`);
}

describe('metering in the lab (agent + ledger + API)', { concurrency: false }, () => {
  let topo: Topology;
  let agent: AgentProcess;
  let dir: string;
  let tenants: EndpointNode[];
  let internet: EndpointNode;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tollgate-it-'));
    topo = await labUp({ prefix, tenants: 2 });
    tenants = tenantNodes(topo);
    internet = findNode(topo, 'internet');
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, examplePolicyYaml(topo));
    agent = await startAgentProcess({ config: policy, netns: topo.hostNetns, pinRoot: pinDirPath(prefix), dir, extraArgs: listen });
  });

  after(async () => {
    await agent?.stop().catch(() => undefined);
    if (agent) cleanupAgentDir(agent);
    await labDown(prefix).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  test('UDP and ICMP through sockets, IPv4 and IPv6, both directions: exact packets and IP bytes', async () => {
    const truth: Truth = new Map();
    const beforeUsage = await flushedUsage(agent);
    let port = 41000;
    for (const t of tenants) {
      for (const family of [4, 6] as const) {
        const sizes = [0, 1, 100, 512, 1000];
        const up = await udpBurst(t, internet, port++, sizes, 7, { family });
        add(truth, `${t.name}/egress`, up.packets, up.ipBytes);
        const down = await udpBurst(internet, t, port++, sizes, 5, { family });
        add(truth, `${t.name}/ingress`, down.packets, down.ipBytes);
        const p = await ping(t, family === 4 ? internet.ipv4 : internet.ipv6, 20, 300);
        add(truth, `${t.name}/egress`, p.packets, p.ipBytes);
        add(truth, `${t.name}/ingress`, p.replies.packets, p.replies.ipBytes);
        const q = await ping(internet, family === 4 ? t.ipv4 : t.ipv6, 10, 64);
        add(truth, `${t.name}/ingress`, q.packets, q.ipBytes);
        add(truth, `${t.name}/egress`, q.replies.packets, q.replies.ipBytes);
      }
    }
    // tenant-1 -> tenant-2 crosses two metered interfaces: each side once.
    const [a, b] = tenants;
    const x = await udpBurst(a, b, port++, [200], 11);
    add(truth, `${a.name}/egress`, x.packets, x.ipBytes);
    add(truth, `${b.name}/ingress`, x.packets, x.ipBytes);
    assertExact(usageDelta(beforeUsage, await flushedUsage(agent)), truth, 'sockets');
  });

  test('traffic classes in the kernel: management, internal and internet, each exact, billable flag on the rows', async () => {
    const truth: Truth = new Map();
    const before = await flushedClassUsage(agent);
    const freeBefore = await flushedClassUsage(agent, { billable: false });
    const [a, b] = tenants;
    // The example policy: DNS and SSH with the internet node are management (free),
    // tenant subnets are internal (free), the rest internet (billable).
    const dns = await udpBurst(a, internet, 53, [30, 60], 9);
    add(truth, `${a.name}/management/egress`, dns.packets, dns.ipBytes);
    const dns6 = await udpBurst(a, internet, 53, [30], 4, { family: 6 });
    add(truth, `${a.name}/management/egress`, dns6.packets, dns6.ipBytes);
    const ssh = await udpBurst(internet, b, 22, [120], 5); // the peer is the source for ingress
    add(truth, `${b.name}/management/ingress`, ssh.packets, ssh.ipBytes);
    const nearMiss = await udpBurst(a, internet, 54, [30], 3); // one port off: internet
    add(truth, `${a.name}/internet/egress`, nearMiss.packets, nearMiss.ipBytes);
    const lan = await udpBurst(a, b, 41500, [300], 6, { family: 6 });
    add(truth, `${a.name}/internal/egress`, lan.packets, lan.ipBytes);
    add(truth, `${b.name}/internal/ingress`, lan.packets, lan.ipBytes);
    const p = await ping(b, internet.ipv4, 5, 100); // ICMP has no ports: never management
    add(truth, `${b.name}/internet/egress`, p.packets, p.ipBytes);
    add(truth, `${b.name}/internet/ingress`, p.replies.packets, p.replies.ipBytes);
    const tg = await trafgenBurst(a, internet, 500, 200, { port: 53 }); // non-linear skbs, L4 read for the class
    add(truth, `${a.name}/management/egress`, tg.packets, tg.ipBytes);
    assertExact(usageDelta(before, await flushedClassUsage(agent)), truth, 'classes');
    const free = usageDelta(freeBefore, await flushedClassUsage(agent, { billable: false }));
    assert.deepEqual([...free.keys()].sort(), [...truth.keys()].filter((k) => !k.includes('/internet/')).sort(), 'exactly management and internal rows are free');
  });

  test('containers: cgroup hooks count sockets no metered interface sees; interface hooks keep the rest; loopback never counts', async () => {
    const [a, b] = tenants;
    const truth: Truth = new Map();
    const before = await flushedClassUsage(agent);
    // A process in tenant-1's cgroup on the lab host's own network (a host-network
    // container): its packets leave through the uplink, which is not metered.
    const onHost = { ...a, netns: topo.hostNetns };
    const up = await udpBurst(onHost, internet, 43600, [80, 400], 6, { cgroup: a.cgroup! });
    add(truth, `${a.name}/internet/egress`, up.packets, up.ipBytes);
    const dns = await udpBurst(onHost, internet, 53, [40], 4, { cgroup: a.cgroup!, family: 6 });
    add(truth, `${a.name}/management/egress`, dns.packets, dns.ipBytes);
    // Loopback inside the host, from the same cgroup: not traffic anyone pays for.
    await udpBurst(onHost, '127.0.0.1', 43601, [100], 5, { cgroup: a.cgroup!, receiver: onHost });
    // In tenant-2's own namespace and cgroup, through its metered veth: the interface hook counts it, once.
    const viaVeth = await udpBurst(b, internet, 43602, [200], 7, { cgroup: b.cgroup! });
    add(truth, `${b.name}/internet/egress`, viaVeth.packets, viaVeth.ipBytes);
    // A cgroup under the hooks' root that no tenant selects: counted, as unattributed.
    const stray = join(dirname(a.cgroup!), 'stray');
    mkdirSync(stray, { recursive: true });
    try {
      const s = await udpBurst(onHost, internet, 43603, [60], 3, { cgroup: stray });
      add(truth, `unattributed/internet/egress`, s.packets, s.ipBytes);
    } finally {
      rmdirSync(stray);
    }
    assertExact(usageDelta(before, await flushedClassUsage(agent)), truth, 'cgroups');
  });

  test('containers: a runtime-named cgroup below a tenant gets its own row in the per-container breakdown', async () => {
    const [a] = tenants;
    const id = 'c0ffee'.padEnd(64, '0');
    const scope = join(a.cgroup!, `docker-${id}.scope`);
    mkdirSync(scope);
    try {
      // The agent rescans cgroups every second and gives the new container a counter slot.
      await new Promise((r) => setTimeout(r, 3000));
      type Row = { tenant: string; container: string; runtime: string; direction: string; packets: number; bytes: number };
      const rows = async () => (await agent.call<{ rows: Row[] }>('GET', '/v1/usage?by=container')).rows.filter((r) => r.container === id);
      const before = await (async () => { await agent.call('POST', '/v1/flush'); return rows(); })();
      const beforeUsage = await flushedClassUsage(agent);
      const onHost = { ...a, netns: topo.hostNetns };
      const sent = await udpBurst(onHost, internet, 43650, [90, 300], 4, { cgroup: scope });
      await agent.call('POST', '/v1/flush');
      const after = await rows();
      const sum = (rs: Row[]) => rs.reduce((t, r) => ({ packets: t.packets + r.packets, bytes: t.bytes + r.bytes }), { packets: 0, bytes: 0 });
      const d = { packets: sum(after).packets - sum(before).packets, bytes: sum(after).bytes - sum(before).bytes };
      assert.deepEqual(d, { packets: sent.packets, bytes: sent.ipBytes }, 'the container row moved by exactly what it sent');
      assert.ok(after.every((r) => r.tenant === a.name && r.runtime === 'docker' && r.direction === 'egress'), JSON.stringify(after));
      // And the tenant is billed for it once, like any cgroup-attributed traffic.
      const truth: Truth = new Map();
      add(truth, `${a.name}/internet/egress`, sent.packets, sent.ipBytes);
      assertExact(usageDelta(beforeUsage, await flushedClassUsage(agent)), truth, 'container traffic billed to its tenant');
    } finally {
      rmdirSync(scope);
    }
  });

  test('flows: the agent records per-flow analytics and top shows a known flow exactly (never in the ledger)', async () => {
    const [a] = tenants;
    const port = 43700;
    const sent = await udpBurst(a, internet, port, [111], 13);
    type Top = { flows: Array<{ tenant: string; class: string; direction: string; protocol: string; src: string; dst: string; dport: number; packets: number; bytes: number }> };
    let seen: Top['flows'][number] | undefined;
    // The example policy exports flows every 5 s; the first export after the burst carries it.
    for (let i = 0; i < 30 && seen?.packets !== sent.packets; i++) {
      const top = await agent.call<Top>('GET', `/v1/flows/top?tenant=${a.name}&by=packets&since=5m&limit=1000`);
      seen = top.flows.find((f) => f.dport === port && f.direction === 'egress');
      if (seen?.packets !== sent.packets) await new Promise((r) => setTimeout(r, 500));
    }
    assert.deepEqual(
      seen && { tenant: seen.tenant, class: seen.class, protocol: seen.protocol, src: seen.src, dst: seen.dst, packets: seen.packets, bytes: seen.bytes },
      { tenant: a.name, class: 'internet', protocol: 'udp', src: a.ipv4, dst: internet.ipv4, packets: sent.packets, bytes: sent.ipBytes },
    );
    const cli = await runCli(['--socket', agent.socket, 'top', '--tenant', a.name, '--json']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.ok((JSON.parse(cli.stdout) as Top).flows.some((f) => f.dport === port), 'tollgate top --json lists the flow');
  });

  test('AF_PACKET TX ring (trafgen, non-linear skbs), IPv4 and IPv6: exact', async () => {
    const truth: Truth = new Map();
    const beforeUsage = await flushedUsage(agent);
    for (const t of tenants) {
      for (const family of [4, 6] as const) {
        const r = await trafgenBurst(t, internet, 2000, 400, { family });
        assert.equal(r.received?.packets, 2000, 'every trafgen packet reached the receiver');
        add(truth, `${t.name}/egress`, r.packets, r.ipBytes);
      }
    }
    assertExact(usageDelta(beforeUsage, await flushedUsage(agent)), truth, 'trafgen');
  });

  test("TCP transfers of exact sizes match the interfaces' own counters", async () => {
    const t = tenants[0];
    const c0 = await ifaceCounters(topo.hostNetns, t.hostIface);
    const beforeUsage = await flushedUsage(agent);
    const upload = await tcpTransfer(t, internet, 8_000_000);
    const download = await tcpTransfer(internet, t, 8_000_000, { family: 6 });
    assert.equal(upload.receivedBytes, 8_000_000);
    assert.equal(download.receivedBytes, 8_000_000);
    const delta = usageDelta(beforeUsage, await flushedUsage(agent));
    const c1 = await ifaceCounters(topo.hostNetns, t.hostIface);
    // The host side's rx is what the tenant sent; its tx what the tenant received.
    const rxPackets = c1.rxPackets - c0.rxPackets;
    const txPackets = c1.txPackets - c0.txPackets;
    const truth: Truth = new Map();
    add(truth, `${t.name}/egress`, rxPackets, c1.rxBytes - c0.rxBytes - ETH * rxPackets);
    add(truth, `${t.name}/ingress`, txPackets, c1.txBytes - c0.txBytes - ETH * txPackets);
    assertExact(delta, truth, 'tcp');
    assert.ok(delta.get(`${t.name}/egress`)!.bytes > 8_000_000, 'the upload is in the tenant egress');
  });

  test('fail-static: traffic while the agent is down (killed) is counted and exported by the next agent', async () => {
    const t = tenants[1];
    const beforeUsage = await flushedUsage(agent);
    const status0 = await agent.call<{ counterId: string }>('GET', '/v1/status');
    await agent.kill(); // SIGKILL: no final export
    const truth: Truth = new Map();
    const r = await udpBurst(t, internet, 43000, [300, 700], 25, { family: 6 });
    add(truth, `${t.name}/egress`, r.packets, r.ipBytes);
    agent = await startAgentProcess({ config: join(dir, 'policy.yaml'), netns: topo.hostNetns, pinRoot: pinDirPath(prefix), dir, extraArgs: listen });
    const status1 = await agent.call<{ counterId: string; adoptedCounters: boolean; attachments: Array<{ adopted: boolean }> }>('GET', '/v1/status');
    assert.equal(status1.counterId, status0.counterId, 'the restarted agent adopted the pinned counter map');
    assert.equal(status1.adoptedCounters, true);
    assert.ok(status1.attachments.every((a) => a.adopted), 'pinned links were adopted, not re-created');
    assertExact(usageDelta(beforeUsage, await flushedUsage(agent)), truth, 'across a crash');
  });

  test('Prometheus /metrics on loopback TCP (in the root namespace, although the agent meters the lab)', async () => {
    // Traffic of its own in both directions, so the test stands alone.
    for (const [i, t] of tenants.entries()) {
      await udpBurst(t, internet, 43300 + 2 * i, [50], 3);
      await udpBurst(internet, t, 43301 + 2 * i, [50], 3);
    }
    const r = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(r.status, 200);
    const text = await r.text();
    for (const t of tenants) {
      for (const d of ['ingress', 'egress']) {
        const m = new RegExp(`^tollgate_meter_bytes_total\\{tenant="${t.name}",class="internet",direction="${d}"\\} (\\d+)$`, 'm').exec(text);
        assert.ok(m && Number(m[1]) > 0, `bytes series for ${t.name}/${d}`);
      }
    }
    assert.match(text, /^tollgate_export_duration_seconds_count \d+$/m);
    assert.match(text, /^tollgate_meter_reason_packets_total\{reason="by_iface"\} \d+$/m);
    assert.match(text, /^tollgate_class_billable\{class="management"\} 0$/m);
    assert.match(text, /^tollgate_class_billable\{class="internet"\} 1$/m);
    assert.match(text, /^tollgate_map_capacity\{map="tg_class_v4"\} \d+$/m);
    assert.match(text, /^tollgate_map_entries\{map="tg_tenant_v4"\} [1-9]\d*$/m);
  });

  test('switching an interface to generic XDP: ingress in XDP, egress at tcx, still exact, no double count', async () => {
    const [t] = tenants;
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, examplePolicyYaml(topo).replace(`{ name: ${t.hostIface}, mode: tc }`, `{ name: ${t.hostIface}, mode: xdp-generic }`));
    await agent.stop();
    agent = await startAgentProcess({ config: policy, netns: topo.hostNetns, pinRoot: pinDirPath(prefix), dir, extraArgs: listen });
    const status = await agent.call<{ attachments: Array<{ ifname: string; hooks: string[] }> }>('GET', '/v1/status');
    assert.deepEqual(status.attachments.find((a) => a.ifname === t.hostIface)?.hooks, ['xdp', 'egress']);
    assert.deepEqual(readdirSync(join(pinDirPath(prefix), 'links')).filter((f) => f.startsWith(`${t.hostIface}:`)).sort(),
      [`${t.hostIface}:egress`, `${t.hostIface}:xdp`], 'the tcx ingress link of the old mode is gone');
    const truth: Truth = new Map();
    const beforeUsage = await flushedUsage(agent);
    const up = await udpBurst(t, internet, 43100, [10, 900], 9);
    add(truth, `${t.name}/egress`, up.packets, up.ipBytes);
    const down = await udpBurst(internet, t, 43101, [333], 13, { family: 6 });
    add(truth, `${t.name}/ingress`, down.packets, down.ipBytes);
    assertExact(usageDelta(beforeUsage, await flushedUsage(agent)), truth, 'xdp-generic');
  });

  test('a second agent on the same pin root is refused and changes nothing', async () => {
    const r = await runCli(['--socket', join(dir, 'second.sock'), 'agent', '--config', join(dir, 'policy.yaml'), '--netns', topo.hostNetns,
      '--pin-root', pinDirPath(prefix), '--db', join(dir, 'second.db')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`--pin-root: agent pid ${agent.child.pid} already uses`));
    await agent.call('GET', '/v1/health');
  });

  test('reload applies a changed policy with a generation switch; a bad one changes nothing', async () => {
    const [a, b] = tenants;
    const policy = join(dir, 'policy.yaml');
    const base = examplePolicyYaml(topo);
    type Status = { generation: number; attachments: Array<{ ifname: string }> };
    const s0 = await agent.call<Status>('GET', '/v1/status');
    const metered = `    - { name: ${b.hostIface}, mode: tc }\n`;
    assert.ok(base.includes(metered));
    writeFileSync(policy, base.replace(metered, ''));
    const r = await runCli(['--socket', agent.socket, 'reload']);
    assert.equal(r.code, 0, r.stderr);
    const s1 = await agent.call<Status>('GET', '/v1/status');
    assert.equal(s1.generation, 1 - s0.generation, 'the other generation went live');
    assert.equal(readdirSync(join(pinDirPath(prefix), 'links')).some((f) => f.startsWith(`${b.hostIface}:`)), false, `${b.hostIface} detached`);

    const truth: Truth = new Map();
    const beforeUsage = await flushedUsage(agent);
    await udpBurst(b, internet, 43200, [100], 5); // crosses no metered interface now
    const x = await udpBurst(a, internet, 43201, [100], 5);
    add(truth, `${a.name}/egress`, x.packets, x.ipBytes);
    assertExact(usageDelta(beforeUsage, await flushedUsage(agent)), truth, 'after reload');

    writeFileSync(policy, 'version: 1\ntenants:\n  - name: Bad_Name\n    selectors: { cidrs: [198.18.1.0/24] }\n');
    const bad = await runCli(['--socket', agent.socket, 'reload']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /nothing changed.*tenants\[0\]\.name/s);
    assert.equal((await agent.call<Status>('GET', '/v1/status')).generation, s1.generation, 'no generation switch');

    writeFileSync(policy, base);
    assert.equal((await runCli(['--socket', agent.socket, 'reload'])).code, 0);
    assert.ok((await agent.call<Status>('GET', '/v1/status')).attachments.some((x) => x.ifname === b.hostIface));
  });

  test('usage --json from the CLI has tenant, direction, packets, bytes', async () => {
    const r = await runCli(['--socket', agent.socket, 'usage', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    assert.ok(rows.length >= 4);
    for (const row of rows) {
      assert.equal(typeof row.tenant, 'string');
      assert.ok(row.direction === 'ingress' || row.direction === 'egress');
      assert.equal(typeof row.packets, 'number');
      assert.equal(typeof row.bytes, 'number');
    }
    const bad = await runCli(['--socket', agent.socket, 'usage', '--since', 'yesterday-ish']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /since/);
  });
});
