// The lab against the real kernel: namespaces, veths, cgroups, services and
// traffic drivers, checked against interface counters. Prefix `tgl` (and
// `tglb` for the coexistence check); everything is removed in t.after.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { once } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import {
  CommandError,
  endpoints,
  findCgroup2Mount,
  findNode,
  ifaceCounters,
  ip,
  labDown,
  labStatus,
  labUp,
  pinDirPath,
  readLabState,
  run,
  spawnInNetns,
  stateFilePath,
  httpBytes,
  httpFromNetns,
  httpSink,
  ping,
  tcpTransfer,
  iperf3Transfer,
  trafgenBurst,
  udpBurst,
  LabError,
  type EndpointNode,
  type Topology,
  type IfaceCounters,
} from '../../lab/index.js';

const P = 'tgl';

/** Why the lab cannot run here, or null. */
async function missingPrerequisite(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, cgroups)';
  for (const cmd of ['ip', 'curl', 'ping', 'iperf3', 'trafgen', 'ss', 'sysctl']) {
    try {
      await run('sh', ['-c', 'command -v "$1"', 'sh', cmd], { timeoutMs: 5000 });
    } catch {
      return `${cmd} is not installed (scripts/bootstrap installs it)`;
    }
  }
  try {
    findCgroup2Mount();
  } catch (e) {
    return (e as Error).message;
  }
  return null;
}

function bpffsMounted(): boolean {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === '/sys/fs/bpf' && l.split(' ')[2] === 'bpf');
}

async function netnsNames(): Promise<string[]> {
  const out = (await ip(['-j', 'netns', 'list'])).stdout.trim();
  return out ? (JSON.parse(out) as { name: string }[]).map((n) => n.name) : [];
}

/** Everything a lab with this prefix could leave behind, that still exists. */
async function leftovers(prefix: string): Promise<string[]> {
  const left: string[] = [];
  for (const n of await netnsNames()) if (n.startsWith(`${prefix}-`)) left.push(`netns ${n}`);
  const cg = `${findCgroup2Mount()}/tollgate-lab/${prefix}`;
  if (existsSync(cg)) left.push(`cgroup ${cg}`);
  if (existsSync(stateFilePath(prefix))) left.push(`state ${stateFilePath(prefix)}`);
  if (existsSync(pinDirPath(prefix))) left.push(`pins ${pinDirPath(prefix)}`);
  // Nothing of the lab may ever appear in the machine's root namespace.
  const root = JSON.parse((await ip(['-j', 'link', 'show'])).stdout) as { ifname: string }[];
  for (const l of root) if (new RegExp(`^${prefix}(t\\d+|in|at|hp)h$`).test(l.ifname)) left.push(`root iface ${l.ifname}`);
  return left;
}

function procGone(pid: number): boolean {
  try {
    // A zombie has exited; only its parent's reaping is pending.
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') ?? true;
  } catch {
    return true;
  }
}

async function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  const timer = new Promise<false>((r) => setTimeout(() => r(false), ms).unref());
  return Promise.race([once(child, 'exit').then(() => true), timer]);
}

function delta(a: IfaceCounters, b: IfaceCounters) {
  return {
    rxPackets: b.rxPackets - a.rxPackets,
    rxBytes: b.rxBytes - a.rxBytes,
    txPackets: b.txPackets - a.txPackets,
    txBytes: b.txBytes - a.txBytes,
  };
}

async function skipUnlessReady(t: TestContext): Promise<boolean> {
  const why = await missingPrerequisite();
  if (why) {
    t.skip(why);
    return false;
  }
  return true;
}

