// BpfProgram: one program of a BpfObject, and the ways tollgate attaches it.
// Every attach returns a BpfLink (a real bpf_link, never a legacy netlink or
// prog_attach attachment), so every hook can be pinned and updated atomically.
import { closeSync, openSync, constants as fsc } from 'node:fs';
import koffi from 'koffi';
import { KernelError, check } from './errors.js';
import { BpfLink } from './link.js';
import { captureLibbpfLog, lastErrno, libbpf, libc, type Ptr } from './libbpf.js';
import { progInfo, type ProgInfo } from './info.js';

/** enum bpf_attach_type values tollgate uses. */
export const AttachType = {
  CGROUP_INET_INGRESS: 0,
  CGROUP_INET_EGRESS: 1,
  CGROUP_INET_SOCK_CREATE: 2,
  CGROUP_SOCK_OPS: 3,
  CGROUP_INET4_CONNECT: 10,
  CGROUP_INET6_CONNECT: 11,
  XDP: 37,
  TCX_INGRESS: 46,
  TCX_EGRESS: 47,
} as const;

const XDP_FLAGS_SKB_MODE = 1 << 1;
const XDP_FLAGS_DRV_MODE = 1 << 2;
/** sizeof(struct bpf_link_create_opts) in libbpf 1.1 */
const LINK_CREATE_OPTS_SIZE = 64;

/** enum bpf_prog_type BPF_PROG_TYPE_RAW_TRACEPOINT */
const PROG_TYPE_RAW_TRACEPOINT = 17;

export type XdpMode = 'native' | 'generic';
export type TcxDirection = 'ingress' | 'egress';

export interface TestRunOptions {
  data?: Buffer;
  ctx?: Buffer;
  /** Runs the program this many times (duration is the average); default 1. */
  repeat?: number;
  /** Room for the packet the program leaves behind; default data.length + 256. */
  dataOutSize?: number;
  /** Room for the context the program leaves behind; default ctx.length. */
  ctxOutSize?: number;
}

export interface TestRunResult {
  retval: number;
  /** Average ns per run as measured by the kernel. */
  duration: number;
  data: Buffer;
  ctx: Buffer;
}

export class BpfProgram {
  readonly name: string;
  readonly sectionName: string;
  #resolve: () => Ptr | null;

  /** @internal use BpfObject.program() */
  constructor(resolve: () => Ptr | null) {
    this.#resolve = resolve;
    const h = this.#handle();
    this.name = libbpf().bpf_program__name(h);
    this.sectionName = libbpf().bpf_program__section_name(h);
  }

