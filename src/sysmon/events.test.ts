import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TgSysEvent, TG_SYS_ACT_KILLED, TG_SYS_ACT_REPORTED, TG_SYS_ARGS_LEN, TG_SYSEV_DENIED, TG_SYSEV_EXEC, type TgSysEvent as SysEvent } from '../kernel/abi.gen.js';
import type { IsolationScope } from '../policy/index.js';
import { describeSysEvent } from './events.js';

const bytes = (s: string, n: number): number[] => {
  const b = Buffer.alloc(n);
  Buffer.from(s).copy(b);
  return [...b];
};

function record(over: Partial<SysEvent> & { pathText?: string; argv?: string }): Buffer {
  const args = over.argv ?? '';
  return TgSysEvent.encode({
    at_ns: 37_000_000_000n + 1_700_000_000_000n * 1_000_000n, cgroup_id: 4242n, type: TG_SYSEV_EXEC, nr: 0, pid: 100, tid: 101, ppid: 1, uid: 0,
    slot: 3, scope: 1, action: TG_SYS_ACT_REPORTED, args_len: Math.min(Buffer.byteLength(args), TG_SYS_ARGS_LEN),
    comm: bytes('bash', 16), path: bytes(over.pathText ?? '', 256), args: bytes(args, TG_SYS_ARGS_LEN), ...over,
  });
}

const scopes: IsolationScope[] = [
  { tenant: 'acme', execs: { log: false, alert: ['sh', '/usr/bin/curl'] } },
  { tenant: 'acme', execs: { log: true, alert: [] } },
];
const names = { container: (slot: number) => (slot === 3 ? { id: 'ab'.repeat(32), runtime: 'docker', tenant: 'acme' } : undefined), scopes: () => scopes };
const TAI = 37_000;

test('a denied syscall: kill or audit, with the task and the container', () => {
  const e = describeSysEvent(record({ type: TG_SYSEV_DENIED, nr: 101, action: TG_SYS_ACT_KILLED }), names, TAI)!;
  assert.equal(e.at, 1_700_000_000_000);
  assert.equal(e.type, 'syscall.denied');
  assert.equal(e.tenant, 'acme');
  assert.equal(e.action, 'kill');
  assert.equal(e.rule, 'isolation[0].syscalls');
  assert.deepEqual(e.detail, { container: 'ab'.repeat(32), runtime: 'docker', cgroupId: '4242', pid: 100, tid: 101, ppid: 1, uid: 0, command: 'bash', syscall: 'ptrace', nr: 101 });
  assert.equal(describeSysEvent(record({ type: TG_SYSEV_DENIED, nr: 511 }), names, TAI)!.detail.syscall, null, 'a number without a name');
  const gone = describeSysEvent(record({ type: TG_SYSEV_DENIED, nr: 101, slot: 9 }), names, TAI)!;
  assert.equal(gone.tenant, null, 'a container that went away since');
  assert.equal(gone.detail.container, null);
});

test('execs: alerts by name (file or argv[0]) or absolute path, logs when the scope logs, nothing otherwise', () => {
  const cases: Array<[string, Partial<SysEvent> & { pathText?: string; argv?: string }, [string, string, string?] | undefined]> = [
    ['a shell by its file', { pathText: '/bin/sh', argv: '/bin/sh\0-c\0id\0' }, ['exec.alert', 'alert', 'sh']],
    ['busybox run as sh (argv[0])', { pathText: '/bin/busybox', argv: 'sh\0' }, ['exec.alert', 'alert', 'sh']],
    ['an absolute path', { pathText: '/usr/bin/curl', argv: 'curl\0-s\0' }, ['exec.alert', 'alert', '/usr/bin/curl']],
    ['the same name elsewhere is not that path', { pathText: '/tmp/curl', argv: 'curl\0' }, undefined],
    ['not a listed program, scope does not log', { pathText: '/usr/bin/id', argv: 'id\0' }, undefined],
    ['scope 2 logs every exec', { pathText: '/usr/bin/id', argv: 'id\0', scope: 2 }, ['exec', 'log']],
  ];
  for (const [what, over, want] of cases) {
    const e = describeSysEvent(record(over), names, TAI);
    if (!want) {
      assert.equal(e, undefined, what);
      continue;
    }
    assert.deepEqual([e!.type, e!.action, e!.detail.matched], want.length === 3 ? want : [...want, undefined], what);
    assert.equal(e!.detail.filename, over.pathText, what);
  }
  const sh = describeSysEvent(record({ pathText: '/bin/sh', argv: '/bin/sh\0-c\0id\0' }), names, TAI)!;
  assert.deepEqual([sh.detail.argv, sh.detail.argvTruncated], [['/bin/sh', '-c', 'id'], false]);
  const long = `${'x'.repeat(600)}\0`;
  const cut = describeSysEvent(record({ pathText: '/bin/sh', argv: long }), names, TAI)!;
  assert.deepEqual([(cut.detail.argv as string[])[0]!.length, cut.detail.argvTruncated], [TG_SYS_ARGS_LEN, true], 'argv cut at the record\'s room');
});
