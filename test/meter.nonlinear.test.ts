// The metering programs attached for real (tcx links and generic XDP on a veth
// pair between two network namespaces), driven by trafgen. trafgen sends from
// an AF_PACKET TX ring, so its packets reach tc with only the Ethernet header
// in the linear area (shared/REFERENCE-HOST.md): a parser that stops at
// data_end would count them with no L3 bytes or not attribute them at all.
// Every packet must land in the right counter with its full IPv4 length, and
// the packet count must equal what the veth itself counted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfObject, TypedMap, ifindexOf, u32, withNetns, type BpfLink } from '../src/kernel/index.js';
import { TG_CLASS_DEFAULT, TG_DIR_EGRESS, TG_DIR_INGRESS, TG_DIR_MAX, TG_MAX_CLASSES, TgCounter, TgLpmV4Key, TgTenantRef } from '../src/kernel/abi.gen.js';
import { ethernet, ipv4, udp } from '../lab/packets.js';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');
const OBJECT = join(ROOT, 'build', 'bpf', 'meter.bpf.o');
const NS_A = 'tgb-nl-a';
const NS_B = 'tgb-nl-b';
const IF_A = 'tgb-nla0';
const IF_B = 'tgb-nlb0';
const MAC_A = '02:00:5e:12:fa:01';
const MAC_B = '02:00:5e:12:fa:02';
const IP_A = '198.18.250.1';
const IP_B = '198.18.250.2';
const TENANT_A = 1;
const TENANT_B = 2;
const COUNT = 2000;
const PAYLOAD = 200;

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
const nsExec = (ns: string, ...args: string[]) => execFileSync('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });

function cleanup(): void {
  for (const ns of [NS_A, NS_B]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
}

function rxPackets(ns: string, dev: string): bigint {
  return BigInt(nsExec(ns, 'cat', `/sys/class/net/${dev}/statistics/rx_packets`).trim());
}

/** Sends COUNT copies of frame out of IF_A with trafgen (TX ring), bounded in packets and time. */
function trafgen(frame: Buffer, qdiscPath: boolean, dir: string): void {
  const cfg = join(dir, 'frame.cfg');
  writeFileSync(cfg, `{ ${[...frame].map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(', ')} }\n`);
  const args = ['netns', 'exec', NS_A, 'trafgen', '--dev', IF_A, '--conf', cfg, '--num', String(COUNT), '--cpus', '1'];
  if (qdiscPath) args.push('--qdisc-path');
  const r = spawnSync('ip', args, { timeout: 20_000, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`trafgen failed (${r.status ?? r.signal}): ${r.stderr}`);
  // Let the receiver's replies (ARP, ICMP) settle before counters are compared.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
}

describe('meter on a veth pair, driven by trafgen (non-linear skbs)', () => {
  let skipReason: string | undefined;
  let obj: BpfObject | undefined;
  let counters: TypedMap<number, TgCounter>;
  let dir = '';
  const links: BpfLink[] = [];
  const frame = ethernet({
    dst: MAC_B,
    src: MAC_A,
    payload: ipv4({ src: IP_A, dst: IP_B, l4: udp({ sport: 40000, dport: 9, payload: Buffer.alloc(PAYLOAD, 0x5a) }) }),
  });
  const l3 = 20 + 8 + PAYLOAD;

  before(() => {
    if (process.getuid?.() !== 0) skipReason = 'needs root';
    else if (!existsSync(OBJECT)) skipReason = `${OBJECT} is missing: run \`bash scripts/build-bpf\``;
    else if (spawnSync('trafgen', ['--version']).error) skipReason = 'trafgen (netsniff-ng) is not installed';
    if (skipReason) return;
    cleanup();
    dir = mkdtempSync(join(tmpdir(), 'tgb-nl-'));
    ip('netns', 'add', NS_A);
    ip('netns', 'add', NS_B);
    // No IPv6 on the pair: router/neighbour solicitations would otherwise add
    // packets to the veth's own counters that trafgen did not send.
    for (const ns of [NS_A, NS_B]) for (const k of ['all', 'default']) nsExec(ns, 'sysctl', '-qw', `net.ipv6.conf.${k}.disable_ipv6=1`);
    ip('link', 'add', IF_A, 'netns', NS_A, 'address', MAC_A, 'type', 'veth', 'peer', 'name', IF_B, 'netns', NS_B, 'address', MAC_B);
    nsExec(NS_A, 'ip', 'addr', 'add', `${IP_A}/30`, 'dev', IF_A);
    nsExec(NS_B, 'ip', 'addr', 'add', `${IP_B}/30`, 'dev', IF_B);
    nsExec(NS_A, 'ip', 'link', 'set', IF_A, 'up');
    nsExec(NS_B, 'ip', 'link', 'set', IF_B, 'up');

    obj = BpfObject.open(OBJECT);
    obj.load();
    counters = new TypedMap(obj.map('tg_meter_counters'), u32, TgCounter);
    const v4 = new TypedMap(obj.map('tg_tenant_v4'), TgLpmV4Key, TgTenantRef);
    const key = (addr: string): TgLpmV4Key => ({ prefixlen: 8 + 32, generation: 0, addr_be: Buffer.from(addr.split('.').map(Number)), pad: Buffer.alloc(3) });
    v4.set(key(IP_A), { tenant_id: TENANT_A, flags: 0 });
    v4.set(key(IP_B), { tenant_id: TENANT_B, flags: 0 });
  });

  after(() => {
    for (const l of links.splice(0)) l.close();
    obj?.close();
    cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // No classes here: everything is in the default class; the array has the default class capacity.
  const slot = (tenant: number, d: number) => (tenant * TG_MAX_CLASSES + TG_CLASS_DEFAULT) * TG_DIR_MAX + d;
  const counter = (tenant: number, d: number) => counters.getSum(slot(tenant, d))!;
  const totalPackets = () => counters.entries().reduce((n, [, v]) => n + v.packets, 0n);

  test('tcx ingress on the receiving veth counts every trafgen packet with its full L3 length', (t) => {
    if (skipReason) return t.skip(skipReason);
    const link = withNetns(NS_B, () => obj!.program('tg_meter_ingress').attachTcx(ifindexOf(IF_B), 'ingress'));
    links.push(link);
    const before = counter(TENANT_A, TG_DIR_EGRESS);
    const total0 = totalPackets();
    const rx0 = rxPackets(NS_B, IF_B);
    trafgen(frame, false, dir);
    const rx = rxPackets(NS_B, IF_B) - rx0;
    const total = totalPackets() - total0;
    const got = counter(TENANT_A, TG_DIR_EGRESS);
    link.close();
    links.splice(links.indexOf(link), 1);
    // Host-ingress of IF_B: the source (tenant A) is looked up first -> A's EGRESS.
    assert.equal(got.packets - before.packets, BigInt(COUNT), 'every trafgen packet, attributed to A');
    // The receiver answers (ICMP port unreachable, so ARP first): the replies it
    // receives are metered too, unattributed. All together equal the veth's own count.
    assert.equal(total, rx, 'packets metered at the hook equal the interface rx counter');
    assert.equal(got.bytes - before.bytes, BigInt(COUNT * l3), 'bytes are the IPv4 tot_len of every packet');
  });

  test('tcx egress on the sending veth sees trafgen packets on the qdisc path', (t) => {
    if (skipReason) return t.skip(skipReason);
    const link = withNetns(NS_A, () => obj!.program('tg_meter_egress').attachTcx(ifindexOf(IF_A), 'egress'));
    links.push(link);
    const before = counter(TENANT_B, TG_DIR_INGRESS);
    trafgen(frame, true, dir);
    const got = counter(TENANT_B, TG_DIR_INGRESS);
    link.close();
    links.splice(links.indexOf(link), 1);
    // Host-egress: the destination (tenant B) is looked up first -> B's INGRESS.
    assert.equal(got.packets - before.packets, BigInt(COUNT));
    assert.equal(got.bytes - before.bytes, BigInt(COUNT * l3));
  });

  test('generic XDP on the receiving veth counts the same', (t) => {
    if (skipReason) return t.skip(skipReason);
    const link = withNetns(NS_B, () => obj!.program('tg_meter_xdp').attachXdp(ifindexOf(IF_B), 'generic'));
    links.push(link);
    const before = counter(TENANT_A, TG_DIR_EGRESS);
    trafgen(frame, false, dir);
    const got = counter(TENANT_A, TG_DIR_EGRESS);
    link.close();
    links.splice(links.indexOf(link), 1);
    assert.equal(got.packets - before.packets, BigInt(COUNT));
    assert.equal(got.bytes - before.bytes, BigInt(COUNT * l3));
  });

  test('nothing else was counted', (t) => {
    if (skipReason) return t.skip(skipReason);
    const all = counters.entries().filter(([, v]) => v.packets !== 0n);
    const idx = all.map(([k]) => k).sort((a, b) => a - b);
    // Besides A's and B's counters only the unattributed row (the receiver's ARP traffic) may move.
    const allowed = [0, 1, slot(TENANT_A, TG_DIR_EGRESS), slot(TENANT_B, TG_DIR_INGRESS)];
    for (const i of idx) assert.ok(allowed.includes(i), `counter ${i} moved: ${JSON.stringify(all, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))}`);
    assert.equal(counter(TENANT_A, TG_DIR_EGRESS).packets, BigInt(2 * COUNT));
    assert.equal(counter(TENANT_B, TG_DIR_INGRESS).packets, BigInt(COUNT));
  });
});
