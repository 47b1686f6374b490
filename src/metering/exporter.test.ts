import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FAULT_ENV, parseFault } from './exporter.js';

test(`${FAULT_ENV} is validated and names the variable`, () => {
  assert.equal(parseFault(undefined), undefined);
  assert.equal(parseFault(''), undefined);
  assert.deepEqual(parseFault('after-read:0.25'), { point: 'after-read', probability: 0.25 });
  assert.deepEqual(parseFault('after-commit:1'), { point: 'after-commit', probability: 1 });
  for (const bad of ['after-read', 'before-read:0.5', 'after-read:', 'after-read:0', 'after-read:1.5', 'after-read:-0.1', 'after-read:0x1', 'after-read:0.5:1', 'after-read:NaN']) {
    assert.throws(() => parseFault(bad), new RegExp(`^Error: ${FAULT_ENV}: `), bad);
  }
});
