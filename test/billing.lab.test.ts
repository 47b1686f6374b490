// Acceptance, end to end: known traffic in the lab -> the kernel's counters
// -> the ledger -> an invoice with the expected amounts for a fixed plan,
// through the real agent and the CLI (JSON, CSV, HTML).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { examplePolicyYaml, findNode, tenantNodes, udpBurst, type EndpointNode } from '../lab/index.js';
import { fetchAgentText } from '../src/api/client.js';
import { runCli, startLabAgent, type AgentProcess, type LabAgent } from './helpers/agent.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/webhooks.js';

const prefix = `tgb${Math.random().toString(36).slice(2, 5)}`;
// 100,000 EUR per GB: some tens of kB of lab traffic becomes euros, so an
// off-by-one byte would show in the cents. No free allowance, no hourly charge.
const PLAN = `plans:
  - name: lab
    currency: EUR
    rates:
      - { class: internet, direction: egress, pricePerGB: "100000" }
      - { class: internet, direction: ingress, pricePerGB: "25000" }
    flatFees:
      - { name: base fee, amount: "10" }
`;
/** A 100 kB budget on billable ingress; alerts POSTed to the test's own receiver (WEBHOOK is replaced). */
const QUOTAS = `quotas:
  - { tenant: TENANT, class: internet, direction: ingress, budget: 100kB, thresholds: [50, 100] }
alerts:
  webhooks: [WEBHOOK]
`;

type Doc = {
  status: string; currency: string; total: string;
  lines: Array<{ kind: string; class: string | null; description: string; quantity: string; unitPrice: string; amount: string }>;
  subtotals: Array<{ class: string | null; amount: string }>;
};

/** GB text back to bytes. */
const bytesOf = (gb: string): bigint => {
  const [int, frac = ''] = gb.split('.');
  return BigInt(int!) * 1_000_000_000n + BigInt(frac.padEnd(9, '0'));
};
/** bytes x price per GB in cents, half away from zero (the documented rule). */
const cents = (bytes: bigint, pricePerGB: bigint): bigint => (bytes * pricePerGB * 100n * 2n + 1_000_000_000n) / 2_000_000_000n;
const euro = (c: bigint): string => `${c / 100n}.${String(c % 100n).padStart(2, '0')}`;

describe('billing in the lab: traffic -> ledger -> invoice', { concurrency: false }, () => {
  let lab: LabAgent;
  let agent: AgentProcess;
  let tenant: EndpointNode;
  let internet: EndpointNode;
  let hooks: WebhookReceiver<{ threshold: number; used: string; budget: string; tenant: string }>;
  const cli = async (...args: string[]) => {
    const r = await runCli(['--socket', agent.socket, ...args]);
    assert.equal(r.code, 0, `tollgate ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const invoice = async (): Promise<Doc> => {
    await agent.call('POST', '/v1/flush');
    return JSON.parse(await cli('invoice', '--tenant', tenant.name, '--json')) as Doc;
  };
  const volume = (d: Doc, dir: string): bigint => bytesOf(d.lines.find((l) => l.kind === 'volume' && l.description.startsWith(`internet ${dir}`))!.quantity);

  before(async () => {
    hooks = await startWebhookReceiver();
    lab = await startLabAgent({
      prefix, tenants: 1,
      policy: (topo) => examplePolicyYaml(topo).replace(/plans:\n(?: {2}.*\n)+/, PLAN) + QUOTAS.replace('TENANT', tenantNodes(topo)[0]!.name).replace('WEBHOOK', hooks.url),
    });
    agent = lab.agent;
    [tenant] = tenantNodes(lab.topo);
    internet = findNode(lab.topo, 'internet');
  });

  after(async () => {
    await lab?.close();
    await hooks?.close();
  });

  test('billable bytes are exactly the traffic, priced per line; free management traffic is not on the invoice', async () => {
    const before = await invoice();
    const up = await udpBurst(tenant, internet, 41000, [0, 100, 1000, 1400], 50);
    const down = await udpBurst(internet, tenant, 41001, [200, 1200], 40, { family: 6 });
    const dns = await udpBurst(tenant, internet, 53, [500], 30); // management: free
    assert.ok(dns.packets > 0);
    const d = await invoice();
    assert.equal(d.status, 'open');
    assert.equal(volume(d, 'egress') - volume(before, 'egress'), BigInt(up.ipBytes), 'egress GB on the invoice = the IP bytes sent');
    assert.equal(volume(d, 'ingress') - volume(before, 'ingress'), BigInt(down.ipBytes), 'ingress GB = the IP bytes received');
    const eg = cents(volume(d, 'egress'), 100000n);
    const ing = cents(volume(d, 'ingress'), 25000n);
    assert.deepEqual(d.lines.map((l) => [l.kind, l.unitPrice, l.amount]), [
      ['volume', '100000', euro(eg)],
      ['volume', '25000', euro(ing)],
      ['flat', '10', '10.00'],
    ]);
    assert.deepEqual(d.subtotals, [{ class: 'internet', amount: euro(eg + ing) }, { class: null, amount: '10.00' }]);
    assert.equal(d.total, euro(eg + ing + 1000n));
    assert.ok(eg + ing > 100n, `the traffic is worth more than a euro (${euro(eg + ing)})`);

    const csv = await cli('invoice', '--tenant', tenant.name, '--csv');
    assert.match(csv, new RegExp(`,total,,total,,,,${d.total.replace('.', '\\.')}\\r\\n$`));
    const html = await cli('invoice', '--tenant', tenant.name, '--html');
    assert.match(html, new RegExp(`${d.total.replace('.', '\\.')} EUR`));
    const table = await cli('invoice', '--tenant', tenant.name);
    assert.match(table, new RegExp(`total: ${d.total.replace('.', '\\.')} EUR`));
  });

  test('a quota threshold crossed raises one alert, POSTed to the webhook with its idempotency key', async () => {
    // ~113 kB more ingress: both thresholds are crossed (one alert each, in order).
    await udpBurst(internet, tenant, 41002, [1000], 110);
    await agent.call('POST', '/v1/flush');
    const deadline = Date.now() + 15_000;
    while (hooks.posts.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const period = new Date().toISOString().slice(0, 7);
    assert.deepEqual(hooks.posts.map((p) => [p.key, p.body.threshold, p.body.tenant, p.body.budget]), [50, 100].map((th) => [
      `quota:${tenant.name}:internet:ingress:${period}:${th}`, th, tenant.name, '100000',
    ]));
    assert.ok(BigInt(hooks.posts[1]!.body.used) >= 100_000n);
    const metrics = await fetchAgentText(agent.socket, '/metrics');
    assert.match(metrics, new RegExp(`tollgate_quota_used_bytes\\{tenant="${tenant.name}",class="internet",direction="ingress",period="${period}"\\} \\d+`));
    assert.match(metrics, /tollgate_alerts_raised_total\{type="quota.threshold"\} 2/);
  });

  test('bad input names the flag and changes nothing', async () => {
    const r = await runCli(['--socket', agent.socket, 'invoice', '--tenant', tenant.name, '--period', '2026-13']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--period: .*2026-13/);
    const u = await runCli(['--socket', agent.socket, 'invoice', '--tenant', 'nobody']);
    assert.notEqual(u.code, 0);
    assert.match(u.stderr, /--tenant: .*nobody/);
  });
});
