// Nothing leaks: 100 open/load/attach/close cycles leave this process's fd
// table as it was, and every program, map and link the cycles created is
// gone from the kernel (checked by id, so parallel tests do not disturb it).
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { BpfObject, kernelIds } from '../../src/kernel/index.js';
import { fixture, kernelReady } from './helpers.js';

const fdCount = () => readdirSync('/proc/self/fd').length;

test('open + load + attach + close 100 times returns fds and kernel objects to baseline', async (t) => {
  if (!kernelReady(t, 'kernel_maps', 'kernel_reject')) return;
  // warm up: koffi, libbpf and the bindings allocate once
  const warm = BpfObject.open(fixture('kernel_maps'));
  warm.load();
  warm.close();

  const fdsBefore = fdCount();
  const progs = new Set<number>();
  const maps = new Set<number>();
  const links = new Set<number>();
  for (let i = 0; i < 100; i++) {
    const obj = BpfObject.open(fixture('kernel_maps'));
    obj.setConst('kt_retval', 2);
    obj.load();
    for (const p of obj.programs()) progs.add(p.info().id);
    for (const m of obj.maps()) maps.add(m.id);
    const link = obj.program('kt_raw_sys_enter').attach();
    links.add(link.info.id);
    assert.equal(obj.program('kt_const').testRun({ data: Buffer.alloc(64) }).retval, 2);
    link.close();
    obj.close();
    if (i % 10 === 0) {
      // a failed load must clean up too
      const bad = BpfObject.open(fixture('kernel_reject'));
      assert.throws(() => bad.load());
      bad.close();
    }
  }
  assert.equal(progs.size, 100 * 10);
  assert.equal(fdCount(), fdsBefore, 'fd table back to baseline');

  // the kernel frees programs and maps after an RCU grace period
  const alive = () => {
    const p = new Set(kernelIds('prog'));
    const m = new Set(kernelIds('map'));
    const l = new Set(kernelIds('link'));
    return [...progs].filter((id) => p.has(id)).length + [...maps].filter((id) => m.has(id)).length + [...links].filter((id) => l.has(id)).length;
  };
  const end = Date.now() + 5_000;
  while (alive() > 0 && Date.now() < end) await sleep(50);
  assert.equal(alive(), 0, 'every prog, map and link id created is gone');
});
