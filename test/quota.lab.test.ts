// Acceptance, end to end: quotas enforced in the datapath of the real agent,
// with real TCP transfers in the lab.
//  - block: a tenant sending 200 MB against a 50 MB budget is cut off at the
//    budget (plus at most one packet per CPU), and the threshold alerts
//    (webhook POSTs from datapath events) precede the cut-off;
//  - throttle: once a budget is spent, the tenant's traffic runs at the
//    throttle rate, measured at the receiver within 10%.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { examplePolicyYaml, findNode, tcpStream, tenantNodes, udpBurst, type EndpointNode } from '../lab/index.js';
import { fetchAgentText } from '../src/api/client.js';
import { runCli, startLabAgent, type AgentProcess, type LabAgent } from './helpers/agent.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/webhooks.js';

const prefix = `tgq${Math.random().toString(36).slice(2, 5)}`;
const BUDGET = 50_000_000; // 50MB
const RATE = 10_000_000; // 10mbit
// The largest packet a tc hook can see from a TCP sender on veth: one GSO aggregate.
const MAX_PACKET = 65_536;
const QUOTAS = `quotas:
  - { tenant: T1, class: internet, direction: egress, budget: 50MB, thresholds: [80, 100], action: block }
  - { tenant: T2, class: internet, direction: egress, budget: 5MB, thresholds: [100], action: throttle, throttleRate: 10mbit }
alerts:
  webhooks: [WEBHOOK]
`;

type Alert = { type: string; tenant: string; threshold?: number; used: string; at: string };

