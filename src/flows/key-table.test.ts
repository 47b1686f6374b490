import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { KeyTable } from './key-table.js';

test('ids in insertion order; find and intern agree with a Map, through growth', () => {
  fc.assert(
    fc.property(fc.array(fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 3, maxLength: 3 }), { maxLength: 300 }), (keys) => {
      const t = new KeyTable(3, 2); // starts tiny: grows many times
      const ref = new Map<string, number>();
      const src = new Uint32Array(keys.flat());
      keys.forEach((k, i) => {
        const name = k.join(',');
        const want = ref.get(name) ?? ref.size;
        if (!ref.has(name)) ref.set(name, want);
        assert.equal(t.intern(src, i * 3), want);
      });
      assert.equal(t.size, ref.size);
      keys.forEach((k, i) => assert.equal(t.find(src, i * 3), ref.get(k.join(','))));
      assert.equal(t.find(new Uint32Array([9, 9, 9]), 0), -1);
    }),
  );
});

test('keys are compared whole: one differing word is another key', () => {
  const t = new KeyTable(11);
  const a = new Uint32Array(11);
  const b = new Uint32Array(11);
  b[10] = 1;
  assert.equal(t.intern(a, 0), 0);
  assert.equal(t.find(b, 0), -1);
  assert.equal(t.intern(b, 0), 1);
});

test('a million keys', () => {
  const n = 1_000_000;
  const src = new Uint32Array(n * 11);
  for (let i = 0; i < n; i++) {
    src[i * 11] = 0xc6120000 + (i >>> 16);
    src[i * 11 + 8] = i & 0xffff;
  }
  const t = new KeyTable(11, n);
  let wrong = 0;
  for (let i = 0; i < n; i++) if (t.intern(src, i * 11) !== i) wrong++;
  for (let i = 0; i < n; i++) if (t.find(src, i * 11) !== i) wrong++;
  assert.equal(wrong, 0);
  assert.equal(t.size, n);
});

test('words must be a positive integer', () => {
  assert.throws(() => new KeyTable(0), /words must be a positive integer, got 0/);
});
