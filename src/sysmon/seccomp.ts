// Seccomp profiles from what a container was seen doing. Pure: the caller
// reads the syscall store, this turns the syscall numbers into an OCI
// runtime-spec seccomp object (config-linux.md, "Seccomp") that allows
// exactly the observed syscalls on this architecture and answers every
// other syscall with EPERM. The profile names syscalls, so numbers the
// table has no name for (TG_SYSCALL_OTHER, where the kernel counts what lies
// beyond the table, or a number a newer kernel added) cannot be allowed:
// they are returned beside the profile for the caller to warn about.
import { SECCOMP_ARCH, syscallName } from './syscalls.js';

/** The actions of the OCI runtime spec (libseccomp's SCMP_ACT_*). */
export type SeccompAction =
  | 'SCMP_ACT_KILL'
  | 'SCMP_ACT_KILL_PROCESS'
  | 'SCMP_ACT_KILL_THREAD'
  | 'SCMP_ACT_TRAP'
  | 'SCMP_ACT_ERRNO'
  | 'SCMP_ACT_TRACE'
  | 'SCMP_ACT_ALLOW'
  | 'SCMP_ACT_LOG'
  | 'SCMP_ACT_NOTIFY';

/** A condition on one syscall argument (OCI `linux.seccomp.syscalls[].args[]`). */
export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: 'SCMP_CMP_NE' | 'SCMP_CMP_LT' | 'SCMP_CMP_LE' | 'SCMP_CMP_EQ' | 'SCMP_CMP_GE' | 'SCMP_CMP_GT' | 'SCMP_CMP_MASKED_EQ';
}

/** A rule: these syscalls get this action (OCI `linux.seccomp.syscalls[]`). */
export interface SeccompRule {
  names: string[];
  action: SeccompAction;
  errnoRet?: number;
  args?: SeccompArg[];
}

/** An OCI runtime-spec seccomp profile (`linux.seccomp`), as docker/podman `--security-opt seccomp=FILE` take it. */
export interface SeccompProfile {
  defaultAction: SeccompAction;
  /** The errno of an SCMP_ACT_ERRNO default action (EPERM when absent). */
  defaultErrnoRet?: number;
  /** libseccomp architecture names (SCMP_ARCH_*). */
  architectures: string[];
  syscalls: SeccompRule[];
}

export interface GeneratedProfile {
  profile: SeccompProfile;
  /**
   * Observed syscall numbers without a name in the table, ascending: not in
   * the profile, so denied under it. Empty when every observed number has
   * a name.
   */
  unnamed: number[];
}

/** EPERM: what a syscall the container was never seen making returns under the profile. */
const EPERM = 1;

/**
 * The profile allowing exactly the observed syscalls (each number once,
 * whatever its count), names sorted; everything else fails with EPERM.
 * Nothing observed gives a profile with no rules: it denies everything,
 * even the execve that starts the container.
 */
export function seccompProfile(seen: ReadonlyArray<{ nr: number }>): GeneratedProfile {
  const names = new Set<string>();
  const unnamed = new Set<number>();
  for (const { nr } of seen) {
    const name = syscallName(nr);
    if (name === undefined) unnamed.add(nr);
    else names.add(name);
  }
  const allowed = [...names].sort();
  return {
    profile: {
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: EPERM,
      architectures: [SECCOMP_ARCH],
      syscalls: allowed.length ? [{ names: allowed, action: 'SCMP_ACT_ALLOW' }] : [],
    },
    unnamed: [...unnamed].sort((a, b) => a - b),
  };
}
