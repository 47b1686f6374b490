// The firewall end to end: the real agent with a security section in the
// lab, real processes sending through the tenant and attacker interfaces.
//  - a narrower allow inside a wider deny, tenant-scoped, on metered veths;
//  - an interface that is only filtered (the attacker's), where a source is
//    dropped at ingress, counted exactly, also for a trafgen flood whose
//    packets reach tc non-linear;
//  - log lets through and counts, and each logged packet is an event in the
//    store (tollgate events), the audit file, the live stream (tollgate
//    events --follow) and /metrics; rule hits through the CLI, the API and
//    /metrics; a reload changes the rules without reloading programs, and a
//    policy without a security section switches the firewall off.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { examplePolicyYaml, findNode, httpBytes, ping, tenantNodes, trafgenBurst, udpBurst, type EndpointNode, type Topology } from '../lab/index.js';
import { AgentError, callAgent, fetchAgentText } from '../src/api/client.js';
import { cliEntry, runCli, startLabAgent, type AgentProcess, type LabAgent } from './helpers/agent.js';
import { packageRoot } from '../src/paths.js';
import type { SecurityEvent } from '../src/events/event.js';

const prefix = `tgf${Math.random().toString(36).slice(2, 5)}`;

interface Rules {
  enabled: boolean;
  generation: number;
  rules: Array<{ name: string; action: string; packets: number; bytes: number; limited?: { packets: number; bytes: number } }>;
  buckets: { used: number; capacity: number } | null;
  stats: Record<string, number>;
}

function security(topo: Topology, t1: EndpointNode, internet: EndpointNode, attacker: EndpointNode, blockAttacker = true): string {
  return `security:
  interfaces: [{ name: ${attacker.hostIface}, mode: tc }]
  defaultAction: allow
  rules:
    - { name: web-from-internet, action: allow, tenant: ${t1.name}, src: [${internet.ipv4}/32], protocols: [tcp], ports: [${topo.servicePort}] }
    - { name: no-web-to-t1, action: deny, tenant: ${t1.name}, protocols: [tcp], ports: [${topo.servicePort}] }
${blockAttacker ? `    - { name: block-attacker, action: deny, direction: both, src: [${attacker.ipv4}/32, "${attacker.ipv6}/128"] }\n` : ''}    - { name: log-9999, action: log, protocols: [udp], ports: [9999] }
    - { name: limit-7000, action: rate-limit, protocols: [udp], ports: [7000], rateLimit: { pps: 100, burst: 50, per: source } }
`;
}

