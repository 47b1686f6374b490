// Honeypot redirect end to end: the real agent in the lab.
//  - a redirect rule sends the attacker's connections to tenant 1's service
//    to the honeypot instead: the attacker's HTTP session completes under
//    tenant 1's address (the honeypot answers for it), the honeypot serves
//    it, and tenant 1's service never sees a request;
//  - a source flagged as a scanner (portscan.action redirect) is sent to the
//    honeypot while it keeps sending, and back to the real service once it
//    has been quiet for blockFor.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { examplePolicyYaml, findNode, httpFromNetns, runInNetns, tenantNodes, type EndpointNode, type Topology } from '../lab/index.js';
import { startLabAgent, waitForEvents, type AgentProcess, type LabAgent } from './helpers/agent.js';

const prefix = `tgh${Math.random().toString(36).slice(2, 5)}`;

describe('honeypot redirect in the lab', { concurrency: false }, () => {
  let lab: LabAgent;
  let agent: AgentProcess;
  let topo: Topology;
  let t1: EndpointNode;
  let internet: EndpointNode;
  let attacker: EndpointNode;
  let honeypot: EndpointNode;
  const health = async (from: EndpointNode) => JSON.parse((await httpFromNetns(from.netns, `http://${t1!.ipv4}:${topo.servicePort}/health`, { keepBody: true, timeoutMs: 5000 })).body) as { name: string };
  const served = async () => (JSON.parse((await httpFromNetns(topo.nodes.find((n) => n.role === 'internet')!.netns!, `http://${t1!.ipv4}:${topo.servicePort}/stats`, { keepBody: true })).body) as { requests: number }).requests;

  before(async () => {
    lab = await startLabAgent({
      prefix, tenants: 1,
      policy: (topo) => {
        const a = findNode(topo, 'attacker');
        const hp = findNode(topo, 'honeypot');
        return `${examplePolicyYaml(topo)}security:
  interfaces: [{ name: ${a.hostIface}, mode: tc }]
  rules:
    - { name: trap, action: redirect, src: [${a.ipv4}/32], protocols: [tcp], ports: [${topo.servicePort}], redirectTo: ${hp.hostIface}, redirectVia: ${hp.ipv4} }
  portscan: { threshold: 30, window: 5s, action: redirect, blockFor: 3s, redirectTo: ${hp.hostIface}, redirectVia: ${hp.ipv4} }
`;
      },
    });
    ({ agent, topo } = lab);
    [t1] = tenantNodes(topo);
    internet = findNode(topo, 'internet');
    attacker = findNode(topo, 'attacker');
    honeypot = findNode(topo, 'honeypot');
  });
  after(async () => {
    await lab?.close();
  });

  test('a redirect rule: the attacker\'s session completes with the honeypot under tenant 1\'s address; tenant 1 never sees it', async () => {
    assert.equal((await health(internet)).name, t1!.name, 'others reach the real service');
    const before = await served();
    for (let i = 0; i < 5; i++) assert.equal((await health(attacker)).name, honeypot.name, 'the honeypot answered the attacker, as tenant 1\'s address');
    assert.equal((await served()) - before, 1, 'the real service saw only our own /stats request');
    const rules = await agent.call<{ rules: Array<{ name: string; packets: number }>; stats: Record<string, number> }>('GET', '/v1/security/rules');
    const trap = rules.rules.find((r) => r.name === 'trap')!.packets;
    assert.ok(trap >= 5 * 3, `the rule decided every packet of the sessions (${trap})`);
    assert.ok(rules.stats.redirected >= trap, `redirected ${rules.stats.redirected}`);
    const e = await waitForEvents(agent, 'firewall.redirect', 1, 2000);
    assert.ok(e.length >= 1, 'firewall.redirect events');
    assert.equal(e[0]!.rule, 'trap');
    assert.equal(e[0]!.flow?.dst, t1!.ipv4);
  });

  test('a scanner flagged for redirect goes to the honeypot while it keeps sending, then back to the real service', async () => {
    await runInNetns(internet.netns, 'hping3', ['-S', '-p', '++2000', '-c', '60', '-i', 'u2000', t1!.ipv4], { timeoutMs: 30_000, allowFail: true });
    const [scan] = await waitForEvents(agent, 'portscan.detected', 1, 4000);
    assert.ok(scan, 'portscan.detected');
    assert.equal(scan.detail.source, internet.ipv4);
    assert.equal(scan.action, 'redirect');
    for (let i = 0; i < 3; i++) {
      assert.equal((await health(internet)).name, honeypot.name, 'the scanner now reaches the honeypot');
      await new Promise((r) => setTimeout(r, 1000)); // less than blockFor: the redirect lives on
    }
    await new Promise((r) => setTimeout(r, 3500)); // quiet for blockFor
    assert.equal((await health(internet)).name, t1!.name, 'back to the real service');
  });
});
