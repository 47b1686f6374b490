import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TG_MAX_CONTAINERS } from '../kernel/abi.gen.js';
import { ContainerSlots } from './container-slots.js';

const c = (id: string, cgroupId: bigint, tenant = 'acme') => ({ id, runtime: 'docker', tenant, cgroupId });

test('slots: stable per container, never reused, kept across reopen of the same counter map, reset for a new one', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-slots-'));
  try {
    const path = join(dir, 'slots.json');
    const s = ContainerSlots.open(path, '17');
    assert.deepEqual([...s.assign([c('a', 100n), c('b', 101n)]).slots], [[100n, 1], [101n, 2]]);
    // b is gone, c arrives: c gets a fresh slot, b's stays b's.
    assert.deepEqual([...s.assign([c('a', 100n), c('c', 102n)]).slots], [[100n, 1], [102n, 3]]);
    assert.deepEqual(s.owner(2), { containerId: 'b', runtime: 'docker', tenant: 'acme' });
    const again = ContainerSlots.open(path, '17');
    assert.deepEqual([...again.assign([c('c', 999n)]).slots], [[999n, 3]], 'same counter map: the assignment survives');
    const fresh = ContainerSlots.open(path, '18');
    assert.equal(fresh.owner(1), undefined, 'a new counter map starts from zero, so do the slots');
    assert.deepEqual([...fresh.assign([c('c', 102n)]).slots], [[102n, 1]]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('slots: containers beyond the capacity are named, not assigned', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-slots-'));
  try {
    const s = ContainerSlots.open(join(dir, 'slots.json'), '1');
    const many = Array.from({ length: TG_MAX_CONTAINERS + 1 }, (_, i) => c(`k${i}`, BigInt(i)));
    const r = s.assign(many);
    assert.equal(r.slots.size, TG_MAX_CONTAINERS - 1);
    assert.deepEqual(r.unassigned, [`k${TG_MAX_CONTAINERS - 1}`, `k${TG_MAX_CONTAINERS}`]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('slots: a damaged file is reported, naming it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-slots-'));
  try {
    const path = join(dir, 'slots.json');
    writeFileSync(path, '{oops');
    assert.throws(() => ContainerSlots.open(path, '1'), new RegExp(`${path}: not a container slot file`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
