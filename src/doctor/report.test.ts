import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatDoctorTable, makeReport, type DoctorCheck } from './report.js';

const good: DoctorCheck = { name: 'bpffs', ok: true, required: true, detail: 'bpf mounted at /sys/fs/bpf' };
const info: DoctorCheck = { name: 'prog.fentry', ok: false, required: false, detail: 'refused: EPERM' };
const bad: DoctorCheck = { name: 'tracefs', ok: false, required: true, detail: 'not mounted', fix: 'mount -t tracefs tracefs /sys/kernel/tracing' };

test('report ok only depends on required checks', () => {
  assert.equal(makeReport([good, info]).ok, true);
  assert.equal(makeReport([good, info, bad]).ok, false);
  assert.equal(makeReport([]).ok, true);
});

test('table: one aligned line per check plus a verdict line', () => {
  const text = formatDoctorTable(makeReport([good, info, bad]));
  const lines = text.split('\n');
  assert.equal(lines.length, 1 + 3 + 1);
  assert.match(lines[1], /^ok {3,}bpffs/);
  assert.match(lines[2], /^no {3,}prog\.fentry +info +refused: EPERM$/);
  assert.match(lines[3], /^FAIL +tracefs +required +not mounted$/);
  // the CHECK column starts at the same offset on every line
  const col = lines[0].indexOf('CHECK');
  for (const l of lines.slice(1, 4)) assert.ok(/\S/.test(l[col]) && l[col - 1] === ' ', l);
  assert.match(lines[4], /1 required check\(s\) failed \(tracefs\); fix with: mount -t tracefs tracefs \/sys\/kernel\/tracing/);
});

test('table says so when everything required passed', () => {
  const text = formatDoctorTable(makeReport([good, info]));
  assert.match(text.split('\n').at(-1)!, /All required checks passed/);
});

test('multi-line details stay on one line', () => {
  const text = formatDoctorTable(makeReport([{ ...info, detail: 'a\nb' }]));
  assert.equal(text.split('\n').length, 3);
  assert.match(text, /a \| b/);
});
