import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KernelError, VerifierError } from '../kernel/index.js';
import { versionFromSoname } from './libbpf-version.js';
import { PROBES, arpFrame, describeError, ipv4UdpFrame } from './probes.js';

test('ipv4UdpFrame is a valid 64-byte IPv4/UDP frame in 198.18.0.0/15', () => {
  const f = ipv4UdpFrame();
  assert.equal(f.length, 64);
  assert.equal(f.readUInt16BE(12), 0x0800);
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += f.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  assert.equal(sum, 0xffff, 'IPv4 header checksum verifies');
  assert.deepEqual([...f.subarray(26, 34)], [198, 18, 0, 1, 198, 18, 0, 2]);
  assert.equal(arpFrame().readUInt16BE(12), 0x0806);
});

test('versionFromSoname', () => {
  assert.equal(versionFromSoname('/usr/lib/x86_64-linux-gnu/libbpf.so.1.1.2'), '1.1.2');
  assert.equal(versionFromSoname('/usr/lib/libbpf.so.1'), undefined);
});

test('describeError keeps libbpf\'s own reason and the verifier tail', () => {
  const k = new KernelError('bpf_object__load(x)', 1);
  k.libbpfLog = "libbpf: prog 'p': BPF program load failed: Operation not permitted\nlibbpf: permission error while running as root; try raising 'ulimit -l'?\n";
  assert.equal(describeError(k), "EPERM: prog 'p': BPF program load failed: Operation not permitted");
  assert.equal(describeError(new KernelError('open(x)', 2)), 'ENOENT: open(x)');
  const v = new VerifierError('p', 13, '0: R1=ctx\n1: (85) call bpf_send_signal#109\nunknown func bpf_send_signal#109\n');
  assert.equal(describeError(v), 'verifier refused (EACCES): 1: (85) call bpf_send_signal#109 | unknown func bpf_send_signal#109');
});

test('probe names are unique and every probe program exists in doctor.bpf.c', async () => {
  const names = PROBES.map((p) => p.name);
  assert.equal(new Set(names).size, names.length);
  const { readFileSync } = await import('node:fs');
  const src = readFileSync(new URL('../../bpf/progs/doctor.bpf.c', import.meta.url), 'utf8');
  for (const p of PROBES) assert.match(src, new RegExp(`\\b${p.program}\\b`), p.program);
});