  #handle(): Ptr {
    const h = this.#resolve();
    if (h === null) throw new Error(`program '${this.name}': its object is closed`);
    return h;
  }

  get fd(): number {
    const fd = libbpf().bpf_program__fd(this.#handle()) as number;
    if (fd < 0) throw new Error(`program '${this.name}' is not loaded (call obj.load() first)`);
    return fd;
  }

  /** enum bpf_prog_type */
  get type(): number {
    return libbpf().bpf_program__type(this.#handle());
  }

  get expectedAttachType(): number {
    return libbpf().bpf_program__expected_attach_type(this.#handle());
  }

  /** id, name and (with stats enabled) run time/count as the kernel reports them. */
  info(): ProgInfo {
    return progInfo(this.fd);
  }

  /** Attaches to an interface's XDP hook: 'generic' (skb, any device) or 'native' (driver). */
  attachXdp(ifindex: number, mode: XdpMode): BpfLink {
    checkIfindex(ifindex);
    if (mode !== 'native' && mode !== 'generic') throw new RangeError(`attachXdp: mode must be 'native' or 'generic', got '${String(mode)}'`);
    const opts = Buffer.alloc(LINK_CREATE_OPTS_SIZE);
    opts.writeBigUInt64LE(BigInt(LINK_CREATE_OPTS_SIZE), 0);
    opts.writeUInt32LE(mode === 'native' ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE, 8);
    const fd = checkLink(`bpf_link_create(xdp ${mode}, prog ${this.name}, ifindex ${ifindex})`, ifindex, libbpf().bpf_link_create(this.fd, ifindex, AttachType.XDP, opts));
    return new BpfLink(fd, null, `xdp/${mode} ${this.name} on ifindex ${ifindex}`);
  }

  /**
   * Attaches a SEC("tc") program through a tcx link (kernel 6.6+). BpfObject
   * sets the expected attach type of every SEC("tc") program to tcx ingress
   * at open; the kernel accepts either tcx direction for sched_cls programs.
   */
  attachTcx(ifindex: number, direction: TcxDirection): BpfLink {
    checkIfindex(ifindex);
    if (direction !== 'ingress' && direction !== 'egress')
      throw new RangeError(`attachTcx: direction must be 'ingress' or 'egress', got '${String(direction)}'`);
    const type = direction === 'ingress' ? AttachType.TCX_INGRESS : AttachType.TCX_EGRESS;
    const fd = checkLink(`bpf_link_create(tcx ${direction}, prog ${this.name}, ifindex ${ifindex})`, ifindex, libbpf().bpf_link_create(this.fd, ifindex, type, null));
    return new BpfLink(fd, null, `tcx/${direction} ${this.name} on ifindex ${ifindex}`);
  }

  /** Attaches a cgroup program (cgroup_skb, cgroup/connect4, ...) to a cgroup v2 directory. */
  attachCgroup(cgroupPath: string): BpfLink {
    if (typeof cgroupPath !== 'string' || cgroupPath === '') throw new TypeError('attachCgroup: cgroupPath must be a non-empty path');
    let dirFd: number;
    try {
      dirFd = openSync(cgroupPath, fsc.O_RDONLY | fsc.O_DIRECTORY);
    } catch (e) {
      throw new KernelError(`open(cgroup ${cgroupPath})`, Math.abs((e as NodeJS.ErrnoException).errno ?? 2));
    }
    try {
      return this.#libbpfLink(`cgroup ${this.name} on ${cgroupPath}`, (h) => libbpf().bpf_program__attach_cgroup(h, dirFd));
    } finally {
      closeSync(dirFd);
    }
  }

  /** Attaches by section name (tp/, tracepoint/, tp_btf/, raw_tp/, ...). */
  attach(): BpfLink {
    try {
      return this.#libbpfLink(`${this.sectionName} ${this.name}`, (h) => libbpf().bpf_program__attach(h));
    } catch (e) {
      if (e instanceof KernelError && e.errno === 95)
        throw new KernelError(e.op, 95, `SEC("${this.sectionName}") has no auto-attach; use attachXdp, attachTcx or attachCgroup`);
      throw e;
    }
  }

  #libbpfLink(what: string, make: (h: Ptr) => Ptr | null): BpfLink {
    const h = this.#handle();
    const { result, log, forward } = captureLibbpfLog(() => {
      const link = make(h);
      return { link, errno: lastErrno() };
    });
    if (result.link !== null) forward();
    if (result.link === null) {
      const lines = log.trim().split('\n').filter(Boolean);
      const err = new KernelError(`attach ${what}`, result.errno || 22, lines.at(-1)?.replace(/^libbpf: /, ''));
      err.libbpfLog = log;
      throw err;
    }
    const fd = libbpf().bpf_link__fd(result.link) as number;
    return new BpfLink(fd, result.link, what);
  }

  /** Runs the program once (or `repeat` times) on the given packet/context (BPF_PROG_TEST_RUN). */
  testRun(opts: TestRunOptions = {}): TestRunResult {
    const { data, ctx } = opts;
    if (data !== undefined && !Buffer.isBuffer(data)) throw new TypeError('testRun: data must be a Buffer');
    if (ctx !== undefined && !Buffer.isBuffer(ctx)) throw new TypeError('testRun: ctx must be a Buffer');
    const repeat = opts.repeat ?? 1;
    if (!Number.isInteger(repeat) || repeat < 1) throw new RangeError(`testRun: repeat must be a positive integer, got ${repeat}`);
    // The kernel runs a raw tracepoint program once, on the context alone: it
    // refuses repeat, data and an output context for that type.
    const rawTp = this.type === PROG_TYPE_RAW_TRACEPOINT;
    if (rawTp && (repeat !== 1 || data || opts.ctxOutSize)) throw new RangeError('testRun: a raw_tp program runs once on ctx alone (no repeat, data or ctxOutSize)');
    const dataOutSize = opts.dataOutSize ?? (data ? data.length + 256 : 0);
    const ctxOutSize = opts.ctxOutSize ?? (ctx && !rawTp ? ctx.length : 0);
    for (const [field, v] of [['dataOutSize', dataOutSize], ['ctxOutSize', ctxOutSize]] as const)
      if (!Number.isInteger(v) || v < 0) throw new RangeError(`testRun: ${field} must be a non-negative integer, got ${v}`);
    const dataOut = dataOutSize > 0 ? Buffer.alloc(dataOutSize) : null;
    const ctxOut = ctxOutSize > 0 ? Buffer.alloc(ctxOutSize) : null;
    const o = {
      sz: koffi.sizeof('bpf_test_run_opts'),
      data_in: data && data.length ? data : null,
      data_out: dataOut,
      data_size_in: data?.length ?? 0,
      data_size_out: dataOutSize,
      ctx_in: ctx && ctx.length ? ctx : null,
      ctx_out: ctxOut,
      ctx_size_in: ctx?.length ?? 0,
      ctx_size_out: ctxOutSize,
      retval: 0,
      repeat: rawTp ? 0 : repeat,
      duration: 0,
      flags: 0,
      cpu: 0,
      batch_size: 0,
    };
    const r = libbpf().bpf_prog_test_run_opts(this.fd, o) as number;
    if (r === -28) {
      throw new KernelError(`bpf_prog_test_run_opts(${this.name})`, 28, `output needs ${o.data_size_out} data / ${o.ctx_size_out} ctx bytes; raise dataOutSize/ctxOutSize`);
    }
    check(`bpf_prog_test_run_opts(${this.name})`, r);
    return {
      retval: o.retval,
      duration: o.duration,
      data: dataOut ? Buffer.from(dataOut.subarray(0, Math.min(o.data_size_out, dataOutSize))) : Buffer.alloc(0),
      ctx: ctxOut ? Buffer.from(ctxOut.subarray(0, Math.min(o.ctx_size_out, ctxOutSize))) : Buffer.alloc(0),
    };
  }
}

/** Like check(), but explains the usual cause of a failed interface attach: the ifindex is from another netns. */
function checkLink(op: string, ifindex: number, ret: number): number {
  if (ret >= 0) return ret;
  const name = Buffer.alloc(16);
  const exists = libc().if_indextoname(ifindex, name) !== null;
  throw new KernelError(op, -ret, exists ? undefined : `no interface with ifindex ${ifindex} in this thread's network namespace (enterNetns first?)`);
}

function checkIfindex(ifindex: number): void {
  if (!Number.isInteger(ifindex) || ifindex <= 0) throw new RangeError(`ifindex must be a positive integer, got ${ifindex}`);
}
