// BpfObject life cycle against the real kernel: constants set before load,
// verifier rejection with its log, BPF_PROG_TEST_RUN and run-time stats.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  BpfObject, KernelError, TypedMap, VerifierError, enableBpfStats, libbpf, progInfo, setLibbpfLogger, u32, u64,
} from '../../src/kernel/index.js';
import { fixture, kernelReady } from './helpers.js';

const XDP_DROP = 1;
const XDP_PASS = 2;

test('setConst before load changes what the program returns', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const plain = BpfObject.open(fixture('kernel_maps'));
  t.after(() => plain.close());
  plain.load();
  assert.equal(plain.program('kt_const').testRun({ data: Buffer.alloc(64) }).retval, XDP_DROP);

  const obj = BpfObject.open(fixture('kernel_maps'), { name: 'tgk_const' });
  t.after(() => obj.close());
  assert.deepEqual(
    obj.constants().map((c) => [c.name, c.size]),
    [['kt_retval', 4], ['kt_pid', 4], ['kt_wide', 8]],
  );
  obj.setConst('kt_retval', XDP_PASS);
  obj.setConst('kt_wide', 0xfffffffffn);
  obj.load();
  assert.equal(obj.program('kt_const').testRun({ data: Buffer.alloc(64) }).retval, XDP_PASS);
  // the frozen .rodata map holds what we wrote
  const rodata = obj.maps().find((m) => m.name.endsWith('.rodata'));
  assert.ok(rodata, 'object has a .rodata map');
  const image = rodata.lookup(Buffer.alloc(4));
  assert.equal(image?.readUInt32LE(0), XDP_PASS);
  assert.equal(image?.readBigUInt64LE(8), 0xfffffffffn);
  assert.throws(() => obj.setConst('kt_retval', 1), /already loaded; configure it before load/);
});

test('setConst refuses unknown names, bad sizes and values', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const obj = BpfObject.open(fixture('kernel_maps'));
  t.after(() => obj.close());
  assert.throws(() => obj.setConst('kt_nope', 1), /no const volatile 'kt_nope' in \.rodata \(has: kt_retval, kt_pid, kt_wide\)/);
  assert.throws(() => obj.setConst('kt_retval', Buffer.alloc(8)), /value is 8 bytes, the variable is 4/);
  assert.throws(() => obj.setConst('kt_retval', 2 ** 32), /does not fit in 4 bytes/);
  assert.throws(() => obj.setConst('kt_retval', 1.5), /not an integer/);
  obj.setConst('kt_retval', Buffer.from([2, 0, 0, 0]));
  obj.setConst('kt_pid', -1); // two's complement, like C
  obj.load();
  assert.equal(obj.program('kt_const').testRun({ data: Buffer.alloc(64) }).retval, XDP_PASS);
});

test('setMaxEntries before load, refused after', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const obj = BpfObject.open(fixture('kernel_maps'));
  t.after(() => obj.close());
  assert.throws(() => obj.setMaxEntries('kt_hash', 0), /positive 32-bit integer/);
  assert.throws(() => obj.setMaxEntries('kt_nope', 10), /has no map 'kt_nope'/);
  obj.setMaxEntries('kt_hash', 10);
  obj.load();
  const h = new TypedMap(obj.map('kt_hash'), u32, u64);
  assert.equal(obj.map('kt_hash').maxEntries, 10);
  for (let i = 0; i < 10; i++) h.set(i, 1n);
  assert.throws(() => h.set(10, 1n), (e: unknown) => e instanceof KernelError && e.code === 'E2BIG');
  assert.throws(() => obj.setMaxEntries('kt_hash', 20), /already loaded/);
});

test('an object\'s map: its fd is the kernel\'s once loaded, and refused once the object is closed', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const obj = BpfObject.open(fixture('kernel_maps'));
  t.after(() => obj.close());
  const m = obj.map('kt_hash');
  assert.throws(() => m.fd, /not loaded yet/);
  obj.load();
  const fd = m.fd;
  assert.ok(fd > 2);
  assert.equal(m.fd, fd, 'the same fd every time');
  assert.equal(m.maxEntries, 16384);
  new TypedMap(m, u32, u64).set(1, 2n);
  obj.close();
  assert.throws(() => m.fd, /is closed/);
  assert.throws(() => m.update(Buffer.alloc(4), Buffer.alloc(8)), /is closed/);
});

test('a rejected program raises VerifierError with the full log and a short message', (t) => {
  if (!kernelReady(t, 'kernel_reject')) return;
  const warnings: string[] = [];
  const prev = setLibbpfLogger((level, msg) => warnings.push(`${level}:${msg}`));
  t.after(() => setLibbpfLogger(prev));
  const obj = BpfObject.open(fixture('kernel_reject'));
  t.after(() => obj.close());
  let err: unknown;
  try {
    obj.load();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof VerifierError, `expected VerifierError, got ${String(err)}`);
  assert.equal(err.program, 'kt_reject');
  assert.equal(err.errno, 13);
  assert.match(err.log, /invalid access to packet/);
  assert.match(err.log, /processed \d+ insns/);
  assert.match(err.message, /^verifier rejected program 'kt_reject' \(EACCES\): .*invalid access to packet/);
  assert.ok(err.message.length < 600, `message is short (${err.message.length})`);
  assert.ok(!err.message.includes('\n'));
  // libbpf's warnings went into the error, not to the logger
  assert.deepEqual(warnings, []);
  assert.throws(() => obj.load(), /already loaded/);
});

