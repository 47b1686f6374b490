// What a record of tg_sys_ring means as a security event (docs/events.md):
//  - syscall.denied: a syscall the container's scope denies (action "kill"
//    in enforce mode, "audit" otherwise);
//  - exec.alert: a program the scope's execs.alert names was started;
//  - exec: any other program started, when the scope's execs.log is on;
//  - file.sensitive: a path under one of the scope's sensitivePaths opened
//    (action "kill" in enforce mode, "audit" otherwise).
// Pure, apart from decoding the record.
import { basename } from 'node:path';
import { TgSysAction, TgSysEvent, TgSysEventType } from '../kernel/abi.gen.js';
import type { NewEvent } from '../events/event.js';
import type { IsolationScope } from '../policy/index.js';
import { syscallName } from './syscalls.js';

export interface SysEventNames {
  /** The container counting in a slot, as the monitor has it now. */
  container(slot: number): { id: string; runtime: string; tenant: string } | undefined;
  /** The policy's isolation scopes (tg_sys_ref.scope is the index + 1). */
  scopes(): readonly IsolationScope[];
}

const text = (bytes: readonly number[]): string => {
  const b = Buffer.from(bytes.map((x) => x & 0xff));
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('utf8');
};

/** argv from the NUL-separated bytes the program copied (cut at TG_SYS_ARGS_LEN: the last one may be partial). */
function argv(bytes: readonly number[], len: number): { argv: string[]; truncated: boolean } {
  const b = Buffer.from(bytes.slice(0, len).map((x) => x & 0xff));
  const parts = b.toString('utf8').split('\0');
  const complete = len > 0 && b[len - 1] === 0;
  if (complete) parts.pop();
  return { argv: parts, truncated: !complete && len === bytes.length };
}

/** The alert entry an exec matches: an absolute path equal to the file, or a name equal to its basename or argv[0]'s. */
function alertFor(scope: IsolationScope | undefined, path: string, arg0: string | undefined): string | undefined {
  return scope?.execs.alert.find((p) => (p.startsWith('/') ? p === path : p === basename(path) || (arg0 !== undefined && p === basename(arg0))));
}

/** The event a record stands for; undefined for an exec nobody asked to hear about. */
export function describeSysEvent(record: Buffer, names: SysEventNames, taiOffsetMs: number): NewEvent | undefined {
  const e = TgSysEvent.decode(record);
  const container = names.container(e.slot);
  const scopeIndex = e.scope - 1;
  const scope = scopeIndex >= 0 ? names.scopes()[scopeIndex] : undefined;
  const who = {
    container: container?.id ?? null, runtime: container?.runtime ?? null, cgroupId: String(e.cgroup_id),
    pid: e.pid, tid: e.tid, ppid: e.ppid, uid: e.uid, command: text(e.comm),
  };
  const base = { at: Number(e.at_ns / 1_000_000n) - taiOffsetMs, tenant: container?.tenant ?? null, flow: null };
  if (e.type === TgSysEventType.TG_SYSEV_DENIED) {
    return {
      ...base, type: 'syscall.denied', rule: `isolation[${scopeIndex}].syscalls`,
      action: e.action === TgSysAction.TG_SYS_ACT_KILLED ? 'kill' : 'audit',
      detail: { ...who, syscall: syscallName(e.nr) ?? null, nr: e.nr },
    };
  }
  if (e.type === TgSysEventType.TG_SYSEV_FILE) {
    return {
      ...base, type: 'file.sensitive', rule: `isolation[${scopeIndex}].sensitivePaths`,
      action: e.action === TgSysAction.TG_SYS_ACT_KILLED ? 'kill' : 'audit',
      detail: { ...who, path: text(e.path), syscall: syscallName(e.nr) ?? null },
    };
  }
  if (e.type !== TgSysEventType.TG_SYSEV_EXEC) return undefined;
  const path = text(e.path);
  const args = argv(e.args, e.args_len);
  const alert = alertFor(scope, path, args.argv[0]);
  if (alert === undefined && !scope?.execs.log) return undefined;
  return {
    ...base, type: alert === undefined ? 'exec' : 'exec.alert', rule: `isolation[${scopeIndex}].execs`, action: alert === undefined ? 'log' : 'alert',
    detail: { ...who, filename: path, argv: args.argv, argvTruncated: args.truncated, ...(alert === undefined ? {} : { matched: alert }) },
  };
}
