import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TG_SYS_ENFORCE, TG_SYS_PATHS, TG_SYS_PREFIX_LEN } from '../kernel/abi.gen.js';
import { parsePolicy } from '../policy/index.js';
import { compileSysPaths, compileSysScopes } from './scopes.js';

const scopes = parsePolicy(`version: 1
tenants: [{ name: a, selectors: { cgroups: ["/t/**"] } }]
isolation:
  - { tenant: a, containers: "/t/x", syscalls: { mode: enforce, deny: [read, ptrace, mseal] }, sensitivePaths: { mode: enforce, paths: [/etc/shadow, /root/ü] } }
  - { tenant: a, containers: "/t/y", sensitivePaths: [/etc/host] }
  - { tenant: a }
`).isolation!;

test('scope i is entry i + 1: denied numbers as bits, enforce and path flags', () => {
  const m = compileSysScopes(scopes);
  assert.deepEqual([...m.keys()], [1, 2, 3]);
  const s1 = m.get(1)!;
  assert.equal(s1.deny[0], 1n << 0n, 'read is 0');
  assert.equal(s1.deny[1], 1n << BigInt(101 - 64), 'ptrace is 101');
  assert.equal(s1.deny[7], 1n << BigInt(462 - 448), 'mseal is 462');
  assert.equal(s1.flags, TG_SYS_ENFORCE | TG_SYS_PATHS);
  assert.equal(m.get(2)!.flags, TG_SYS_PATHS, 'a plain list of paths is audit');
  assert.deepEqual(m.get(3), { deny: Array(8).fill(0n), flags: 0, pad: 0 });
});

test('sensitive paths: the bytes without a NUL, prefixlen over scope and bytes, signed chars for UTF-8', () => {
  const entries = compileSysPaths(scopes);
  assert.deepEqual(entries.map(([k, v]) => [k.scope, k.prefixlen, v.flags]), [[1, (4 + 11) * 8, TG_SYS_ENFORCE], [1, (4 + 8) * 8, TG_SYS_ENFORCE], [2, (4 + 9) * 8, 0]]);
  const [k] = entries[1]!;
  assert.equal(k.path.length, TG_SYS_PREFIX_LEN);
  assert.deepEqual(Buffer.from(k.path.slice(0, 8).map((c) => c & 0xff)).toString(), '/root/ü');
  assert.ok(k.path[6]! < 0, 'the first byte of ü as a signed char');
  assert.ok(k.path.slice(8).every((c) => c === 0));
});
