// npm run demo: lab up, the agent on the example policy, sample traffic from
// every tenant, then the ledger's usage next to the ground truth. Ctrl-C (or
// --duration) tears everything down.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { callAgent } from '../src/api/client.js';
import { table, humanBytes } from '../src/cli/table.js';
import type { InvoiceDoc } from '../src/billing/index.js';
import { packageRoot } from '../src/paths.js';
import {
  examplePolicyYaml, findNode, httpBytes, labDown, labUp, pinDirPath, ping, tcpStream, tenantNodes, trafgenBurst, udpBurst,
} from './index.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string' },
    tenants: { type: 'string', default: '3' },
    prefix: { type: 'string', default: 'tg' },
  },
});
const tenantsN = Number(args.tenants);
const duration = args.duration === undefined ? (process.stdin.isTTY ? Infinity : 30) : Number(args.duration);
if (!Number.isFinite(duration) && duration !== Infinity) throw new Error('--duration must be a number of seconds');
const prefix = args.prefix!;
const dir = join('/run/tollgate', `demo-${prefix}`);
const socket = join(dir, 'agent.sock');
const step = (s: string) => process.stdout.write(`\n== ${s}\n`);

let agent: ChildProcess | undefined;
let tearingDown: Promise<void> | undefined;
function teardown(): Promise<void> {
  tearingDown ??= (async () => {
    step('tearing down');
    if (agent && agent.exitCode === null) {
      agent.kill('SIGTERM');
      await new Promise((r) => agent!.once('exit', r));
    }
    await labDown(prefix);
    rmSync(dir, { recursive: true, force: true });
    console.log('lab, agent, pins and ledger removed');
  })();
  return tearingDown;
}
process.once('SIGINT', () => void teardown().then(() => process.exit(130)));
process.once('SIGTERM', () => void teardown().then(() => process.exit(143)));

