// The `tollgate` command: bad input gets a clear error naming the field and
// changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