test('open errors name the file and the reason', (t) => {
  if (!kernelReady(t)) return;
  assert.throws(() => BpfObject.open('/nonexistent/tgk.bpf.o'), (e: unknown) => e instanceof KernelError && e.code === 'ENOENT' && /build-bpf/.test(e.message));
  const dir = mkdtempSync(join(tmpdir(), 'tgk-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'junk.o'), 'not an ELF file');
  assert.throws(() => BpfObject.open(join(dir, 'junk.o')), (e: unknown) => e instanceof KernelError && /junk\.o/.test(e.message));
  copyFileSync(fixture('kernel_maps'), join(dir, 'copy.o'));
  const obj = BpfObject.open(join(dir, 'copy.o'));
  obj.close();
  obj.close(); // idempotent
  assert.throws(() => obj.load(), /is closed/);
  assert.throws(() => BpfObject.open(''), /path must be a non-empty string/);
});

test('testRun: data in and out, repeat, retval, duration, bad input', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const obj = BpfObject.open(fixture('kernel_maps'));
  t.after(() => obj.close());
  obj.load();
  const p = obj.program('kt_xdp_count');
  assert.throws(() => p.testRun({ data: Buffer.alloc(64), repeat: 0 }), /repeat must be a positive integer/);
  assert.throws(() => p.testRun({ data: 'x' as never }), /data must be a Buffer/);
  const data = Buffer.alloc(80);
  for (let i = 0; i < data.length; i++) data[i] = i;
  const r = p.testRun({ data, repeat: 1000 });
  assert.equal(r.retval, XDP_PASS);
  assert.ok(r.duration > 0 && r.duration < 1_000_000, `duration ${r.duration} ns`);
  assert.deepEqual(r.data, data, 'XDP_PASS leaves the packet as it was');
  const small = p.testRun({ data, dataOutSize: 0 });
  assert.equal(small.data.length, 0);
  assert.equal(obj.program('kt_lpm_lookup').testRun({ data: Buffer.alloc(14) }).retval, 255);
  assert.throws(() => p.testRun({ data: Buffer.alloc(4) }), (e: unknown) => e instanceof KernelError && e.code === 'EINVAL');
});

test('enableBpfStats: run count and time while enabled, frozen after', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const obj = BpfObject.open(fixture('kernel_maps'));
  t.after(() => obj.close());
  obj.load();
  const p = obj.program('kt_xdp_count');
  const disable = enableBpfStats();
  t.after(disable);
  const before = progInfo(p.fd);
  assert.equal(before.name, 'kt_xdp_count');
  assert.ok(before.id > 0);
  p.testRun({ data: Buffer.alloc(64), repeat: 500 });
  const mid = progInfo(p.fd);
  assert.equal(mid.runCnt - before.runCnt, 500n);
  assert.ok(mid.runTimeNs > before.runTimeNs);
  disable();
  disable(); // idempotent
  p.testRun({ data: Buffer.alloc(64), repeat: 500 });
  const after = p.info();
  // another process may hold stats enabled too; then counting goes on
  if (after.runCnt !== mid.runCnt) t.diagnostic('bpf_stats still enabled by someone else');
  assert.ok(after.runCnt === mid.runCnt || after.runCnt === mid.runCnt + 500n);
});

test('a verifier log that does not fit is retried with a bigger buffer, settings replayed', (t) => {
  if (!kernelReady(t, 'kernel_maps', 'kernel_reject')) return;
  assert.throws(() => BpfObject.open(fixture('kernel_maps'), { logSize: 3 }), /logSize must be an integer from 128/);
  // loads that succeed but overflow the log (ENOSPC) are loaded again
  const obj = BpfObject.open(fixture('kernel_maps'), { logSize: 128 });
  t.after(() => obj.close());
  obj.setConst('kt_retval', XDP_PASS);
  obj.setMaxEntries('kt_hash', 7);
  obj.load();
  assert.ok(obj.loadAttempts > 1, `loaded ${obj.loadAttempts} times`);
  assert.equal(obj.program('kt_const').testRun({ data: Buffer.alloc(64) }).retval, XDP_PASS);
  assert.equal(obj.map('kt_hash').maxEntries, 7);
  // a rejection whose log filled the buffer is loaded again for the whole log
  const bad = BpfObject.open(fixture('kernel_reject'), { logSize: 128 });
  t.after(() => bad.close());
  const err = (() => {
    try {
      bad.load();
    } catch (e) {
      return e;
    }
  })();
  assert.ok(err instanceof VerifierError);
  assert.ok(bad.loadAttempts >= 2);
  assert.match(err.log, /^0: R1=ctx/);
  assert.match(err.log, /invalid access to packet/);
});

test('libbpf warnings reach the pluggable logger', (t) => {
  if (!kernelReady(t, 'kernel_maps')) return;
  const seen: string[] = [];
  const prev = setLibbpfLogger((level, msg) => seen.push(`${level}:${msg}`));
  t.after(() => setLibbpfLogger(prev));
  const obj = BpfObject.open(fixture('kernel_maps'));
  t.after(() => obj.close());
  obj.load();
  // an XDP program has no auto-attach
  assert.throws(() => obj.program('kt_const').attach(), (e: unknown) => e instanceof KernelError && /SEC\("xdp"\) has no auto-attach; use attachXdp/.test(e.message));
  // outside the kernel layer's own calls, warnings go to the logger, printf-formatted from the va_list
  assert.equal(libbpf().bpf_object__open_file('/nonexistent/tgk-log.o', null), null);
  assert.ok(
    seen.some((s) => s.startsWith('warn:') && s.includes('/nonexistent/tgk-log.o') && s.includes('No such file or directory')),
    JSON.stringify(seen),
  );
});
