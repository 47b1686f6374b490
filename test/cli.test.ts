// The `tollgate` command: bad input gets a clear error naming the field and
// changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { buildApi, listenUnix } from '../src/api/server.js';
import type { Exporter } from '../src/metering/exporter.js';
import { Ledger } from '../src/store/index.js';
import { runCli } from './helpers/agent.js';

const dir = mkdtempSync(join(tmpdir(), 'tg-cli-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const bad = `version: 1
tenants:
  - name: alpha
    selectors:
      cidrs: [198.18.1.1/24]
  - name: Beta_Tenant
    selectors: { interfaces: [eth0] }
`;

test('policy check names the field and line of every problem', async () => {
  const f = join(dir, 'bad.yaml');
  writeFileSync(f, bad);
  const r = await runCli(['policy', 'check', f]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /bad\.yaml:5:\d+: tenants\[0\]\.selectors\.cidrs\[0\]: .*198\.18\.1\.0\/24/);
  assert.match(r.stderr, /bad\.yaml:6:\d+: tenants\[1\]\.name/);
});

test('the agent refuses a bad policy before touching the kernel', async () => {
  const f = join(dir, 'bad.yaml');
  writeFileSync(f, bad);
  const pins = join('/sys/fs/bpf', `tgcli-${process.pid}`);
  const r = await runCli(['--socket', join(dir, 's.sock'), 'agent', '--config', f, '--pin-root', pins, '--db', join(dir, 'l.db')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /tenants\[0\]\.selectors\.cidrs\[0\]/);
  assert.equal(existsSync(pins), false, 'no pins were created');
  assert.equal(existsSync(join(dir, 'l.db')), false, 'no ledger was created');
});

test('flag errors name the flag', async () => {
  const good = join(dir, 'good.yaml');
  writeFileSync(good, 'version: 1\ntenants:\n  - name: a\n    selectors: { cidrs: [198.18.1.0/24] }\n');
  const r = await runCli(['--socket', join(dir, 's2.sock'), 'agent', '--config', good, '--interval', '500ms', '--db', join(dir, 'l2.db'), '--pin-root', `/sys/fs/bpf/tgcli2-${process.pid}`]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--interval/);
  const t = await runCli(['lab', 'up', '--tenants', '0']);
  assert.notEqual(t.code, 0);
  assert.match(t.stderr, /--tenants/);
  const p = await runCli(['lab', 'up', '--prefix', 'Way-Too-Long']);
  assert.notEqual(p.code, 0);
  assert.match(p.stderr, /prefix/);
});

test('commands that need the agent say how to start one', async () => {
  const r = await runCli(['--socket', join(dir, 'none.sock'), 'usage']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no agent is listening on .*none\.sock/);
});

/**
 * The agent's real API over a unix socket, on a ledger with known usage; no
 * kernel involved. A tenant name with a comma and quotes exercises CSV quoting
 * (the ledger accepts such names even though policy labels do not).
 */
async function usageApi(): Promise<{ socket: string; close(): Promise<void> }> {
  const name = `usage-${process.hrtime.bigint()}`;
  const ledger = Ledger.open(join(dir, `${name}.db`), { hostId: 'h1' });
  const ids = ledger.ensureTenants(['alpha', 'beta, "east"']);
  const mgmt = ledger.ensureClasses(['mgmt']).get('mgmt')!;
  const alpha = ids.get('alpha')!;
  const beta = ids.get('beta, "east"')!;
  ledger.recordInterval({
    epoch: { bootId: 'b1', counterId: '7', startedAt: new Date('2026-11-25T10:00:00Z') },
    at: new Date('2026-11-25T10:00:10Z'),
    readings: [
      { tenantId: alpha, classId: 0, direction: 'egress', billable: true, packets: 3n, bytes: 4_000_000_000_123n },
      { tenantId: alpha, classId: mgmt, direction: 'egress', billable: false, packets: 2n, bytes: 120n },
      { tenantId: beta, classId: 0, direction: 'ingress', billable: true, packets: 1n, bytes: 60n },
    ],
    containers: [
      { slot: 1, containerId: '3f2a9c', runtime: 'containerd', tenantId: alpha, direction: 'egress', packets: 5n, bytes: 4_000_000_000_243n },
      { slot: 2, containerId: 'web-1', runtime: 'docker', tenantId: beta, direction: 'ingress', packets: 1n, bytes: 60n },
    ],
  });
  const exporter = { exportNow: async () => assert.fail('not used') } as unknown as Exporter;
  const app = buildApi({ ledger, exporter, registry: new Registry(), status: () => ({}), reload: async () => ({}) });
  const socket = join(dir, `${name}.sock`);
  await listenUnix(app, socket);
  return {
    socket,
    async close() {
      await app.close();
      ledger.close();
    },
  };
}

test('usage prints a table per tenant and class by default', async (t) => {
  const api = await usageApi();
  t.after(() => api.close());
  const r = await runCli(['--socket', api.socket, 'usage']);
  assert.equal(r.code, 0, r.stderr);
  const [header, rule, ...rows] = r.stdout.trimEnd().split('\n');
  assert.match(header, /^TENANT\s+CLASS\s+BILLABLE\s+DIRECTION\s+PACKETS\s+BYTES\s+LAST$/);
  assert.match(rule, /^-+( +-+)+$/);
  assert.equal(rows.length, 3);
  assert.match(rows[0], /^alpha\s+internet\s+yes\s+egress\s+3\s+4000000000123\s+4\.0 TB\s+2026-11-25T10:00:10\.000Z$/);
  assert.match(rows[1], /^alpha\s+mgmt\s+no\s+egress\s+2\s+120\s+120 B\s+2026/);
  const byTenant = await runCli(['--socket', api.socket, 'usage', '--by', 'tenant', '--tenant', 'alpha']);
  assert.equal(byTenant.code, 0, byTenant.stderr);
  assert.match(byTenant.stdout, /^TENANT\s+DIRECTION\s+PACKETS\s+BYTES\s+BILLABLE PACKETS\s+BILLABLE BYTES\s+LAST\n/);
  assert.match(byTenant.stdout, /\nalpha\s+egress\s+5\s+4000000000243\s+4\.0 TB\s+3\s+4000000000123\s+2026/);
});

test('usage --by container prints a table per tenant, container, runtime and direction, and --json/--csv', async (t) => {
  const api = await usageApi();
  t.after(() => api.close());
  const r = await runCli(['--socket', api.socket, 'usage', '--by', 'container']);
  assert.equal(r.code, 0, r.stderr);
  const [header, , ...rows] = r.stdout.trimEnd().split('\n');
  assert.match(header, /^TENANT\s+CONTAINER\s+RUNTIME\s+DIRECTION\s+PACKETS\s+BYTES\s+LAST$/);
  assert.equal(rows.length, 2);
  assert.match(rows[0], /^alpha\s+3f2a9c\s+containerd\s+egress\s+5\s+4000000000243\s+4\.0 TB\s+2026-11-25T10:00:10\.000Z$/);
  assert.match(rows[1], /^beta, "east"\s+web-1\s+docker\s+ingress\s+1\s+60\s+60 B\s+2026/);

  const json = await runCli(['--socket', api.socket, 'usage', '--by', 'container', '--tenant', 'alpha', '--json']);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout), [
    { tenant: 'alpha', container: '3f2a9c', runtime: 'containerd', direction: 'egress', packets: 5, bytes: 4000000000243, first: '2026-11-25T10:00:00.000Z', last: '2026-11-25T10:00:10.000Z' },
  ]);
  const csvOut = await runCli(['--socket', api.socket, 'usage', '--by', 'container', '--csv']);
  assert.equal(csvOut.code, 0, csvOut.stderr);
  const span = '2026-11-25T10:00:00.000Z,2026-11-25T10:00:10.000Z';
  assert.equal(
    csvOut.stdout,
    'tenant,container,runtime,direction,packets,bytes,first,last\r\n' +
      `alpha,3f2a9c,containerd,egress,5,4000000000243,${span}\r\n` +
      `"beta, ""east""",web-1,docker,ingress,1,60,${span}\r\n`,
  );
});

test('usage --json prints the rows with exact integers', async (t) => {
  const api = await usageApi();
  t.after(() => api.close());
  const r = await runCli(['--socket', api.socket, 'usage', '--json', '--class', 'mgmt']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [
    { tenant: 'alpha', class: 'mgmt', billable: false, direction: 'egress', packets: 2, bytes: 120, first: '2026-11-25T10:00:00.000Z', last: '2026-11-25T10:00:10.000Z' },
  ]);
  const byClass = await runCli(['--socket', api.socket, 'usage', '--json', '--by', 'class']);
  assert.equal(byClass.code, 0, byClass.stderr);
  assert.match(byClass.stdout, /"bytes": 4000000000123\b/);
  assert.deepEqual(
    (JSON.parse(byClass.stdout) as Array<{ class: string; billable: boolean; direction: string }>).map((x) => [x.class, x.billable, x.direction]),
    [['internet', true, 'ingress'], ['internet', true, 'egress'], ['mgmt', false, 'egress']],
  );
});

test('usage --csv writes RFC 4180: a header, CRLF line ends, quoted fields', async (t) => {
  const api = await usageApi();
  t.after(() => api.close());
  const r = await runCli(['--socket', api.socket, 'usage', '--csv']);
  assert.equal(r.code, 0, r.stderr);
  const span = '2026-11-25T10:00:00.000Z,2026-11-25T10:00:10.000Z';
  assert.equal(
    r.stdout,
    'tenant,class,billable,direction,packets,bytes,first,last\r\n' +
      `alpha,internet,true,egress,3,4000000000123,${span}\r\n` +
      `alpha,mgmt,false,egress,2,120,${span}\r\n` +
      `"beta, ""east""",internet,true,ingress,1,60,${span}\r\n`,
  );
  const byTenant = await runCli(['--socket', api.socket, 'usage', '--csv', '--by', 'tenant', '--tenant', 'beta, "east"']);
  assert.equal(byTenant.code, 0, byTenant.stderr);
  assert.equal(
    byTenant.stdout,
    'tenant,direction,packets,bytes,billablePackets,billableBytes,first,last\r\n' + `"beta, ""east""",ingress,1,60,1,60,${span}\r\n`,
  );
});

test('usage errors name the flag and print nothing', async (t) => {
  const api = await usageApi();
  t.after(() => api.close());
  for (const [args, message] of [
    [['--by', 'direction'], /--by/],
    [['--class', 'video'], /^tollgate: --class: no class named "video"$/m],
    [['--by', 'container', '--class', 'mgmt'], /^tollgate: --class: container usage has no traffic class/m],
    [['--tenant', 'gamma'], /^tollgate: --tenant: no tenant named "gamma"$/m],
    [['--since', 'yesterday'], /^tollgate: --since: "yesterday" is neither/m],
    [['--since', '1h', '--until', '2h'], /^tollgate: --until: must not be before since/m],
    [['--json', '--csv'], /--json.*--csv|--csv.*--json/],
  ] as const) {
    const r = await runCli(['--socket', api.socket, 'usage', ...args]);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.equal(r.stdout, '', args.join(' '));
  }
});
