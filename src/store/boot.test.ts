import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { bootId, defaultHostId } from './boot.js';
import { LedgerError } from './errors.js';

function tmp(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'tg-ledger-boot-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('bootId reads the running kernel boot id', () => {
  const id = bootId();
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.equal(id, readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
  assert.equal(bootId(), id, 'stable within a boot');
});

test('bootId refuses a missing or malformed source', (t) => {
  const dir = tmp(t);
  const bad = join(dir, 'boot_id');
  writeFileSync(bad, 'not-a-uuid\n');
  assert.throws(() => bootId(bad), (e: unknown) => e instanceof LedgerError && /does not hold a UUID/.test(e.message));
  assert.throws(() => bootId(join(dir, 'missing')), (e: unknown) => e instanceof LedgerError && /cannot read the boot id/.test(e.message));
});

test('defaultHostId prefers machine-id and falls back to the hostname', (t) => {
  const dir = tmp(t);
  const mid = join(dir, 'machine-id');
  writeFileSync(mid, '0123456789abcdef0123456789abcdef\n');
  assert.equal(defaultHostId(mid), '0123456789abcdef0123456789abcdef');
  writeFileSync(mid, '\n');
  assert.equal(defaultHostId(mid), hostname());
  assert.equal(defaultHostId(join(dir, 'missing')), hostname());
});
