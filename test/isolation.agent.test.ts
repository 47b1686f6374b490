// The agent with an isolation scope: containers found in the cgroup tree
// and shown with tenant and scope, their syscalls monitored and queried
// through the CLI, containers coming and going while it runs, and the
// observations kept across an agent restart.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cgroup2Root } from '../src/kernel/index.js';
import { cleanupAgentDir, runCli, startAgentProcess, type AgentProcess } from './helpers/agent.js';
import { removeCgroup } from '../lab/index.js';
import { kernelReady, tag } from './kernel/helpers.js';

type Row = { id: string; tenant: string | null; monitored: boolean; cgroup: string; isolation: { index: number } | null };

/** `node -e code` inside a cgroup. */
function runIn(cgroup: string, code: string): void {
  const r = spawnSync('sh', ['-c', `echo $$ > ${join(cgroup, 'cgroup.procs')} && exec ${JSON.stringify(process.execPath)} -e ${JSON.stringify(code)}`], { timeout: 20_000, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

/**
 * A tenant "acme" selecting the cgroups under `<prefix>-<tag>` and docker-style
 * container cgroups there for `ids`, an agent on `isolation` (YAML, the
 * cgroup root's name substituted for NAME); all removed at the end.
 */
async function isolationAgent(t: TestContext, prefix: string, ids: string[], isolation: string) {
  const name = `${prefix}-${tag()}`;
  const root = join(cgroup2Root(), name);
  const cgroups = ids.map((id) => join(root, 'docker', id));
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const self = {
    name, cgroups, dir, agent: undefined as AgentProcess | undefined,
    start: async () => (self.agent = await startAgentProcess({ config: policy, pinRoot: `/sys/fs/bpf/${name}`, dir: join(dir, 'agent') })),
    cli: async (...args: string[]) => runCli(['--socket', self.agent!.socket, ...args]),
  };
  t.after(async () => {
    await self.agent?.stop();
    if (self.agent) cleanupAgentDir(self.agent);
    rmSync(dir, { recursive: true, force: true });
    const docker = join(root, 'docker');
    const made = existsSync(docker) ? readdirSync(docker, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(docker, e.name)) : []; // also containers a test made later
    for (const d of [...made, docker, root]) removeCgroup(d);
  });
  for (const c of cgroups) mkdirSync(c, { recursive: true });
  mkdirSync(join(dir, 'agent'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(policy, `version: 1\ntenants:\n  - name: acme\n    selectors: { cgroups: ["/${name}/**"] }\nisolation:\n${isolation.replaceAll('NAME', name)}`);
  await self.start();
  return self;
}

test('containers are listed with tenant and scope, their syscalls counted and queried, across an agent restart', { timeout: 120_000 }, async (t) => {
  if (!kernelReady(t)) return;
  const idA = 'ab'.repeat(32);
  const idB = 'cd'.repeat(32);
  const iso = await isolationAgent(t, 'tgis', [idA], '  - tenant: acme\n');
  const { name, dir, cli } = iso;
  const [cgA] = iso.cgroups as [string];
  const cgB = join(cgroup2Root(), name, 'docker', idB);
  const containers = async (): Promise<Row[]> => {
    const r = await cli('containers', '--json');
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { containers: Row[] }).containers.filter((c) => c.cgroup.startsWith(`/${name}/`));
  };
  const until = async (what: string, ok: (rows: Row[]) => boolean): Promise<void> => {
    for (let i = 0; i < 100; i++) {
      if (ok(await containers())) return;
      await sleep(100);
    }
    assert.fail(`${what}: ${JSON.stringify(await containers())}`);
  };

  const [a] = await containers();
  assert.deepEqual({ ...a, isolation: a?.isolation?.index }, { ...a, id: idA, tenant: 'acme', monitored: true, cgroup: `/${name}/docker/${idA}`, isolation: 0 });
  const table = await cli('containers');
  assert.match(table.stdout, new RegExp(`${idA.slice(0, 12)}\\s+docker\\s+acme\\s+yes\\s+/${name}/docker/${idA}\\s+scope 0`));

  runIn(cgA, 'for (let i = 0; i < 1000; i++) process.ppid');
  const syscalls = async () => {
    const r = await cli('syscalls', '--container', idA.slice(0, 8), '--json');
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { container: { id: string; tenant: string }; syscalls: Array<{ name: string; count: number }> };
  };
  const s = await syscalls();
  assert.equal(s.container.id, idA);
  assert.equal(s.container.tenant, 'acme');
  assert.equal(s.syscalls.find((x) => x.name === 'getppid')?.count, 1000);
  const text = await cli('syscalls', '--container', idA);
  assert.match(text.stdout, /getppid\s+110\s+1000\s/);

  // the seccomp profile learned from it: to stdout, or to a file
  const gen = await cli('seccomp', 'generate', '--container', idA.slice(0, 8));
  assert.equal(gen.code, 0, gen.stderr);
  const profile = JSON.parse(gen.stdout) as { defaultAction: string; architectures: string[]; syscalls: Array<{ names: string[]; action: string }> };
  assert.equal(profile.defaultAction, 'SCMP_ACT_ERRNO');
  assert.deepEqual(profile.architectures, ['SCMP_ARCH_X86_64']);
  assert.ok(profile.syscalls[0]!.names.includes('getppid') && profile.syscalls[0]!.names.includes('execve'));
  assert.ok(!profile.syscalls[0]!.names.includes('ptrace'), 'nothing the container did not do');
  assert.match(gen.stderr, new RegExp(`${idA.slice(0, 12)}: \\d+ syscalls allowed`));
  const file = join(dir, 'profile.json');
  assert.equal((await cli('seccomp', 'generate', '--container', idA, '-o', file)).code, 0);
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), profile);
  const future = await cli('seccomp', 'generate', '--container', idA, '--since', new Date(Date.now() + 3_600_000).toISOString());
  assert.deepEqual((JSON.parse(future.stdout) as { syscalls: unknown[] }).syscalls, [], 'nothing seen since a later time');

  // bad flags: the CLI names them
  for (const [args, want] of [
    [['--container', 'zz'], /--container: must be a container id or a prefix of one/],
    [['--container', 'ffff'], /--container: no monitored container "ffff"/],
    [['--container', idA, '--since', 'yesterday'], /--since: "yesterday" is neither an ISO 8601 time nor an age/],
  ] as const) {
    const r = await cli('syscalls', ...args);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, want);
  }

  // a container appears, then goes: noticed while the agent runs
  mkdirSync(cgB);
  await until('container B monitored', (rows) => rows.some((r) => r.id === idB && r.monitored));
  rmdirSync(cgB);
  await until('container B gone', (rows) => !rows.some((r) => r.id === idB));

  // a restarted agent keeps what was seen, and goes on counting
  await iso.agent!.stop();
  runIn(cgA, 'for (let i = 0; i < 500; i++) process.ppid'); // no agent: counted in the kernel
  await iso.start();
  assert.equal((await syscalls()).syscalls.find((x) => x.name === 'getppid')?.count, 1500);

  // a reload that changes nothing leaves monitoring attached (metering re-installs its interface links)
  assert.equal((await cli('reload')).code, 0);
  runIn(cgA, 'for (let i = 0; i < 100; i++) process.ppid');
  assert.equal((await syscalls()).syscalls.find((x) => x.name === 'getppid')?.count, 1600);
});

type EventRow = { type: string; tenant: string | null; rule: string | null; action: string | null; flow?: { dst: string; dport: number | null } | null; detail: Record<string, unknown> };

test('denied syscalls and sensitive paths kill in enforce mode and are reported in audit mode; execs are reported, shells raise alerts', { timeout: 120_000 }, async (t) => {
  if (!kernelReady(t)) return;
  const idE = 'e1'.repeat(32);
  const idA = 'a2'.repeat(32);
  const { cli, cgroups: [cgE, cgA] } = await isolationAgent(t, 'tgie', [idE, idA], `  - tenant: acme
    containers: "/NAME/docker/e1*"
    syscalls: { mode: enforce, deny: [getpriority, ptrace] }
    execs: { log: true, alert: [] }
    sensitivePaths: { mode: enforce, paths: [/etc/shadow] }
  - tenant: acme
    syscalls: { mode: audit, deny: [getpriority] }
    sensitivePaths: [/etc/host]
`);
  const events = async (type: string): Promise<EventRow[]> => {
    const r = await cli('events', '--type', type, '--json');
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as EventRow);
  };
  const eventually = async (type: string, n: number): Promise<EventRow[]> => {
    for (let i = 0; i < 100; i++) {
      const got = await events(type);
      if (got.length >= n) return got;
      await sleep(100);
    }
    return assert.fail(`${n} ${type} events: ${JSON.stringify(await events(type))}`);
  };

  const PY = "import os; print('before', flush=True); os.getpriority(os.PRIO_PROCESS, 0); print('after')";
  const python = (cgroup: string) => spawnSync('sh', ['-c', `echo $$ > ${join(cgroup, 'cgroup.procs')} && exec /usr/bin/python3 -c "${PY}"`], { timeout: 20_000, encoding: 'utf8' });
  const enforced = python(cgE);
  assert.equal(enforced.signal, 'SIGKILL', `killed: ${JSON.stringify(enforced)}`);
  assert.equal(enforced.stdout, 'before\n', 'killed before the syscall returned');
  const audited = python(cgA);
  assert.equal(audited.status, 0, audited.stderr);
  assert.equal(audited.stdout, 'before\nafter\n');

  const denied = await eventually('syscall.denied', 2);
  const byContainer = new Map(denied.map((e) => [e.detail.container, e]));
  for (const [id, pid, action, rule] of [[idE, enforced.pid, 'kill', 'isolation[0].syscalls'], [idA, audited.pid, 'audit', 'isolation[1].syscalls']] as const) {
    const e = byContainer.get(id);
    assert.ok(e, `an event for ${id}`);
    assert.equal(e.tenant, 'acme');
    assert.equal(e.action, action);
    assert.equal(e.rule, rule);
    assert.equal(e.detail.syscall, 'getpriority');
    assert.equal(e.detail.pid, pid);
    assert.equal(e.detail.command, 'python3');
  }

  // sensitive paths: opening /etc/shadow kills in E; opening /etc/hosts (under /etc/host) is reported in A
  const open = (cgroup: string, path: string) => spawnSync('sh', ['-c', `echo $$ > ${join(cgroup, 'cgroup.procs')} && exec /usr/bin/python3 -c "print('before', flush=True); open('${path}').close(); print('after')"`], { timeout: 20_000, encoding: 'utf8' });
  const shadow = open(cgE, '/etc/shadow');
  assert.equal(shadow.signal, 'SIGKILL', JSON.stringify(shadow));
  assert.equal(shadow.stdout, 'before\n');
  const hosts = open(cgA, '/etc/hosts');
  assert.equal(hosts.status, 0, hosts.stderr);
  assert.equal(hosts.stdout, 'before\nafter\n');
  const files = await eventually('file.sensitive', 2);
  const fileOf = (pid: number | undefined) => files.find((e) => e.detail.pid === pid);
  assert.deepEqual([fileOf(shadow.pid)?.action, fileOf(shadow.pid)?.detail.path, fileOf(shadow.pid)?.detail.syscall, fileOf(shadow.pid)?.rule],
    ['kill', '/etc/shadow', 'openat', 'isolation[0].sensitivePaths']);
  assert.deepEqual([fileOf(hosts.pid)?.action, fileOf(hosts.pid)?.detail.path, fileOf(hosts.pid)?.detail.container], ['audit', '/etc/hosts', idA]);

  // the containers of one workload: their profiles merge into one
  runIn(cgE, 'for (let i = 0; i < 10; i++) process.ppid'); // node in E makes syscalls python in A did not (getppid)
  const names = async (...ids: string[]) => {
    const r = await cli('seccomp', 'generate', ...ids.flatMap((id) => ['--container', id]));
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { syscalls: Array<{ names: string[] }> }).syscalls[0]!.names;
  };
  const [onlyE, onlyA, both] = [await names(idE), await names(idA), await names(idE, idA)];
  assert.deepEqual(both, [...new Set([...onlyE, ...onlyA])].sort());
  assert.ok(!onlyA.includes('getppid') && both.includes('getppid'), 'what only E did is in the merged profile');

  // execs: every one in E (execs.log), shells in A (the default alert list)
  const exec = (await eventually('exec', 1)).find((e) => e.detail.container === idE && e.detail.pid === enforced.pid);
  assert.ok(exec, 'the exec of python3 in E');
  assert.equal(exec.detail.filename, '/usr/bin/python3');
  assert.deepEqual(exec.detail.argv, ['/usr/bin/python3', '-c', PY]);
  assert.equal(exec.action, 'log');
  assert.equal((await events('exec')).filter((e) => e.detail.container === idA).length, 0, 'A logs no plain execs');
  const shell = spawnSync('sh', ['-c', `echo $$ > ${join(cgA, 'cgroup.procs')} && exec /bin/sh -c 'exit 0'`], { timeout: 20_000 });
  assert.equal(shell.status, 0);
  const [alert] = (await eventually('exec.alert', 1)).filter((e) => e.detail.pid === shell.pid);
  assert.ok(alert, 'a shell started in A raises an alert');
  assert.equal(alert.detail.container, idA);
  assert.equal(alert.detail.matched, 'sh');
  assert.equal(alert.action, 'alert');
  assert.equal(alert.rule, 'isolation[1].execs');
});

