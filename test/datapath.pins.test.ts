// Pins left by another build: the metering datapath replaces pinned policy,
// flow and diagnostic maps whose shape changed (an upgrade, a new capacity)
// and adopts the billing counters as they are, or refuses to start when the
// counters themselves do not fit, changing nothing. Adopted counters are read
// whatever tenant they belong to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap, BpfObject, numPossibleCpus, removePins, TypedMap, u32 } from '../src/kernel/index.js';
import { TG_DIR_MAX, TgClassGen, TgCounter } from '../src/kernel/abi.gen.js';
import { compileMetering, parsePolicy } from '../src/policy/index.js';
import { MeteringDatapath } from '../src/metering/datapath.js';
import { pinDirPath } from '../lab/index.js';
import { fixture, kernelReady } from './kernel/helpers.js';

const PIN_ROOT = pinDirPath('tgpu');
const MAPS = join(PIN_ROOT, 'maps');

/** Puts a map of another shape (a u32 -> u64 hash) where `name` is pinned, as an older build might have left it. */
function pinForeign(foreign: BpfObject, name: string): void {
  rmSync(join(MAPS, name), { force: true });
  foreign.map('kt_hash').pin(join(MAPS, name)); // one map may be pinned at several paths
}

function pinned<T>(name: string, fn: (m: BpfMap) => T): T {
  const m = BpfMap.openPinned(join(MAPS, name));
  try {
    return fn(m);
  } finally {
    m.close();
  }
}

test('pinned maps of another shape: policy and flow maps replaced, counters adopted, counters of another shape refused', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  removePins(PIN_ROOT);
  t.after(() => removePins(PIN_ROOT));
  const foreign = BpfObject.open(fixture('kernel_maps'));
  t.after(() => foreign.close());
  foreign.load();

  const first = MeteringDatapath.open({ pinRoot: PIN_ROOT, maxFlows: 2048 });
  const counterId = first.counterId();
  assert.deepEqual(first.replacedPins, []);
  first.close();

  pinForeign(foreign, 'tg_class_gen');
  pinForeign(foreign, 'tg_flows');
  const second = MeteringDatapath.open({ pinRoot: PIN_ROOT, maxFlows: 2048 });
  try {
    assert.deepEqual([...second.replacedPins].sort(), ['tg_class_gen', 'tg_flow_stats', 'tg_flows'], 'tg_flow_stats goes with tg_flows');
    assert.ok(second.adopted, 'the counters were adopted');
    assert.equal(second.counterId(), counterId, 'the same counter map: no new epoch');
    assert.equal(pinned('tg_class_gen', (m) => m.valueSize), TgClassGen.size, 'a map of this build is pinned in its place');
    assert.equal(pinned('tg_flows', (m) => m.maxEntries), 2048);
  } finally {
    second.close();
  }

  pinForeign(foreign, 'tg_meter_counters');
  assert.throws(() => MeteringDatapath.open({ pinRoot: PIN_ROOT, maxFlows: 2048 }), /tg_meter_counters.*does not match the object's definition/);
  assert.equal(pinned('tg_meter_counters', (m) => m.valueSize), 8, 'the counter pin is left as it was');
  assert.ok(existsSync(join(MAPS, 'tg_class_gen')));
});

test('billing counters: every tenant an adopted pin counted is read, then the rows of each tenant installed since', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  removePins(PIN_ROOT);
  t.after(() => removePins(PIN_ROOT));
  const slot = (d: MeteringDatapath, tenant: number, dir: number) => (tenant * d.maxClasses) * TG_DIR_MAX + dir;
  const write = (index: number, packets: bigint) =>
    pinned('tg_meter_counters', (m) => new TypedMap(m, u32, TgCounter).setAllCpus(index, { packets, bytes: packets * 100n }));
  const read = (d: MeteringDatapath) => new Map(d.readCounters().map((r) => [`${r.tenantId}/${r.direction}`, r.packets]));
  const cpus = BigInt(numPossibleCpus());

  const first = MeteringDatapath.open({ pinRoot: PIN_ROOT });
  write(slot(first, 5, 1), 3n); // an earlier agent's tenant 5
  first.close();

  const second = MeteringDatapath.open({ pinRoot: PIN_ROOT });
  try {
    assert.equal(read(second).get('5/egress'), 3n * cpus, 'the first read takes the whole array');
    const doc = parsePolicy('version: 1\ntenants:\n  - name: big\n    selectors: { cidrs: [198.18.9.0/24] }\n', 'pins');
    second.applyPlan(compileMetering(doc, { tenantIds: new Map([['big', 3000]]), ifindexOf: () => undefined, generation: second.liveGeneration() === 0 ? 1 : 0 }));
    write(slot(second, 3000, 0), 5n);
    write(slot(second, 5, 1), 4n);
    const now = read(second);
    assert.equal(now.get('3000/ingress'), 5n * cpus, 'a tenant installed after the first read');
    assert.equal(now.get('5/egress'), 4n * cpus, 'the adopted tenant is still read');
  } finally {
    second.close();
  }
});
