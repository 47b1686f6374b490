import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sumValues } from './typed-map.js';

test('sumValues adds scalars and struct fields, keeps bigint exact', () => {
  assert.equal(sumValues([1n, 2n, 2n ** 63n]), 2n ** 63n + 3n);
  assert.equal(sumValues([1, 2, 3]), 6);
  assert.deepEqual(sumValues([{ packets: 1n, bytes: 10n }, { packets: 2n, bytes: 20n }]), { packets: 3n, bytes: 30n });
  // arrays in a struct add element by element (each CPU counted its own)
  assert.deepEqual(sumValues([{ n: [1n, 0n, 5n], tag: 'a' }, { n: [0n, 2n, 5n], tag: 'b' }]), { n: [1n, 2n, 10n], tag: 'a' });
  const b = Buffer.from([1]);
  assert.equal(sumValues([b, Buffer.from([2])]), b);
  assert.throws(() => sumValues([]), /no per-CPU values/);
});
