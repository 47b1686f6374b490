// SYN-flood mitigation end to end (issue 5's acceptance): the real agent in
// the lab, `hping3 --flood --rand-source -S` against tenant 1's HTTP service
// from the attacker while a client on the internet node makes 1,000 HTTP
// requests, each on a new connection. At least 99% succeed; mitigation
// engages within a second of the attack's start and ends after it stops;
// synflood.start and synflood.end events record both.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { examplePolicyYaml, findNode, httpRequests, spawnInNetns, tenantNodes, waitExit, type EndpointNode, type Topology } from '../lab/index.js';
import { securityEvents, startLabAgent, waitForEvents, type AgentProcess, type LabAgent } from './helpers/agent.js';

const prefix = `tgs${Math.random().toString(36).slice(2, 5)}`;
const THRESHOLD = 2000;
const HOLD_S = 2;

describe('SYN flood in the lab', { concurrency: false }, () => {
  let lab: LabAgent;
  let agent: AgentProcess;
  let topo: Topology;
  let t1: EndpointNode;
  let internet: EndpointNode;
  let attacker: EndpointNode;
  const events = (type: string) => securityEvents(agent, type);

  before(async () => {
    lab = await startLabAgent({
      prefix, tenants: 1,
      policy: (topo) => `${examplePolicyYaml(topo)}security:
  interfaces: [{ name: ${findNode(topo, 'attacker').hostIface}, mode: tc }]
  synflood: { thresholdPps: ${THRESHOLD}, action: syncookie, holdFor: ${HOLD_S}s }
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

  test('hping3 --flood --rand-source -S: 1,000 requests still succeed; mitigation engages within 1 s and ends after the attack', async (t) => {
    const quiet = await httpRequests(internet, t1!, 20, { port: topo.servicePort });
    assert.equal(quiet.ok, 20, 'the service answers before the attack');
    assert.equal((await events('synflood.start')).length, 0, 'ordinary traffic does not engage mitigation');

    // Bounded: hping3 stops by itself after 60 s at the latest; we stop it when the client is done.
    const started = Date.now();
    const flood = spawnInNetns(attacker.netns, 'timeout', ['-s', 'INT', '60', 'hping3', '--flood', '--rand-source', '-S', '-p', String(topo.servicePort), t1!.ipv4], { stdio: 'ignore' });
    let stopped = 0;
    let client;
    try {
      await new Promise((r) => setTimeout(r, 1500));
      client = await httpRequests(internet, t1!, 1000, { port: topo.servicePort, timeoutMs: 5000 });
    } finally {
      stopped = Date.now();
      flood.kill('SIGINT');
      await waitExit(flood, 10_000);
    }
    const duringAttack = await agent.call<{ synflood: { guarded: Array<{ address: string; counts: Record<string, number> }> } }>('GET', '/v1/security/rules');

    assert.ok(client.ok >= 990, `at least 99% of 1,000 requests succeed during the flood: ${client.ok} ok, errors ${JSON.stringify(client.errors)}`);
    const [start] = await events('synflood.start');
    assert.ok(start, 'synflood.start recorded');
    assert.equal(start.tenant, t1!.name);
    assert.equal(start.detail.destination, t1!.ipv4);
    const engagedAfter = Date.parse(start.at) - started;
    assert.ok(engagedAfter <= 1000, `engaged ${engagedAfter} ms after the attack started`);
    const g = duringAttack.synflood.guarded.find((x) => x.address === t1!.ipv4);
    assert.ok(g, 'the tenant\'s address is under mitigation while the attack lasts');
    assert.ok(g.counts.challenged > 10_000, `the flood's SYNs were answered with cookies, not by the server (${g.counts.challenged})`);
    assert.ok(g.counts.verified >= 1 && g.counts.passed >= 990, `the client was verified once and its SYNs passed (${g.counts.verified} verified, ${g.counts.passed} passed)`);

    // The end: the rate falls below the threshold, and holdFor later mitigation ends.
    const [end] = await waitForEvents(agent, 'synflood.end', 1, 15_000);
    assert.ok(end, 'synflood.end recorded');
    assert.ok(Date.parse(end.at) >= stopped, 'after the attack stopped');
    assert.ok(Date.parse(end.at) - stopped <= (HOLD_S + 2) * 1000, `within holdFor (+ a poll) of the attack's end: ${Date.parse(end.at) - stopped} ms`);
    assert.equal(end.detail.destination, t1!.ipv4);
    assert.ok((end.detail.challenged as number) > 10_000);
    t.diagnostic(`requests ${client.ok}/1000 ok (p50 ${client.ms.p50} ms, p99 ${client.ms.p99} ms); engaged ${engagedAfter} ms after the attack began, peak ${start.detail.rate} SYN/s; ` +
      `ended ${Date.parse(end.at) - stopped} ms after it stopped; challenged ${end.detail.challenged}, verified ${end.detail.verified}, passed ${end.detail.passed}`);
    const after = await agent.call<{ synflood: { guarded: unknown[] } }>('GET', '/v1/security/rules');
    assert.equal(after.synflood.guarded.length, 0);
    const again = await httpRequests(internet, t1!, 20, { port: topo.servicePort });
    assert.equal(again.ok, 20, 'the service answers after the attack');
  });
});
