// The isolation scopes' syscall policies as the datapath holds them: scope
// i of the policy is entry i + 1 of tg_sys_scope (a bitmap of the denied
// syscall numbers, whether a denied syscall kills, whether opens are
// checked) and owns its sensitive path prefixes in tg_sys_paths. Pure.
import { TG_SYS_DENY_WORDS, TG_SYS_ENFORCE, TG_SYS_PATHS, TG_SYS_PREFIX_LEN } from '../kernel/abi.gen.js';
import type { IsolationScope } from '../policy/index.js';
import type { SysPathKey, SysPathRule, SysScope } from './datapath.js';
import { syscallNumber } from './syscalls.js';

export function compileSysScopes(scopes: readonly IsolationScope[]): Map<number, SysScope> {
  return new Map(scopes.map((s, i) => {
    const deny = Array.from({ length: TG_SYS_DENY_WORDS }, () => 0n);
    for (const name of s.syscalls?.deny ?? []) {
      const nr = syscallNumber(name);
      if (nr === undefined) throw new Error(`isolation[${i}].syscalls.deny: unknown syscall "${name}"`); // the schema refuses it first
      deny[nr >> 6] = deny[nr >> 6]! | (1n << BigInt(nr & 63));
    }
    const flags = (s.syscalls?.mode === 'enforce' ? TG_SYS_ENFORCE : 0) | (s.sensitivePaths ? TG_SYS_PATHS : 0);
    return [i + 1, { deny, flags, pad: 0 }];
  }));
}

/** The sensitive path prefixes of every scope, as tg_sys_paths keys (the path's bytes, no NUL) and rules. */
export function compileSysPaths(scopes: readonly IsolationScope[]): Array<[SysPathKey, SysPathRule]> {
  return scopes.flatMap((s, i) => (s.sensitivePaths?.paths ?? []).map((p): [SysPathKey, SysPathRule] => {
    const bytes = Buffer.from(p);
    if (bytes.length >= TG_SYS_PREFIX_LEN) throw new Error(`isolation[${i}].sensitivePaths: "${p}" is longer than ${TG_SYS_PREFIX_LEN - 1} bytes`);
    const path = Array.from({ length: TG_SYS_PREFIX_LEN }, (_, j) => ((bytes[j] ?? 0) << 24) >> 24); // char is signed
    return [{ prefixlen: (4 + bytes.length) * 8, scope: i + 1, path }, { flags: s.sensitivePaths!.mode === 'enforce' ? TG_SYS_ENFORCE : 0, pad: 0 }];
  }));
}