describe('firewall in the lab', { concurrency: false }, () => {
  let lab: LabAgent;
  let agent: AgentProcess;
  let policy: string;
  let topo: Topology;
  let t1: EndpointNode;
  let t2: EndpointNode;
  let internet: EndpointNode;
  let attacker: EndpointNode;
  const rules = () => agent.call<Rules>('GET', '/v1/security/rules');
  const hits = async (name: string) => (await rules()).rules.find((r) => r.name === name)!.packets;

  before(async () => {
    lab = await startLabAgent({
      prefix, tenants: 2,
      policy: (topo) => examplePolicyYaml(topo) + security(topo, tenantNodes(topo)[0]!, findNode(topo, 'internet'), findNode(topo, 'attacker')),
    });
    ({ agent, topo, policy } = lab);
    [t1, t2] = tenantNodes(topo);
    internet = findNode(topo, 'internet');
    attacker = findNode(topo, 'attacker');
  });

  after(async () => {
    await lab?.close();
  });

  test('a narrower allow inside a wider deny: the internet reaches tenant 1\'s service, tenant 2 does not', async () => {
    const before = await hits('no-web-to-t1');
    const ok = await httpBytes(internet, t1, 1000);
    assert.equal(ok.status, 200);
    assert.equal(ok.bytes, 1000);
    await assert.rejects(httpBytes(t2, t1, 1000, { timeoutMs: 2000 }), 'tenant 2 is denied');
    assert.ok((await hits('no-web-to-t1')) > before, 'the deny rule counted the SYNs');
    assert.ok((await hits('web-from-internet')) > 0);
  });

  test('an interface that is only filtered drops a source at ingress, counted exactly', async () => {
    const before = await hits('block-attacker');
    // Without replies ping keeps sending until its deadline: r.packets is what it sent.
    const r = await ping(attacker, t1.ipv4, 5);
    assert.equal(r.replies.packets, 0, 'no echo reply');
    assert.equal((await hits('block-attacker')) - before, r.packets, 'each echo request was dropped once, where it entered');
    const six = await ping(attacker, t1.ipv6, 3);
    assert.equal(six.replies.packets, 0);
    assert.equal((await hits('block-attacker')) - before, r.packets + six.packets);
  });

  test('a trafgen flood (non-linear skbs) from the blocked source is dropped packet for packet', async () => {
    const before = await rules();
    const count = 20_000;
    await trafgenBurst(attacker, t1, count, 18, { receive: false, port: 7777 });
    const after = await rules();
    const hit = (r: Rules) => r.rules.find((x) => x.name === 'block-attacker')!.packets;
    assert.equal(hit(after) - hit(before), count);
    assert.ok(after.stats.dropped - before.stats.dropped >= count);
  });

  test('log lets the packets through, counts them, and each is an event in the store, the audit file, the live stream and /metrics', async () => {
    const before = await hits('log-9999');
    // Follow the stream from before the burst: the events must arrive live.
    const follow = spawn(process.execPath, ['--import', 'tsx', cliEntry, '--socket', agent.socket, 'events', '--follow', '--json', '--type', 'firewall.log'],
      { cwd: packageRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    const streamed: SecurityEvent[] = [];
    let partial = '';
    let stderr = '';
    follow.stderr.on('data', (d) => (stderr += d));
    const got20 = new Promise<void>((resolve) => follow.stdout.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop()!;
      for (const l of lines) if (l.trim()) streamed.push(JSON.parse(l) as SecurityEvent);
      if (streamed.length >= 20) resolve();
    }));
    const timeout = setTimeout(() => follow.kill('SIGKILL'), 60_000);
    try {
      await new Promise((r) => setTimeout(r, 1500)); // the CLI has subscribed
      const r = await udpBurst(internet, t1, 9999, [100], 20);
      assert.equal(r.received?.packets, 20);
      assert.equal((await hits('log-9999')) - before, 20);
      await Promise.race([got20, new Promise((_, rej) => follow.once('exit', () => rej(new Error(`events --follow exited: ${stderr}`))))]);
    } finally {
      clearTimeout(timeout);
      follow.kill('SIGINT');
    }
    assert.equal(streamed.length, 20, 'the live stream delivered each logged packet once');
    for (const e of streamed) {
      assert.equal(e.rule, 'log-9999');
      assert.equal(e.action, 'log');
      assert.equal(e.tenant, t1.name);
      assert.deepEqual({ ...e.flow, sport: 0 }, { protocol: 'udp', src: internet.ipv4, sport: 0, dst: t1.ipv4, dport: 9999 });
    }
    const cli = await runCli(['--socket', agent.socket, 'events', '--json', '--type', 'firewall.log', '--limit', '20']);
    assert.equal(cli.code, 0, cli.stderr);
    const stored = cli.stdout.trim().split('\n').map((l) => JSON.parse(l) as SecurityEvent);
    assert.deepEqual(stored, streamed, 'the store holds what was streamed');
    const audit = readFileSync(join(agent.dir, 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as SecurityEvent);
    assert.deepEqual(audit.filter((e) => e.type === 'firewall.log').slice(-20), streamed, 'and so does the audit file');
    const table = await runCli(['--socket', agent.socket, 'events', '--limit', '1']);
    assert.match(table.stdout, new RegExp(`firewall\\.log\\s+${t1.name}\\s+udp ${internet.ipv4.replace(/\./g, '\\.')}:\\d+ > ${t1.ipv4.replace(/\./g, '\\.')}:9999\\s+log-9999\\s+log`));
    const metrics = await fetchAgentText(agent.socket, '/metrics');
    assert.match(metrics, /^tollgate_security_events_total\{type="firewall.log"\} 20$/m);
    assert.match(metrics, /^tollgate_security_events_lost_total 0$/m);
  });

  test('a per-source rate limit passes its burst and rate, drops the rest, and counts both exactly', async () => {
    const before = await rules();
    const rule = (r: Rules) => r.rules.find((x) => x.name === 'limit-7000')!;
    const t0 = performance.now();
    const r = await udpBurst(internet, t1, 7000, [100], 500, { burst: 500, timeoutMs: 3000 });
    const seconds = (performance.now() - t0) / 1000;
    const got = r.received!.packets;
    const after = await rules();
    assert.equal(rule(after).packets - rule(before).packets, 500, 'the rule decided every datagram');
    assert.equal(rule(after).limited!.packets - rule(before).limited!.packets, 500 - got, 'what did not arrive was dropped by the limit, counted');
    assert.ok(got >= 50, `at least the burst arrived (${got})`);
    assert.ok(got <= 50 + Math.ceil(100 * seconds) + 1, `no more than burst + rate x time (${got} in ${seconds.toFixed(2)} s)`);
    assert.equal(after.stats.rate_limited - before.stats.rate_limited, 500 - got);
    assert.ok(after.buckets!.used >= 1);
    const metrics = await fetchAgentText(agent.socket, '/metrics');
    assert.match(metrics, /^tollgate_security_rate_limited_packets_total\{limit="limit-7000",kind="rule"\} \d+$/m);
    assert.match(metrics, /^tollgate_security_rate_limit_buckets \d+$/m);
    const events = await runCli(['--socket', agent.socket, 'events', '--json', '--type', 'firewall.rate_limited', '--limit', '1']);
    const e = JSON.parse(events.stdout) as SecurityEvent;
    assert.equal(e.rule, 'limit-7000');
    assert.equal(e.flow?.dport, 7000);
  });

  test('hits through the CLI and /metrics', async () => {
    const cli = await runCli(['--socket', agent.socket, 'rules', '--json']);
    assert.equal(cli.code, 0, cli.stderr);
    const j = JSON.parse(cli.stdout) as Rules;
    assert.deepEqual(j.rules.map((r) => r.name), ['web-from-internet', 'no-web-to-t1', 'block-attacker', 'log-9999', 'limit-7000', '(default)']);
    assert.ok(j.rules.find((r) => r.name === 'block-attacker')!.packets >= 20_000);
    const table = await runCli(['--socket', agent.socket, 'rules']);
    assert.match(table.stdout, /block-attacker\s+deny\s+\d+/);
    const metrics = await fetchAgentText(agent.socket, '/metrics');
    assert.match(metrics, /^tollgate_security_rule_packets_total\{rule="block-attacker",action="deny"\} \d+/m);
    assert.match(metrics, /^tollgate_security_packets_total\{what="dropped"\} \d+/m);
  });

  test('rules through the API replace the policy\'s at once, survive a reload, and go away with DELETE; a bad body changes nothing', async () => {
    const put = (body: unknown) => callAgent<{ generation: number; rules: number; ms: number }>(agent.socket, 'PUT', '/v1/security/rules', 30_000, body);
    await assert.rejects(put({ rules: [{ name: 'x', action: 'deny', src: ['198.18.0.0/33'] }] }),
      (err: unknown) => err instanceof AgentError && err.status === 400 && err.field === 'rules.0.src.0');
    await assert.rejects(put({ rules: [{ name: 'x', action: 'deny', tenant: 'nobody' }] }), (err: unknown) => err instanceof AgentError && err.status === 400 && /no tenant "nobody"/.test(err.message));
    assert.equal((await agent.call<{ rulesFrom: string }>('GET', '/v1/security/rules')).rulesFrom, 'policy', 'refused bodies changed nothing');
    const r = await put({ defaultAction: 'allow', rules: [{ name: 'api-block', action: 'deny', direction: 'both', src: [`${internet.ipv4}/32`] }] });
    assert.equal(r.rules, 1);
    assert.ok(r.ms < 1000, `applied in ${r.ms} ms`);
    const now = await rules();
    assert.deepEqual(now.rules.map((x) => x.name), ['api-block', '(default)']);
    await assert.rejects(httpBytes(internet, t1, 10, { timeoutMs: 2000 }), 'the API rule holds');
    await agent.call('POST', '/v1/reload');
    await assert.rejects(httpBytes(internet, t1, 10, { timeoutMs: 2000 }), 'and survives a reload');
    await callAgent(agent.socket, 'DELETE', '/v1/security/rules');
    assert.equal((await agent.call<{ rulesFrom: string }>('GET', '/v1/security/rules')).rulesFrom, 'policy');
    assert.equal((await httpBytes(internet, t1, 10)).status, 200, 'back to the policy\'s rules');
  });

  test('a reload changes the rules in place; without a security section the firewall is off', async () => {
    const gen = (await rules()).generation;
    writeFileSync(policy, examplePolicyYaml(topo) + security(topo, t1, internet, attacker, false));
    await agent.call('POST', '/v1/reload');
    const r = await rules();
    assert.notEqual(r.generation, gen, 'a generation switch');
    assert.ok(!r.rules.some((x) => x.name === 'block-attacker'));
    assert.ok((await ping(attacker, t1.ipv4, 3)).replies.packets > 0, 'the attacker gets through now');
    await assert.rejects(httpBytes(t2, t1, 10, { timeoutMs: 2000 }), 'the other rules still hold');

    writeFileSync(policy, examplePolicyYaml(topo));
    await agent.call('POST', '/v1/reload');
    assert.equal((await rules()).enabled, false);
    assert.equal((await httpBytes(t2, t1, 10)).status, 200, 'nothing is filtered');
  });
});