test('lab tgl with 2 tenants', { timeout: 180_000 }, async (t) => {
  if (!(await skipUnlessReady(t))) return;
  await labDown(P); // leftovers of an earlier crashed run
  t.after(() => labDown(P));
  await labDown('tglb');
  t.after(() => labDown('tglb'));

  const topo: Topology = await labUp({ prefix: P, tenants: 2 });
  const t1 = findNode(topo, 'tenant-1');
  const t2 = findNode(topo, 'tenant-2');
  const inet = findNode(topo, 'internet');
  const host = topo.hostNetns;

  await t.test('names, addresses and MACs are the computed ones', async () => {
    assert.equal(host, 'tgl-host');
    assert.deepEqual(
      endpoints(topo).map((n) => [n.name, n.netns, n.hostIface]),
      [
        ['tenant-1', 'tgl-t1', 'tglt1h'],
        ['tenant-2', 'tgl-t2', 'tglt2h'],
        ['internet', 'tgl-inet', 'tglinh'],
        ['attacker', 'tgl-atk', 'tglath'],
        ['honeypot', 'tgl-hp', 'tglhph'],
      ],
    );
    const present = await netnsNames();
    for (const n of topo.nodes) assert.ok(present.includes(n.netns), `netns ${n.netns}`);

    type Addr = { ifname: string; address: string; operstate: string; addr_info: { family: string; local: string; prefixlen: number }[] };
    const hostLinks = JSON.parse((await ip(['-n', host, '-j', 'addr', 'show'])).stdout) as Addr[];
    assert.deepEqual(hostLinks.map((l) => l.ifname).sort(), ['lo', ...endpoints(topo).map((n) => n.hostIface)].sort());
    for (const n of endpoints(topo)) {
      const h = hostLinks.find((l) => l.ifname === n.hostIface)!;
      assert.equal(h.operstate, 'UP', n.hostIface);
      assert.equal(h.address, n.gatewayMac);
      const globals = (l: Addr) => l.addr_info.filter((a) => !a.local.startsWith('fe80')).map((a) => `${a.local}/${a.prefixlen}`);
      assert.deepEqual(globals(h), [`${n.gatewayIpv4}/24`, `${n.gatewayIpv6}/64`]);
      const inside = JSON.parse((await ip(['-n', n.netns, '-j', 'addr', 'show'])).stdout) as Addr[];
      assert.deepEqual(inside.map((l) => l.ifname), ['lo', 'eth0']);
      const eth0 = inside[1];
      assert.equal(eth0.address, n.mac);
      assert.equal(eth0.operstate, 'UP');
      assert.deepEqual(globals(eth0), [`${n.ipv4}/24`, `${n.ipv6}/64`]);
      assert.equal(inside[0].operstate, 'UNKNOWN', 'loopback is up');
    }
  });

  await t.test('host forwards, and nothing routes out of the lab (route lookups only)', async () => {
    const sysctl = (k: string) => run('ip', ['netns', 'exec', host, 'sysctl', '-n', k]).then((r) => r.stdout.trim());
    assert.equal(await sysctl('net.ipv4.ip_forward'), '1');
    assert.equal(await sysctl('net.ipv6.conf.all.forwarding'), '1');
    assert.equal((await ip(['-n', host, '-j', 'route', 'show', 'default'])).stdout.trim(), '[]');
    assert.equal((await ip(['-n', host, '-6', '-j', 'route', 'show', 'default'])).stdout.trim(), '[]');
    for (const dst of ['8.8.8.8', '10.0.0.1', '2001:4860:4860::8888']) {
      await assert.rejects(ip(['-n', host, 'route', 'get', dst]), (e: unknown) => e instanceof CommandError && /unreachable/i.test(e.stderr), dst);
    }
    // Endpoints send everything to the lab host (which drops what it cannot route).
    for (const n of endpoints(topo)) {
      const r4 = JSON.parse((await ip(['-n', n.netns, '-j', 'route', 'get', '8.8.8.8'])).stdout) as { gateway: string; dev: string }[];
      assert.deepEqual([r4[0].gateway, r4[0].dev], [n.gatewayIpv4, 'eth0']);
      const r6 = JSON.parse((await ip(['-n', n.netns, '-j', 'route', 'get', '2001:4860:4860::8888'])).stdout) as { gateway: string; dev: string }[];
      assert.deepEqual([r6[0].gateway, r6[0].dev], [n.gatewayIpv6, 'eth0']);
    }
  });

  await t.test('tenant <-> internet ping works both ways, v4 and v6', async () => {
    for (const [a, b] of [[t1, inet], [inet, t1], [t2, inet]] as [EndpointNode, EndpointNode][]) {
      for (const addr of [b.ipv4, b.ipv6]) {
        const r = await ping(a, addr, 5, 56);
        assert.equal(r.packets, 5);
        assert.equal(r.replies.packets, 5, `${a.name} -> ${addr}`);
        assert.equal(r.ipBytes, 5 * (addr.includes(':') ? 104 : 84));
      }
    }
  });

  await t.test('tenant -> tenant works (ping and TCP)', async () => {
    assert.equal((await ping(t1, t2.ipv4, 3)).replies.packets, 3);
    assert.equal((await ping(t2, t1.ipv6, 3)).replies.packets, 3);
    const before = await ifaceCounters(host, t1.hostIface);
    const r = await tcpTransfer(t1, t2, 5_000_000);
    const d = delta(before, await ifaceCounters(host, t1.hostIface));
    assert.deepEqual([r.payloadBytes, r.receivedBytes], [5_000_000, 5_000_000]);
    // Every payload byte crossed tenant-1's host-side veth, plus TCP/IP/Ethernet headers.
    assert.ok(d.rxBytes > r.payloadBytes, `rx ${d.rxBytes} vs payload ${r.payloadBytes}`);
    assert.ok(d.rxBytes < r.payloadBytes * 1.1, `rx ${d.rxBytes} vs payload ${r.payloadBytes}`);
    const r6 = await tcpTransfer(t2, t1, 1_000_001, { family: 6 });
    assert.deepEqual([r6.payloadBytes, r6.receivedBytes], [1_000_001, 1_000_001]);
    const perf = await iperf3Transfer(t1, t2, 2_000_000);
    assert.ok(perf.payloadBytes >= 2_000_000 && perf.bitsPerSecond > 0, JSON.stringify(perf));
  });

  await t.test('HTTP service answers /bytes/N, /sink and /health from another node', async () => {
    for (const family of [4, 6] as const) {
      const r = await httpBytes(inet, t1, 1_000_003, { family });
      assert.deepEqual([r.status, r.bytes], [200, 1_000_003]);
    }
    assert.deepEqual([(await httpBytes(t2, t1, 0)).bytes], [0]);
    await assert.rejects(httpBytes(inet, t2, 1024 ** 3 + 1), /^TrafficError: n: must be/);
    const tooBig = await httpFromNetns(inet.netns, `http://${t2.ipv4}:8080/bytes/${1024 ** 3 + 1}`, { keepBody: true });
    assert.equal(tooBig.status, 400);
    assert.match(tooBig.body, /N: must be at most/);
    const health = await httpFromNetns(inet.netns, `http://[${t1.ipv6}]:8080/health`, { keepBody: true });
    assert.equal(health.status, 200);
    assert.equal(JSON.parse(health.body).name, 'tenant-1');
    assert.equal(await httpSink(inet, t2, 123_457), 123_457);
    const honeypot = findNode(topo, 'honeypot');
    assert.equal((await httpBytes(findNode(topo, 'attacker'), honeypot, 10)).bytes, 10);
  });

  await t.test('each service runs in its node netns and cgroup', async () => {
    const state = readLabState(P)!;
    assert.equal(state.phase, 'up');
    const mount = findCgroup2Mount();
    for (const svc of state.services) {
      const node = findNode(topo, svc.node);
      const cg = readFileSync(`/proc/${svc.pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
      assert.equal(cg, `0::/tollgate-lab/${P}/${svc.node}`);
      assert.ok(readFileSync(`${mount}/tollgate-lab/${P}/${svc.node}/cgroup.procs`, 'utf8').split('\n').includes(String(svc.pid)));
      assert.equal(readlinkSync(`/proc/${svc.pid}/ns/net`), `net:[${statSync(`/run/netns/${node.netns}`).ino}]`);
    }
    assert.deepEqual(state.services.map((s) => s.node), ['tenant-1', 'tenant-2', 'honeypot']);
  });

  await t.test('spawnInNetns with a cgroup: the process is in the cgroup from its first instruction', async () => {
    const child = spawnInNetns(t2.netns, 'cat', ['/proc/self/cgroup'], { cgroup: t2.cgroup! });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    assert.ok(await exited(child, 10_000));
    assert.equal(child.exitCode, 0);
    assert.ok(out.split('\n').includes(`0::/tollgate-lab/${P}/tenant-2`), out);
    assert.throws(() => spawnInNetns(t2.netns, 'true', [], { cgroup: 'relative' }), /^Error: cgroup: /);
    assert.throws(() => spawnInNetns('-bad name', 'true', []), /^Error: netns: /);
  });

  await t.test('labStatus reports the lab up with healthy services', async () => {
    const s = await labStatus(P, { probe: true });
    assert.equal(s.up, true);
    assert.deepEqual(s.missingNetns, []);
    assert.equal(s.services.length, 3);
    for (const svc of s.services) assert.deepEqual([svc.alive, svc.inCgroup, svc.healthy], [true, true, true], svc.node);
  });

  await t.test('an idle lab is quiet: no packet crosses the host between measurements', async () => {
    const ifaces = endpoints(topo).map((n) => n.hostIface);
    const a = await Promise.all(ifaces.map((i) => ifaceCounters(host, i)));
    await new Promise((r) => setTimeout(r, 500));
    const b = await Promise.all(ifaces.map((i) => ifaceCounters(host, i)));
    assert.deepEqual(b.map((x, i) => delta(a[i], x)), ifaces.map(() => ({ rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 })));
  });

  await t.test('udpBurst ground truth equals the host veth counters (v4 and v6)', async () => {
    const b0 = await ifaceCounters(host, t1.hostIface);
    const i0 = await ifaceCounters(host, inet.hostIface);
    const r = await udpBurst(t1, inet, 9100, [0, 64, 1472], 200);
    assert.equal(r.packets, 600);
    assert.equal(r.ipBytes, 200 * (0 + 64 + 1472) + 600 * 28);
    assert.deepEqual(r.received, { packets: 600, payloadBytes: r.payloadBytes });
    const d = delta(b0, await ifaceCounters(host, t1.hostIface));
    assert.deepEqual([d.rxPackets, d.rxBytes, d.txPackets], [600, r.ipBytes + 600 * 14, 0]);
    const di = delta(i0, await ifaceCounters(host, inet.hostIface));
    assert.deepEqual([di.txPackets, di.txBytes, di.rxPackets], [600, r.ipBytes + 600 * 14, 0]);

    const c0 = await ifaceCounters(host, t2.hostIface);
    const r6 = await udpBurst(inet, t2.ipv6, 9101, [1452, 1], 100, { receiver: t2 });
    assert.equal(r6.ipBytes, 100 * (1452 + 1) + 200 * 48);
    assert.equal(r6.received?.packets, 200);
    const d6 = delta(c0, await ifaceCounters(host, t2.hostIface));
    assert.deepEqual([d6.txPackets, d6.txBytes, d6.rxPackets], [200, r6.ipBytes + 200 * 14, 0]);
    await assert.rejects(udpBurst(t1, '198.19.0.2', 9102, [10], 1), /^TrafficError: receiver: /);
    await assert.rejects(udpBurst(t1, inet, 9102, [1473], 1), /sizes\[0\]: /);
  });

  await t.test('ping ground truth equals the host veth counters', async () => {
    const b0 = await ifaceCounters(host, t1.hostIface);
    const r = await ping(t1, inet.ipv6, 10, 200);
    const d = delta(b0, await ifaceCounters(host, t1.hostIface));
    assert.equal(r.replies.packets, 10);
    assert.deepEqual([d.rxPackets, d.rxBytes], [r.packets, r.ipBytes + 14 * r.packets]);
    assert.deepEqual([d.txPackets, d.txBytes], [r.replies.packets, r.replies.ipBytes + 14 * r.replies.packets]);
  });

  await t.test('trafgenBurst (AF_PACKET TX ring) ground truth equals the counters, v4 and v6', async () => {
    for (const family of [4, 6] as const) {
      const b0 = await ifaceCounters(host, t2.hostIface);
      const r = await trafgenBurst(t2, inet, 500, 100, { family, gapUs: 20 });
      const d = delta(b0, await ifaceCounters(host, t2.hostIface));
      assert.equal(r.ipBytes, 500 * (100 + 8 + (family === 4 ? 20 : 40)));
      assert.deepEqual([d.rxPackets, d.rxBytes, d.txPackets], [500, r.ipBytes + 500 * 14, 0], `v${family}`);
      // Routed through the host and accepted by the receiver: headers and checksums are right.
      assert.deepEqual(r.received, { packets: 500, payloadBytes: 50_000 }, `v${family}`);
    }
  });

  await t.test('a second lab with another prefix coexists', async () => {
    const other = await labUp({ prefix: 'tglb', tenants: 1 });
    const o1 = findNode(other, 'tenant-1');
    assert.equal(o1.ipv4, t1.ipv4, 'same addresses, separate namespaces');
    assert.equal((await ping(o1, findNode(other, 'internet').ipv4, 2)).replies.packets, 2);
    assert.equal((await httpBytes(findNode(other, 'internet'), o1, 77)).bytes, 77);
    await labDown('tglb');
    assert.deepEqual(await leftovers('tglb'), []);
    assert.equal((await ping(t1, inet.ipv4, 2)).replies.packets, 2, 'tgl unaffected');
    assert.equal((await labStatus(P)).up, true);
  });

  await t.test('labUp refuses a prefix that is already up', async () => {
    await assert.rejects(labUp({ prefix: P, tenants: 1 }), (e: unknown) => e instanceof LabError && /lab tgl already exists/.test(e.message));
    assert.equal((await labStatus(P, { probe: true })).up, true, 'the refused attempt changed nothing');
  });

  await t.test('labDown removes everything and is idempotent', async () => {
    const pids = readLabState(P)!.services.map((s) => s.pid);
    const report = await labDown(P);
    assert.equal(report.removedNetns.length, 6);
    assert.equal(report.removedStateFile, true);
    assert.deepEqual(await leftovers(P), []);
    for (const pid of pids) assert.ok(procGone(pid), `pid ${pid} gone`);
    const again = await labDown(P);
    assert.deepEqual([again.removedNetns, again.removedCgroups, again.killedPids, again.removedStateFile], [[], [], [], false]);
    const s = await labStatus(P);
    assert.deepEqual([s.up, s.netns, s.cgroups, s.stateFile], [false, [], [], null]);
  });
});

test('labDown after a crash (no state file, stray processes, pins) still cleans up', { timeout: 120_000 }, async (t) => {
  if (!(await skipUnlessReady(t))) return;
  await labDown(P);
  t.after(() => labDown(P));
  const topo = await labUp({ prefix: P, tenants: 1 });
  const t1 = findNode(topo, 'tenant-1');
  const servicePids = readLabState(P)!.services.map((s) => s.pid);

  // A process in a namespace but in no lab cgroup, and one in a nested cgroup.
  const strayNs = spawnInNetns(topo.hostNetns, 'sleep', ['120'], { stdio: 'ignore' });
  mkdirSync(`${t1.cgroup}/nested`);
  const strayCg = spawnInNetns(t1.netns, 'sleep', ['120'], { stdio: 'ignore', cgroup: `${t1.cgroup}/nested` });
  t.after(() => {
    strayNs.kill('SIGKILL');
    strayCg.kill('SIGKILL');
  });
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(strayNs.exitCode, null);
  assert.equal(strayCg.exitCode, null);

  let pins = false;
  if (bpffsMounted()) {
    const pinRoot = dirname(pinDirPath(P));
    if (!existsSync(pinRoot)) {
      // Created here for the test only: remove it again if it is still empty.
      t.after(() => {
        try {
          rmdirSync(pinRoot);
        } catch {}
      });
    }
    mkdirSync(`${pinDirPath(P)}/sub`, { recursive: true });
    pins = true;
  } else {
    t.diagnostic('bpffs is not mounted at /sys/fs/bpf: pin removal not exercised here');
  }
  rmSync(stateFilePath(P)); // the crash: labDown only has names to go by

  const report = await labDown(P);
  assert.equal(report.removedStateFile, false);
  assert.equal(report.removedPins, pins);
  assert.deepEqual(report.removedNetns.sort(), ['tgl-atk', 'tgl-host', 'tgl-hp', 'tgl-inet', 'tgl-t1']);
  assert.ok(await exited(strayNs, 10_000), 'process in the host netns killed');
  assert.ok(await exited(strayCg, 10_000), 'process in a nested cgroup killed');
  for (const pid of servicePids) assert.ok(procGone(pid), `service pid ${pid} gone`);
  assert.deepEqual(await leftovers(P), []);
});

test('a failed labUp removes what it created', { timeout: 60_000 }, async (t) => {
  if (!(await skipUnlessReady(t))) return;
  await labDown(P);
  t.after(() => labDown(P));
  // 0 ms: no health probe can run in time, so the failure is certain (1 ms raced a fast service).
  await assert.rejects(labUp({ prefix: P, tenants: 1, serviceTimeoutMs: 0 }), /did not answer \/health within 0 ms/);
  assert.deepEqual(await leftovers(P), []);
  await assert.rejects(labUp({ prefix: 'T!', tenants: 1 }), /^LabConfigError: prefix: /);
  await assert.rejects(labDown('no way'), /^LabConfigError: prefix: /);
});
