// Syscall names and numbers of the architecture the agent runs on. Pure data:
// the policy validator checks names against it, the monitor names counts by
// it, the seccomp generator writes profiles with it.
import { X86_64_SYSCALLS } from './syscalls.gen.js';

const BY_NUMBER = new Map<number, string>(X86_64_SYSCALLS);
const BY_NAME = new Map<string, number>(X86_64_SYSCALLS.map(([nr, name]) => [name, nr]));

/** The OCI / libseccomp name of the architecture the table describes. */
export const SECCOMP_ARCH = 'SCMP_ARCH_X86_64';

/** Throws unless the agent runs where the table applies (numbers differ per architecture). */
export function assertSyscallArch(arch: string = process.arch): void {
  if (arch !== 'x64') throw new Error(`syscall monitoring knows the x86_64 syscall table only; this is ${arch}`);
}

export function syscallName(nr: number): string | undefined {
  return BY_NUMBER.get(nr);
}

export function syscallNumber(name: string): number | undefined {
  return BY_NAME.get(name);
}

/** Every known name, for "did you mean" hints. */
export function syscallNames(): string[] {
  return [...BY_NAME.keys()];
}
