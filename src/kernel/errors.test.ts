import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KernelError, VerifierError, check, errnoName } from './errors.js';

test('KernelError names op, errno and what to do', () => {
  const e = new KernelError('bpf_obj_get(/sys/fs/bpf/x)', -2);
  assert.equal(e.errno, 2);
  assert.equal(e.code, 'ENOENT');
  assert.match(e.message, /^bpf_obj_get\(\/sys\/fs\/bpf\/x\): ENOENT \(2\) - .*bpffs/);
  assert.match(new KernelError('attach', 1).message, /EPERM \(1\) - run as root/);
  assert.match(new KernelError('attach', 16).message, /EBUSY \(16\) - .*link update/);
  assert.match(new KernelError('x', 4242, 'detail').message, /^x: errno 4242 \(4242\): detail$/);
  assert.equal(errnoName(13), 'EACCES');
  assert.equal(check('ok', 5), 5);
  assert.throws(() => check('op', -17), (err: unknown) => err instanceof KernelError && err.code === 'EEXIST');
});

test('VerifierError: short one-line summary without the statistics, full log kept', () => {
  const log = [
    '0: R1=ctx() R10=fp0',
    ...Array.from({ length: 500 }, (_, i) => `${i + 1}: (b7) r0 = 0 ; R0_w=0`),
    'invalid access to packet, off=20 size=1',
    'R1 offset is outside of the packet',
    'processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0',
    '',
  ].join('\n');
  const e = new VerifierError('tg_x', 13, log);
  assert.equal(e.log, log);
  assert.equal(e.program, 'tg_x');
  assert.doesNotMatch(e.message, /\n|processed/);
  assert.match(e.message, /^verifier rejected program 'tg_x' \(EACCES\): .*invalid access to packet.*outside of the packet$/);
  const long = new VerifierError('p', 22, 'x'.repeat(5000));
  assert.ok(long.message.length < 500);
  assert.match(new VerifierError('p', 22, '').message, /no verifier log/);
});