test('connection limits and destination rules from the policy: connect() refused with EPERM, counts shown per container, events', { timeout: 120_000 }, async (t) => {
  if (!kernelReady(t)) return;
  const id = 'c3'.repeat(32);
  const server = createServer((s) => s.on('error', () => undefined)).listen(0, '127.0.0.1');
  t.after(() => server.close());
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const { cli, cgroups: [cg] } = await isolationAgent(t, 'tgin', [id], `  - tenant: acme
    maxConnections: 2
    destinations:
      default: allow
      rules:
        - { action: deny, cidrs: [198.18.0.0/15], protocols: [tcp], ports: [80] }
`);
  // Three connections held open at once, then one to a denied destination; errno names printed.
  const PY = `
import errno, socket, time
def attempt(addr):
    s = socket.socket()
    try:
        s.connect(addr)
        return s, 'ok'
    except OSError as e:
        return None, errno.errorcode[e.errno]
held = []
for i in range(3):
    s, r = attempt(('127.0.0.1', ${port}))
    print('local', r, flush=True)
    if s: held.append(s)
print('denied', attempt(('198.18.99.1', 80))[1], flush=True)
time.sleep(2)
`;
  const child = spawn('sh', ['-c', `echo $$ > ${join(cg!, 'cgroup.procs')} && exec /usr/bin/python3 -c "$1"`, 'sh', PY], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  for (let i = 0; i < 100 && !out.includes('denied'); i++) await sleep(50);
  assert.equal(out, 'local ok\nlocal ok\nlocal EPERM\ndenied EPERM\n');

  // while the two are held: the container's group shows them against its limit
  const r = await cli('containers', '--json');
  const row = (JSON.parse(r.stdout) as { containers: Array<{ id: string; connections: unknown }> }).containers.find((c) => c.id === id);
  assert.deepEqual(row?.connections, { group: 'tenant:acme', open: 2, limit: 2 });
  await once(child, 'exit');

  const events = async (type: string): Promise<EventRow[]> => {
    for (let i = 0; i < 100; i++) {
      const got = (await cli('events', '--type', type, '--json')).stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as EventRow);
      if (got.length) return got;
      await sleep(100);
    }
    return assert.fail(`no ${type} event`);
  };
  const [limit] = await events('connections.limit');
  assert.deepEqual([limit!.tenant, limit!.rule, limit!.detail.container, limit!.detail.limit], ['acme', 'isolation[0].maxConnections', id, 2]);
  const [denied] = await events('connect.denied');
  assert.deepEqual([denied!.rule, denied!.detail.container, denied!.detail.command, denied!.flow?.dst, denied!.flow?.dport],
    ['isolation[0].destinations.rules[0]', id, 'python3', '198.18.99.1', 80]);
});

