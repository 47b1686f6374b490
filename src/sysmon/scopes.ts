// The isolation scopes' syscall policies as the datapath holds them
// (tg_sys_scope): scope i of the policy is entry i + 1, a bitmap of the
// denied syscall numbers and whether a denied syscall kills. Pure.
import { TG_SYS_DENY_WORDS, TG_SYS_ENFORCE } from '../kernel/abi.gen.js';
import type { IsolationScope } from '../policy/index.js';
import type { SysScope } from './datapath.js';
import { syscallNumber } from './syscalls.js';

export function compileSysScopes(scopes: readonly IsolationScope[]): Map<number, SysScope> {
  return new Map(scopes.map((s, i) => {
    const deny = Array.from({ length: TG_SYS_DENY_WORDS }, () => 0n);
    for (const name of s.syscalls?.deny ?? []) {
      const nr = syscallNumber(name);
      if (nr === undefined) throw new Error(`isolation[${i}].syscalls.deny: unknown syscall "${name}"`); // the schema refuses it first
      deny[nr >> 6] = deny[nr >> 6]! | (1n << BigInt(nr & 63));
    }
    return [i + 1, { deny, flags: s.syscalls?.mode === 'enforce' ? TG_SYS_ENFORCE : 0, pad: 0 }];
  }));
}
