// Errors raised by the kernel layer. Every failed libbpf or syscall operation
// becomes a KernelError that names the operation, the errno and, for the
// errnos an operator actually meets, what to do about it. A program the
// verifier rejects becomes a VerifierError carrying the full log.
import { unlinkSync } from 'node:fs';
import { constants } from 'node:os';

const ERRNO_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(constants.errno).map(([name, n]) => [n, name]),
);

export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

const HINTS: Record<string, string> = {
  EPERM: 'run as root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON) and check that this program type is allowed on this kernel',
  EACCES: 'permission denied: run as root; for programs this often means the verifier refused a helper',
  ENOENT: 'the path, pin, map entry or kernel object does not exist (is bpffs mounted at /sys/fs/bpf?)',
  EBUSY: 'something is already attached there or the resource is in use; detach it or use link update',
  EEXIST: 'an object with that name/key already exists (stale pin? remove it or adopt it)',
  EINVAL: 'the kernel rejected an argument (sizes, flags or attach type)',
  E2BIG: 'too big: the map is full or the value is larger than the kernel allows',
  ENOSPC: 'out of space: the map is full or the buffer is too small',
  EOPNOTSUPP: 'not supported by this kernel, driver or map type',
  ENOTSUPP: 'not supported by this kernel, driver or map type',
  ENODEV: 'no such device: check the interface name/ifindex in the current network namespace',
};

export class KernelError extends Error {
  override readonly name = 'KernelError';
  readonly op: string;
  readonly errno: number;
  readonly code: string;
  /** libbpf's own messages captured during the failed operation, if any. */
  libbpfLog?: string;

  constructor(op: string, errno: number, detail?: string) {
    const e = Math.abs(errno);
    const code = errnoName(e);
    const hint = HINTS[code];
    super(`${op}: ${code} (${e})${detail ? `: ${detail}` : ''}${hint ? ` - ${hint}` : ''}`);
    this.op = op;
    this.errno = e;
    this.code = code;
  }
}

/** Throws a KernelError when a libbpf int return is negative; returns it otherwise. */
export function check(op: string, ret: number, detail?: string): number {
  if (ret < 0) throw new KernelError(op, -ret, detail);
  return ret;
}

const SUMMARY_LINES = 3;
const SUMMARY_CHARS = 400;
// Statistics the verifier prints last; they say nothing about why it refused.
const NOISE = /^(processed \d+ insns|verification time|stack depth|mark_read|-- END)/;

export class VerifierError extends Error {
  override readonly name = 'VerifierError';
  readonly program: string;
  readonly errno: number;
  /** The complete verifier log (log level 1). */
  readonly log: string;

  constructor(program: string, errno: number, log: string) {
    const lines = log
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.length > 0 && !NOISE.test(l));
    let tail = lines.slice(-SUMMARY_LINES).join(' | ');
    if (tail.length > SUMMARY_CHARS) tail = `...${tail.slice(-SUMMARY_CHARS)}`;
    const e = Math.abs(errno);
    super(`verifier rejected program '${program}' (${errnoName(e)}): ${tail || 'no verifier log'}`);
    this.program = program;
    this.errno = e;
    this.log = log;
  }
}

/** unlink(2) of a bpffs pin, with a KernelError instead of Node's error. */
export function unlinkPin(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    throw new KernelError(`unlink(${path})`, Math.abs((e as NodeJS.ErrnoException).errno ?? 5));
  }
}