/** A metric's value for one label set, from the agent's exposition text. */
function metric(text: string, name: string, labels: string): number {
  const m = new RegExp(`^${name}\\{${labels.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`no ${name}{${labels}} in the metrics`);
  return Number(m[1]);
}

describe('quotas enforced in the datapath, in the lab', { concurrency: false }, () => {
  let lab: LabAgent;
  let agent: AgentProcess;
  let t1: EndpointNode;
  let t2: EndpointNode;
  let internet: EndpointNode;
  let hooks: WebhookReceiver<Alert>;

  before(async () => {
    hooks = await startWebhookReceiver();
    lab = await startLabAgent({
      prefix, tenants: 2,
      policy: (topo) => {
        const [a, b] = tenantNodes(topo);
        return examplePolicyYaml(topo) + QUOTAS.replace('T1', a!.name).replace('T2', b!.name).replace('WEBHOOK', hooks.url);
      },
    });
    agent = lab.agent;
    [t1, t2] = tenantNodes(lab.topo);
    internet = findNode(lab.topo, 'internet');
  });

  after(async () => {
    await lab?.close();
    await hooks?.close();
  });

  test('block: 200 MB against a 50 MB budget is cut off at the budget, after the alerts', async () => {
    const r = await tcpStream(t1, internet, 200_000_000, 6);
    const metrics = await fetchAgentText(agent.socket, '/metrics');
    const labels = `tenant="${t1.name}",class="internet",direction="egress"`;
    const period = new Date().toISOString().slice(0, 7);
    const used = metric(metrics, 'tollgate_quota_datapath_used_bytes', `${labels},period="${period}"`);
    const cpus = availableParallelism();
    // L3 bytes let through: the budget, plus at most one packet per CPU.
    assert.ok(used >= BUDGET && used <= BUDGET + cpus * MAX_PACKET, `datapath let ${used} bytes through for a ${BUDGET}-byte budget`);
    // Payload read by the receiver: within the same bound (the packet that crosses the budget
    // passes, and can be a 64 KiB aggregate), and not cut early.
    assert.ok(r.received <= BUDGET + cpus * MAX_PACKET && r.received > BUDGET * 0.95, `the receiver read ${r.received} bytes`);
    assert.ok(r.received < used, 'payload is less than the L3 bytes let through');
    assert.ok(r.written > r.received, 'the sender had more to send');
    assert.ok(metric(metrics, 'tollgate_quota_dropped_packets_total', labels) > 0, 'the rest was refused');
    assert.equal(metric(metrics, 'tollgate_quota_exhausted', `${labels},period="${period}"`), 1);

    // The billing counter agrees: what was refused is not billed.
    await agent.call('POST', '/v1/flush');
    const billed = await agent.call<{ rows: Array<{ class: string; direction: string; bytes: string }> }>('GET', `/v1/usage?tenant=${t1.name}`);
    const egress = billed.rows.filter((x) => x.class === 'internet' && x.direction === 'egress').reduce((s, x) => s + BigInt(x.bytes), 0n);
    // Equal but for what the tenant sent before the agent seeded the quota (a few ARP/ND frames at most).
    assert.ok(egress >= BigInt(used) && egress - BigInt(used) < 2000n, `billed ${egress} bytes, the quota let ${used} through: refused packets are not billed`);

    const deadline = Date.now() + 10_000;
    const mine = () => hooks.posts.filter((p) => p.body.tenant === t1.name);
    while (mine().length < 3 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    const got = mine().map((p) => [p.body.type, p.body.threshold ?? null]);
    assert.deepEqual(got, [['quota.threshold', 80], ['quota.threshold', 100], ['quota.exhausted', null]]);
    const at = mine().map((p) => Date.parse(p.body.at));
    assert.ok(at[0]! <= at[1]! && at[1]! <= at[2]!, `datapath times: 80% ${at[0]}, 100% ${at[1]}, cut-off ${at[2]}`);
    assert.ok(BigInt(mine()[0]!.body.used) >= BigInt(BUDGET * 0.8) && BigInt(mine()[0]!.body.used) < BigInt(BUDGET));
    // Management traffic of the blocked tenant still flows.
    const dns = await udpBurst(t1, internet, 53, [200], 20);
    assert.equal(dns.packets, 20);
  });

  test('throttle: once the budget is spent, traffic runs at the throttle rate (within 10%)', async () => {
    const r = await tcpStream(t2, internet, 200_000_000, 8);
    // Skip the budget (5 MB, at lab speed) and the first second of policing; rate over the rest.
    const start = r.samples.find(([, b]) => b > 5_000_000 + 1_000_000);
    assert.ok(start, `the budget was passed: ${JSON.stringify(r.samples.slice(0, 5))}`);
    const from = r.samples.find(([ms]) => ms >= start[0] + 1000)!;
    const to = r.samples[r.samples.length - 1]!;
    const seconds = (to[0] - from[0]) / 1000;
    assert.ok(seconds >= 4, `measured over ${seconds} s`);
    const payloadBps = ((to[1] - from[1]) * 8) / seconds;
    const ratio = payloadBps / RATE;
    console.log(`# throttle: payload ${(payloadBps / 1e6).toFixed(2)} Mbit/s over ${seconds.toFixed(1)} s = ${ratio.toFixed(3)} x the 10 Mbit/s limit`);
    assert.ok(ratio >= 0.9 && ratio <= 1.1, `payload rate ${payloadBps} bit/s is not within 10% of ${RATE}`);
  });

  test('tollgate quotas and alerts show what the datapath did', async () => {
    const cli = async (...args: string[]) => {
      const r = await runCli(['--socket', agent.socket, ...args]);
      assert.equal(r.code, 0, `tollgate ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const q = JSON.parse(await cli('quotas', '--json')) as { quotas: Array<{ tenant: string; action: string; exhausted: boolean; used: number; droppedPackets: number }> };
    const blocked = q.quotas.find((x) => x.tenant === t1.name)!;
    assert.deepEqual([blocked.action, blocked.exhausted], ['block', true]);
    assert.ok(Number(blocked.used) >= BUDGET && Number(blocked.droppedPackets) > 0);
    assert.match(await cli('quotas'), new RegExp(`${t1.name} +internet +egress .* block .* spent`));
    const a = JSON.parse(await cli('alerts', '--json')) as { alerts: Array<{ key: string; deliveries: Array<{ state: string }> }> };
    const exhausted = a.alerts.find((x) => x.key.startsWith(`quota:${t1.name}:`) && x.key.endsWith(':exhausted'));
    assert.deepEqual(exhausted?.deliveries.map((d) => d.state), ['delivered']);
    const bad = await runCli(['--socket', agent.socket, 'alerts', '--limit', '0']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--limit/);
  });
});
