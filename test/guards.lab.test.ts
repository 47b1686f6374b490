// Floods and scans end to end: the real agent in the lab.
//  - amplification: UDP from port 53 to tenant 1 over ddos.thresholdPps is
//    detected (ddos.start), then dropped towards it while other UDP still
//    arrives; when it stops, the flood ends after holdFor (ddos.end) and
//    port 53 arrives again;
//  - a port scan (hping3 SYNs to 100 ports) is flagged (portscan.detected)
//    and, with action block, the scanner's packets are dropped until
//    blockFor ends.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { examplePolicyYaml, findNode, ping, runInNetns, tenantNodes, udpBurst, type EndpointNode, type Topology } from '../lab/index.js';
import { startLabAgent, waitForEvents, type AgentProcess, type LabAgent } from './helpers/agent.js';

const prefix = `tgd${Math.random().toString(36).slice(2, 5)}`;

describe('floods and scans in the lab', { concurrency: false }, () => {
  let lab: LabAgent;
  let agent: AgentProcess;
  let topo: Topology;
  let t1: EndpointNode;
  let internet: EndpointNode;
  let attacker: EndpointNode;
  const waitFor = (type: string, n: number, ms: number) => waitForEvents(agent, type, n, ms);

  before(async () => {
    lab = await startLabAgent({
      prefix, tenants: 1,
      policy: (topo) => `${examplePolicyYaml(topo)}security:
  interfaces: [{ name: ${findNode(topo, 'attacker').hostIface}, mode: tc }]
  ddos: { thresholdPps: 1000, window: 1s, mitigation: block-source, holdFor: 2s }
  portscan: { threshold: 50, window: 5s, action: block, blockFor: 4s }
`,
    });
    ({ agent, topo } = lab);
    [t1] = tenantNodes(topo);
    internet = findNode(topo, 'internet');
    attacker = findNode(topo, 'attacker');
  });
  after(async () => {
    await lab?.close();
  });

  test('amplification from port 53: detected, blocked towards the victim, other UDP arrives, ended after holdFor', async () => {
    const first = await udpBurst(internet, t1!, 9100, [64], 3000, { sport: 53, burst: 200, timeoutMs: 3000 });
    assert.ok(first.received!.packets > 0);
    const [start] = await waitFor('ddos.start', 1, 3000);
    assert.ok(start, 'ddos.start recorded');
    assert.equal(start.detail.kind, 'amplification');
    assert.equal(start.detail.destination, t1!.ipv4);
    assert.equal(start.tenant, t1!.name);
    const blocked = await udpBurst(internet, t1!, 9101, [64], 500, { sport: 53, burst: 100, timeoutMs: 1500 });
    assert.equal(blocked.received!.packets, 0, 'reflection traffic to the victim is dropped');
    const other = await udpBurst(internet, t1!, 9102, [64], 200, { burst: 50, timeoutMs: 3000 });
    assert.equal(other.received!.packets, 200, 'other UDP to it arrives');
    const [end] = await waitFor('ddos.end', 1, 8000);
    assert.ok(end, 'ddos.end recorded after the flood stopped');
    assert.ok((end.detail.dropped as number) >= 500);
    const again = await udpBurst(internet, t1!, 9103, [64], 20, { sport: 53, burst: 10, timeoutMs: 3000 });
    assert.equal(again.received!.packets, 20, 'the block is gone');
  });

  test('a port scan is flagged and its source blocked for blockFor', async () => {
    assert.ok((await ping(attacker, t1!.ipv4, 2)).replies.packets > 0, 'the attacker reaches tenant 1 before scanning');
    // SYNs to ports 1..100, 2 ms apart: bounded (-c), nothing listens on most of them.
    await runInNetns(attacker.netns, 'hping3', ['-S', '-p', '++1', '-c', '100', '-i', 'u2000', t1!.ipv4], { timeoutMs: 30_000, allowFail: true });
    const [scan] = await waitFor('portscan.detected', 1, 3000);
    assert.ok(scan, 'portscan.detected recorded');
    assert.equal(scan.detail.source, attacker.ipv4);
    assert.ok((scan.detail.ports as number) >= 50);
    const detected = Date.parse(scan.at);
    const blocked = await udpBurst(attacker, t1!, 9200, [64], 50, { burst: 10, timeoutMs: 1000 });
    assert.equal(blocked.received!.packets, 0, 'the scanner is blocked');
    await new Promise((r) => setTimeout(r, Math.max(0, detected + 4500 - Date.now())));
    const again = await udpBurst(attacker, t1!, 9201, [64], 50, { burst: 10, timeoutMs: 3000 });
    assert.equal(again.received!.packets, 50, 'and passes again after blockFor');
    const rules = await agent.call<{ stats: Record<string, number> }>('GET', '/v1/security/rules');
    assert.ok(rules.stats.blocked_source >= 50 && rules.stats.blocked_reflection >= 500);
  });
});
