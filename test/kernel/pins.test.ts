// bpffs helpers on the real bpffs: nested pin directories and recursive removal.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { BpfMap, BpfObject, ensureBpffs, findMount, mkdirp, removePins } from '../../src/kernel/index.js';
import { fixture, kernelReady, tag } from './helpers.js';

test('mkdirp + pins + removePins', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  ensureBpffs(); // idempotent
  assert.equal(findMount('bpf'), '/sys/fs/bpf');
  const root = `/sys/fs/bpf/tgk-${tag()}`;
  t.after(() => removePins(root));
  const dir = mkdirp(`${root}/maps/v1`);
  assert.ok(existsSync(dir));
  const obj = BpfObject.open(fixture('kernel_maps'));
  t.after(() => obj.close());
  obj.load();
  obj.map('kt_hash').pin(`${dir}/kt_hash`);
  obj.map('kt_array').pin(`${root}/kt_array`);
  removePins(root);
  assert.equal(existsSync(root), false);
  assert.throws(() => BpfMap.openPinned(`${dir}/kt_hash`), /ENOENT/);
  removePins(root); // missing is fine
  assert.throws(() => removePins('/tmp'), /not inside \/sys\/fs\/bpf/);
  assert.throws(() => mkdirp('/tmp/tgk'), /not inside \/sys\/fs\/bpf/);
});
