import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PIN_ROOT, inBpffs, pinPath } from './pins.js';

test('pin paths stay inside /sys/fs/bpf', () => {
  assert.equal(inBpffs('/sys/fs/bpf/tollgate/maps/x'), '/sys/fs/bpf/tollgate/maps/x');
  assert.equal(inBpffs('/sys/fs/bpf/a/../b'), '/sys/fs/bpf/b');
  assert.throws(() => inBpffs('/sys/fs/bpf'), /not inside/);
  assert.throws(() => inBpffs('/sys/fs/bpf/../cgroup'), /not inside/);
  assert.throws(() => inBpffs('/tmp/x'), /not inside/);
  assert.throws(() => inBpffs('relative/x'), /absolute path/);
  assert.equal(pinPath('maps', 'tg_meter_counters'), `${PIN_ROOT}/maps/tg_meter_counters`);
  assert.throws(() => pinPath('..', 'x'), /not a plain name/);
  assert.throws(() => pinPath('a/b'), /not a plain name/);
});