try {
  step(`lab up: ${tenantsN} tenants, internet, attacker, honeypot (prefix ${prefix})`);
  await labDown(prefix); // a crashed earlier demo
  const topo = await labUp({ prefix, tenants: tenantsN });
  console.log(table(['NODE', 'ROLE', 'NETNS', 'HOST IFACE', 'IPV4', 'IPV6'],
    topo.nodes.map((n) => [n.name, n.role, n.netns, n.hostIface, n.ipv4, n.ipv6])));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const policy = join(dir, 'policy.yaml');
  // The first tenant gets a small monthly budget for sending to the internet, enforced in the datapath.
  const capped = tenantNodes(topo)[0]!;
  // The attacker node's interface is filtered (not metered): its address is on a blocklist.
  const attacker = findNode(topo, 'attacker');
  writeFileSync(policy, `${examplePolicyYaml(topo)}quotas:
  - { tenant: ${capped.name}, class: internet, direction: egress, budget: 20MB, thresholds: [50, 100], action: block }
security:
  interfaces: [{ name: ${attacker.hostIface}, mode: tc }]
  defaultAction: allow
  rules:
    - { name: blocklist, action: deny, direction: both, src: [${attacker.ipv4}/32, "${attacker.ipv6}/128"] }
    - { name: no-telnet, action: deny, protocols: [tcp], ports: [23] }
    - { name: log-dns, action: log, direction: both, protocols: [udp], ports: [53] }
`);

  step(`agent: metering ${tenantNodes(topo).map((t) => t.hostIface).join(', ')} inside ${topo.hostNetns}`);
  agent = spawn(process.execPath, [join(packageRoot, 'bin', 'tollgate.js'), '--socket', socket, 'agent', '--config', policy,
    '--netns', topo.hostNetns, '--pin-root', pinDirPath(prefix), '--db', join(dir, 'ledger.db'), '--interval', '2s', '--log-level', 'warn'],
    { stdio: ['ignore', 'inherit', 'inherit'] });
  for (let i = 0; ; i++) {
    try {
      await callAgent(socket, 'GET', '/v1/health', 1000);
      break;
    } catch (err) {
      if (agent.exitCode !== null || i > 150) throw new Error(`the agent did not start: ${(err as Error).message}`);
      await sleep(200);
    }
  }

  type Usage = { rows: Array<{ tenant: string; class?: string; billable?: boolean; direction: string; packets: number; bytes: number }> };
  const usage = async (by: 'tenant' | 'tenant-class'): Promise<Usage['rows']> => {
    await callAgent(socket, 'POST', '/v1/flush');
    return (await callAgent<Usage>(socket, 'GET', `/v1/usage?by=${by}`)).rows;
  };

  step('sample traffic with known sizes: UDP and ICMP over IPv4/IPv6, DNS to the provider (management class), tenant to tenant (internal class), and a trafgen burst (AF_PACKET, non-linear skbs)');
  const internet = findNode(topo, 'internet');
  const sent = new Map<string, { packets: number; bytes: number }>();
  const add = (k: string, p: number, b: number) => {
    const v = sent.get(k) ?? { packets: 0, bytes: 0 };
    sent.set(k, { packets: v.packets + p, bytes: v.bytes + b });
  };
  let port = 42000;
  for (const [i, t] of tenantNodes(topo).entries()) {
    const up = await udpBurst(t, internet, port++, [64, 512, 1200], 20 * (i + 1));
    add(`${t.name}/egress`, up.packets, up.ipBytes);
    const down = await udpBurst(internet, t, port++, [256], 30 * (i + 1), { family: 6 });
    add(`${t.name}/ingress`, down.packets, down.ipBytes);
    const p = await ping(t, internet.ipv4, 10, 100);
    add(`${t.name}/egress`, p.packets, p.ipBytes);
    add(`${t.name}/ingress`, p.replies.packets, p.replies.ipBytes);
    const tg = await trafgenBurst(t, internet, 500 * (i + 1), 300);
    add(`${t.name}/egress`, tg.packets, tg.ipBytes);
    const dns = await udpBurst(t, internet, 53, [40], 5);
    add(`${t.name}/egress`, dns.packets, dns.ipBytes);
    const peer = tenantNodes(topo)[(i + 1) % tenantNodes(topo).length]!;
    if (peer !== t) {
      const lan = await udpBurst(t, peer, port++, [700], 10);
      add(`${t.name}/egress`, lan.packets, lan.ipBytes);
      add(`${peer.name}/ingress`, lan.packets, lan.ipBytes);
    }
  }
  const first = await usage('tenant');
  console.log(table(['TENANT', 'DIRECTION', 'LEDGER PACKETS', 'SENT PACKETS', 'LEDGER BYTES', 'SENT IP BYTES', 'EXACT'],
    first.map((r) => {
      const e = sent.get(`${r.tenant}/${r.direction}`) ?? { packets: 0, bytes: 0 };
      return [r.tenant, r.direction, r.packets, e.packets, r.bytes, e.bytes, r.packets === e.packets && r.bytes === e.bytes ? 'yes' : 'NO'];
    })));

  step('TCP: each tenant serves an HTTP download to the internet');
  for (const [i, t] of tenantNodes(topo).entries()) {
    const r = await httpBytes(internet, t, 2_000_000 * (i + 1));
    console.log(`${t.name}: served ${humanBytes(r.bytes)}`);
  }
  const second = await usage('tenant-class');
  console.log(table(['TENANT', 'CLASS', 'BILLABLE', 'DIRECTION', 'PACKETS', 'BYTES', ''],
    second.map((r) => [r.tenant, r.class ?? '', r.billable ? 'yes' : 'no', r.direction, r.packets, r.bytes, humanBytes(r.bytes)])));
  step('invoices for the running period (plan "lab", priced so that the lab traffic shows: 25 EUR per GB of internet traffic after 1 MB free, 0.01 per active hour, 10 base fee)');
  for (const t of tenantNodes(topo)) {
    const inv = await callAgent<InvoiceDoc>(socket, 'GET', `/v1/invoices/${t.name}/current`);
    console.log(`${t.name} ${inv.period.id} (${inv.status})`);
    console.log(table(['ITEM', 'QUANTITY', 'UNIT', 'UNIT PRICE', `AMOUNT ${inv.currency}`],
      [...inv.lines.map((l) => [l.description, l.quantity, l.unit, l.unitPrice, l.amount]), ['total', '', '', '', inv.total]]));
  }
  step(`quota: ${capped.name} may send 20 MB a month to the internet (action block); it tries to send 100 MB over TCP for 3 s`);
  const cut = await tcpStream(capped, internet, 100_000_000, 3);
  console.log(`${capped.name}: wrote ${humanBytes(cut.written)} into its socket, the internet received ${humanBytes(cut.received)}: cut off in the datapath at the budget`);
  const { quotas } = await callAgent<{ quotas: Array<{ tenant: string; class: string; direction: string; period: string; action: string; budget: number; used: number; exhausted: boolean; droppedPackets: number }> }>(socket, 'GET', '/v1/quotas');
  console.log(table(['TENANT', 'CLASS', 'DIRECTION', 'PERIOD', 'ACTION', 'BUDGET', 'USED', 'STATE', 'REFUSED PACKETS'],
    quotas.map((q) => [q.tenant, q.class, q.direction, q.period, q.action, humanBytes(q.budget), humanBytes(Number(q.used)), q.exhausted ? 'spent' : 'ok', q.droppedPackets])));
  const { alerts } = await callAgent<{ alerts: Array<{ createdAt: string; key: string }> }>(socket, 'GET', '/v1/alerts?limit=5');
  console.log(table(['RAISED', 'ALERT'], alerts.map((a) => [a.createdAt, a.key])));
  step(`firewall: the attacker (${attacker.ipv4}, on the blocklist) pings ${capped.name} and floods it with 10,000 trafgen frames; both are dropped where they enter`);
  const blocked = await ping(attacker, capped.ipv4, 5);
  await trafgenBurst(attacker, capped, 10_000, 18, { receive: false });
  console.log(`ping from the attacker: ${blocked.packets} sent, ${blocked.replies.packets} answered`);
  const fw = await callAgent<{ defaultAction: string; rules: Array<{ name: string; action: string; packets: number; bytes: number }>; stats: Record<string, number> }>(socket, 'GET', '/v1/security/rules');
  console.log(table(['RULE', 'ACTION', 'PACKETS', 'BYTES'], fw.rules.map((r) => [r.name, r.action === 'default' ? `default (${fw.defaultAction})` : r.action, r.packets, r.bytes])));
  console.log(`firewall: passed ${fw.stats.passed}, dropped ${fw.stats.dropped}`);
  console.log(`\ntry:  npx tollgate --socket ${socket} usage --json\n      npx tollgate --socket ${socket} invoice --tenant tenant-1 --html > invoice.html\n      npx tollgate --socket ${socket} top      (flows, exported every 5 s)\n      npx tollgate --socket ${socket} quotas\n      npx tollgate --socket ${socket} alerts\n      npx tollgate --socket ${socket} rules\n      npx tollgate --socket ${socket} status`);

  if (duration === Infinity) {
    step('running: Ctrl-C tears everything down');
    await new Promise(() => undefined);
  } else {
    step(`running for ${duration} s more`);
    await sleep(duration * 1000);
  }
} catch (err) {
  console.error(`demo failed: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
} finally {
  await teardown();
}
