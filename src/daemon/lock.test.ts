import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lockPinRoot } from './lock.js';

test('one holder per pin root; released on stop; stale files are taken over', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-lock-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const release = lockPinRoot('/sys/fs/bpf/tollgate/a', dir);
  const file = join(dir, '_sys_fs_bpf_tollgate_a.pid');
  assert.equal(readFileSync(file, 'utf8').trim(), String(process.pid));
  assert.doesNotThrow(() => lockPinRoot('/sys/fs/bpf/tollgate/b', dir)(), 'another root is independent');
  release();
  assert.equal(existsSync(file), false);

  // A live process whose command line says "agent" holds it.
  const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)', 'agent']);
  t.after(() => other.kill('SIGKILL'));
  writeFileSync(file, `${other.pid}\n`);
  assert.throws(() => lockPinRoot('/sys/fs/bpf/tollgate/a', dir), new RegExp(`--pin-root: agent pid ${other.pid} already uses`));
  other.kill('SIGKILL');
  await new Promise((r) => other.once('exit', r));
  // Its pid is gone now: the file is stale and is taken over.
  lockPinRoot('/sys/fs/bpf/tollgate/a', dir)();
});