test('a bandwidth limit from the policy holds a container\'s TCP transfer near its rate, and its counters show in tollgate containers', { timeout: 120_000 }, async (t) => {
  if (!kernelReady(t)) return;
  const id = 'b4'.repeat(32);
  const { cli, cgroups: [cg] } = await isolationAgent(t, 'tgib', [id], `  - tenant: acme
    containers: "/NAME/docker/*"
    bandwidth: { egress: { rate: 20mbit, burst: 64KiB } }
`);
  const port = 20_000 + (process.pid % 20_000);
  const server = spawn('iperf3', ['-s', '-1', '-B', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  t.after(() => server.kill('SIGKILL'));
  await sleep(300);
  const client = spawnSync('sh', ['-c', `echo $$ > ${join(cg!, 'cgroup.procs')} && exec iperf3 -c 127.0.0.1 -p ${port} -t 3 -J`], { timeout: 30_000, encoding: 'utf8' });
  assert.equal(client.status, 0, client.stderr);
  const bps = (JSON.parse(client.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
  // Loopback without a limit moves gigabits: held to about 20 Mbit/s (payload; the limit counts IP bytes).
  assert.ok(bps > 10e6 && bps < 24e6, `received ${(bps / 1e6).toFixed(1)} Mbit/s under a 20 Mbit/s limit`);

  const r = await cli('containers', '--json');
  const row = (JSON.parse(r.stdout) as { containers: Array<{ id: string; bandwidth: { group: string; egress: Record<string, number> } | null }> }).containers.find((c) => c.id === id);
  assert.equal(row?.bandwidth?.group, `container:${id}`);
  const egress = row!.bandwidth!.egress;
  assert.ok(Number(egress.passed_bytes) > (3 * 20e6) / 8 / 2, `egress counters ${JSON.stringify(egress)}`);
  assert.ok(Number(egress.pacing_updates) > 0, 'the transfer was paced');
  const table = await cli('containers');
  assert.match(table.stdout, /egress 20mbit burst 65\.5 kB/);
});
