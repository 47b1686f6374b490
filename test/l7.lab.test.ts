// L7 signatures end to end: the real agent in the lab scans HTTP requests to
// tenant 1's service; a request carrying SQL injection is refused (the
// connection reset, the service never sees it) and recorded as an l7.match
// event; a path-traversal request is only logged; benign requests pass.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { examplePolicyYaml, findNode, httpRequests, tenantNodes, type EndpointNode, type Topology } from '../lab/index.js';
import { startLabAgent, waitForEvents, type AgentProcess, type LabAgent } from './helpers/agent.js';

const prefix = `tgl${Math.random().toString(36).slice(2, 5)}`;

describe('L7 signatures in the lab', { concurrency: false }, () => {
  let lab: LabAgent;
  let agent: AgentProcess;
  let topo: Topology;
  let t1: EndpointNode;
  let internet: EndpointNode;

  before(async () => {
    lab = await startLabAgent({
      prefix, tenants: 1,
      policy: (topo) => `${examplePolicyYaml(topo)}security:
  l7:
    signatures:
      - { name: sqli, set: sql-injection, ports: [${topo.servicePort}], action: deny }
      - { name: traversal, set: path-traversal, ports: [${topo.servicePort}], action: log }
`,
    });
    ({ agent, topo } = lab);
    [t1] = tenantNodes(topo);
    internet = findNode(topo, 'internet');
  });
  after(async () => {
    await lab?.close();
  });

  test('SQL injection is refused with a reset and recorded; traversal is logged; benign requests pass', async () => {
    const benign = await httpRequests(internet, t1!, 50, { port: topo.servicePort, path: '/health?q=selection+of+unions&sort=desc' });
    assert.equal(benign.ok, 50, JSON.stringify(benign.errors));
    const attack = await httpRequests(internet, t1!, 5, { port: topo.servicePort, path: '/health?id=1+union+select+password+from+users', timeoutMs: 3000 });
    assert.equal(attack.ok, 0, 'every injection attempt fails');
    assert.deepEqual(Object.keys(attack.errors), ['read ECONNRESET'], `refused by a reset, not a timeout: ${JSON.stringify(attack.errors)}`);
    const logged = await httpRequests(internet, t1!, 3, { port: topo.servicePort, path: '/health?file=../../etc/hosts' });
    assert.equal(logged.ok, 3, 'log signatures let the request through');
    const events = await waitForEvents(agent, 'l7.match', 8, 2000);
    assert.deepEqual(events.map((e) => `${e.rule}/${e.action}`).sort(), [...new Array(5).fill('sqli/deny'), ...new Array(3).fill('traversal/log')].sort());
    const e = events.find((x) => x.rule === 'sqli')!;
    assert.equal(e.tenant, t1!.name);
    assert.equal(e.flow?.dst, t1!.ipv4);
    assert.equal(e.flow?.dport, topo.servicePort);
    const rules = await agent.call<{ stats: Record<string, number> }>('GET', '/v1/security/rules');
    assert.equal(rules.stats.l7_denied, 5);
  });
});
