// BpfObject: one compiled .bpf.o, opened, configured (constants, map sizes,
// adopted pinned maps, attach types), loaded into the kernel, closed.
//
// Configuration calls are recorded and replayed, because a libbpf object
// cannot be loaded twice: an object is loaded without a verifier log first
// (cheaper), and when that fails, or the log does not fit its buffer, it is
// reopened from the file and loaded again with a log, or a bigger one.
import { existsSync } from 'node:fs';
import koffi from 'koffi';
import { datasecVars, type SectionVar } from './btf.js';
import { KernelError, VerifierError, check } from './errors.js';
import { mapInfo } from './info.js';
import { captureLibbpfLog, lastErrno, libbpf, libc, type Ptr } from './libbpf.js';
import { BpfMap } from './map.js';
import { AttachType, BpfProgram } from './program.js';

const ENOSPC = 28;
const LOG_START = 1 << 20;
const LOG_MAX = 1 << 30;

export interface OpenOptions {
  /** Object name used by libbpf for its maps (default: file name). */
  name?: string;
  /**
   * Initial verifier log buffer per program (default 1 MiB). When the log
   * does not fit, the object is reopened and loaded with 8x the room.
   */
  logSize?: number;
}

type Setting = (obj: Ptr) => void;

export type AttachTypeName = keyof typeof AttachType;

/** Differences in type, key/value size, flags and max_entries between libbpf's definition m and the map behind fd. */
function shapeDiff(m: Ptr, fd: number): string[] {
  const have = mapInfo(fd);
  const l = libbpf();
  const want = { type: l.bpf_map__type(m), keySize: l.bpf_map__key_size(m), valueSize: l.bpf_map__value_size(m), flags: l.bpf_map__map_flags(m), maxEntries: l.bpf_map__max_entries(m) };
  return (Object.keys(want) as (keyof typeof want)[]).filter((k) => want[k] !== have[k]).map((k) => `${k}: pinned ${have[k]}, object ${want[k]}`);
}

export class BpfObject {
  readonly path: string;
  readonly name: string;
  #opts: OpenOptions;
  #obj: Ptr | null;
  #loaded = false;
  #settings: Setting[] = [];
  #programs = new Map<string, BpfProgram>();
  #maps = new Map<string, BpfMap>();
  #rodata: Map<string, SectionVar> | undefined;
  #logBufs = new Map<string, Buffer>();
  #attempts = 0;

  private constructor(path: string, opts: OpenOptions, obj: Ptr) {
    this.path = path;
    this.#opts = opts;
    this.#obj = obj;
    this.name = libbpf().bpf_object__name(obj);
    for (const p of this.#each('program')) {
      const name = libbpf().bpf_program__name(p) as string;
      this.#programs.set(name, new BpfProgram(() => this.#find('program', name)));
    }
    for (const m of this.#each('map')) {
      const name = libbpf().bpf_map__name(m) as string;
      this.#maps.set(name, BpfMap.fromLibbpf(() => this.#find('map', name)));
    }
    this.#defaultAttachTypes();
  }

  /** Opens (parses, does not load) a BPF ELF object. */
  static open(path: string, opts: OpenOptions = {}): BpfObject {
    if (typeof path !== 'string' || path === '') throw new TypeError('BpfObject.open: path must be a non-empty string');
    if (opts.name !== undefined && (typeof opts.name !== 'string' || opts.name === ''))
      throw new TypeError('BpfObject.open: opts.name must be a non-empty string');
    if (opts.logSize !== undefined && (!Number.isInteger(opts.logSize) || opts.logSize < 128 || opts.logSize > LOG_MAX))
      throw new RangeError(`BpfObject.open: opts.logSize must be an integer from 128 to ${LOG_MAX}`);
    return new BpfObject(path, opts, openRaw(path, opts));
  }

  get loaded(): boolean {
    return this.#loaded;
  }

  /** How many times load() had to load the object (more than 1: the verifier log needed a bigger buffer). */
  get loadAttempts(): number {
    return this.#attempts;
  }

  #raw(): Ptr {
    if (this.#obj === null) throw new Error(`object ${this.path} is closed`);
    return this.#obj;
  }

  *#each(kind: 'program' | 'map'): Generator<Ptr> {
    const obj = this.#raw();
    const next = kind === 'program' ? libbpf().bpf_object__next_program : libbpf().bpf_object__next_map;
    for (let p: Ptr | null = next(obj, null); p !== null; p = next(obj, p)) yield p;
  }

  #find(kind: 'program' | 'map', name: string): Ptr {
    const nameOf = kind === 'program' ? libbpf().bpf_program__name : libbpf().bpf_map__name;
    for (const p of this.#each(kind)) if (nameOf(p) === name) return p;
    throw new Error(`${kind} '${name}' vanished from object ${this.path}`);
  }

  #beforeLoad(what: string): void {
    this.#raw();
    if (this.#loaded) throw new Error(`${what}: object ${this.path} is already loaded; configure it before load()`);
  }

  #record(setting: Setting): void {
    setting(this.#raw());
    this.#settings.push(setting);
  }

  // SEC("tc") programs are meant for tcx links here; the kernel wants the
  // expected attach type set at load (the tc netlink path ignores it).
  #defaultAttachTypes(): void {
    for (const p of this.#each('program')) {
      const sec = libbpf().bpf_program__section_name(p) as string;
      if ((sec === 'tc' || sec.startsWith('tc/') || sec === 'classifier') && libbpf().bpf_program__expected_attach_type(p) === 0)
        libbpf().bpf_program__set_expected_attach_type(p, AttachType.TCX_INGRESS);
    }
  }

  program(name: string): BpfProgram {
    const p = this.#programs.get(name);
    if (!p) throw new Error(`object ${this.path} has no program '${name}' (has: ${[...this.#programs.keys()].join(', ') || 'none'})`);
    return p;
  }

  map(name: string): BpfMap {
    const m = this.#maps.get(name);
    if (!m) throw new Error(`object ${this.path} has no map '${name}' (has: ${[...this.#maps.keys()].join(', ') || 'none'})`);
    return m;
  }

  programs(): BpfProgram[] {
    return [...this.#programs.values()];
  }

  /** Every map, including libbpf's internal .rodata/.bss/.data maps. */
  maps(): BpfMap[] {
    return [...this.#maps.values()];
  }

  /** Names of the `const volatile` globals setConst accepts, with their sizes. */
  constants(): SectionVar[] {
    return [...this.#rodataVars().values()];
  }

  #rodataVars(): Map<string, SectionVar> {
    this.#rodata ??= datasecVars(libbpf().bpf_object__btf(this.#raw()), '.rodata');
    return this.#rodata;
  }

  /**
   * Sets a `const volatile` global before load, so the verifier sees the
   * constant and prunes dead branches. Numbers/bigints are written little
   * endian in the variable's size; a Buffer must match the size exactly.
   */
  setConst(name: string, value: number | bigint | Buffer): void {
    this.#beforeLoad(`setConst('${name}')`);
    const v = this.#rodataVars().get(name);
    if (!v) {
      const known = [...this.#rodataVars().keys()];
      throw new Error(`setConst: object ${this.path} has no const volatile '${name}' in .rodata (has: ${known.join(', ') || 'none'})`);
    }
    const bytes = encodeConst(name, v.size, value);
    this.#record((obj) => {
      const map = libbpf().bpf_object__find_map_by_name(obj, '.rodata') as Ptr | null;
      if (map === null) throw new Error(`setConst: object ${this.path} has no .rodata map`);
      const size = [0];
      const ptr = libbpf().bpf_map__initial_value(map, size) as Ptr | null;
      if (ptr === null || Number(size[0]) < v.offset + v.size) throw new Error(`setConst('${name}'): .rodata image is missing or too small`);
      Buffer.from(koffi.view(ptr, Number(size[0]))).set(bytes, v.offset);
    });
  }

  setMaxEntries(mapName: string, n: number): void {
    this.#beforeLoad(`setMaxEntries('${mapName}')`);
    this.map(mapName);
    if (!Number.isInteger(n) || n <= 0 || n > 0xffffffff) throw new RangeError(`setMaxEntries('${mapName}'): n must be a positive 32-bit integer, got ${n}`);
    this.#record((obj) => check(`bpf_map__set_max_entries(${mapName}, ${n})`, libbpf().bpf_map__set_max_entries(this.#findIn(obj, 'map', mapName), n)));
  }

  /**
   * Makes the object use a map pinned at pinPath instead of creating its own
   * (bpf_map__reuse_fd): a restarted agent adopts its counters this way.
   * bpf_map__reuse_fd silently takes over the pinned map's definition, so
   * type, key/value size, flags and max_entries are compared here first (call
   * setMaxEntries before reuseMap).
   */
  reuseMap(mapName: string, pinPath: string): void {
    this.#beforeLoad(`reuseMap('${mapName}')`);
    this.map(mapName);
    this.#record((obj) => {
      const fd = check(`bpf_obj_get(${pinPath}) for map '${mapName}'`, libbpf().bpf_obj_get(pinPath));
      try {
        const m = this.#findIn(obj, 'map', mapName);
        const diff = shapeDiff(m, fd);
        if (diff.length > 0)
          throw new Error(`reuseMap('${mapName}', ${pinPath}): the pinned map does not match the object's definition (${diff.join('; ')}); migrate it or remove the pin`);
        check(`bpf_map__reuse_fd(${mapName}, ${pinPath})`, libbpf().bpf_map__reuse_fd(m, fd));
      } finally {
        libc().close(fd); // libbpf keeps its own dup
      }
    });
  }

  /**
   * How the map pinned at pinPath differs from this object's definition of
   * mapName as configured so far, as reuseMap compares them; empty when
   * reuseMap would accept it.
   */
  pinMismatch(mapName: string, pinPath: string): string[] {
    this.#beforeLoad(`pinMismatch('${mapName}')`);
    this.map(mapName);
    const fd = check(`bpf_obj_get(${pinPath}) for map '${mapName}'`, libbpf().bpf_obj_get(pinPath));
    try {
      return shapeDiff(this.#findIn(this.#raw(), 'map', mapName), fd);
    } finally {
      libc().close(fd);
    }
  }

  /** Sets the expected attach type (e.g. 'TCX_EGRESS', 'CGROUP_INET_INGRESS') of a program before load. */
  setAttachType(progName: string, type: AttachTypeName | number): void {
    this.#beforeLoad(`setAttachType('${progName}')`);
    this.program(progName);
    const n = typeof type === 'number' ? type : AttachType[type];
    if (n === undefined || !Number.isInteger(n) || n < 0)
      throw new RangeError(`setAttachType('${progName}'): unknown attach type '${String(type)}' (known: ${Object.keys(AttachType).join(', ')})`);
    this.#record((obj) =>
      check(`bpf_program__set_expected_attach_type(${progName})`, libbpf().bpf_program__set_expected_attach_type(this.#findIn(obj, 'program', progName), n)),
    );
  }

  /** Skips loading a program (e.g. one this kernel does not support). */
  setAutoload(progName: string, autoload: boolean): void {
    this.#beforeLoad(`setAutoload('${progName}')`);
    this.program(progName);
    this.#record((obj) => check(`bpf_program__set_autoload(${progName})`, libbpf().bpf_program__set_autoload(this.#findIn(obj, 'program', progName), autoload)));
  }

  /** Whether libbpf creates this map at load (off: a program using it must not be loaded either). */
  setAutocreate(mapName: string, autocreate: boolean): void {
    this.#beforeLoad(`setAutocreate('${mapName}')`);
    this.map(mapName);
    this.#record((obj) => check(`bpf_map__set_autocreate(${mapName})`, libbpf().bpf_map__set_autocreate(this.#findIn(obj, 'map', mapName), autocreate)));
  }

  #findIn(obj: Ptr, kind: 'program' | 'map', name: string): Ptr {
    const next = kind === 'program' ? libbpf().bpf_object__next_program : libbpf().bpf_object__next_map;
    const nameOf = kind === 'program' ? libbpf().bpf_program__name : libbpf().bpf_map__name;
    for (let p: Ptr | null = next(obj, null); p !== null; p = next(obj, p)) if (nameOf(p) === name) return p;
    throw new Error(`${kind} '${name}' not found in ${this.path}`);
  }

  /**
   * Creates the maps and loads every program. Throws VerifierError when the
   * verifier rejects a program (with its full log) and KernelError otherwise.
   */
  load(): void {
    this.#beforeLoad('load()');
    if (this.#opts.logSize === undefined) {
      // No verifier log first: writing one costs the verifier more than
      // verifying (1.1 s instead of 0.2 for netiso). A rejection is loaded
      // again below with logs, for the whole story.
      if (this.#loadOnce().r >= 0) return;
      this.#reopen();
    }
    let logSize = this.#opts.logSize ?? LOG_START;
    for (;;) {
      this.#armLogs(logSize);
      const { r, log } = this.#loadOnce();
      if (r >= 0) return;
      const failed = this.#failedProgram(log);
      // ENOSPC: verification passed but the log was cut; a log filling its
      // whole buffer: rejected, and the kernel kept only the tail
      const full = failed !== undefined && cstring(this.#logBufs.get(failed)).length >= logSize - 1;
      if (failed && (-r === ENOSPC || full) && logSize < LOG_MAX) {
        // the verifier log did not fit: reopen and load again with room
        logSize *= 8;
        this.#reopen();
        continue;
      }
      const verifierLog = failed ? cstring(this.#logBufs.get(failed)) : '';
      this.#logBufs.clear();
      if (failed && verifierLog.trim() !== '') throw new VerifierError(failed, -r, verifierLog);
      const warn = log
        .split('\n')
        .filter((l) => l.trim() !== '')
        .slice(-3)
        .map((l) => l.replace(/^libbpf: /, ''))
        .join(' | ');
      const err = new KernelError(`bpf_object__load(${this.path})`, -r, warn || undefined);
      err.libbpfLog = log;
      throw err;
    }
  }

  /** One bpf_object__load; on success the maps know they are loaded and libbpf's messages are passed on. */
  #loadOnce(): { r: number; log: string } {
    this.#attempts++;
    const { result: r, log, forward } = captureLibbpfLog(() => libbpf().bpf_object__load(this.#raw()) as number);
    this.#loaded = true; // libbpf marks the object loaded even when it failed
    if (r >= 0) {
      forward();
      this.#logBufs.clear();
      for (const m of this.#maps.values()) m.loadedInObject();
    }
    return { r, log };
  }

  #armLogs(size: number): void {
    this.#logBufs.clear();
    for (const p of this.#each('program')) {
      const name = libbpf().bpf_program__name(p) as string;
      const buf = Buffer.alloc(size);
      this.#logBufs.set(name, buf);
      check(`bpf_program__set_log_buf(${name})`, libbpf().bpf_program__set_log_buf(p, buf, size));
      check(`bpf_program__set_log_level(${name})`, libbpf().bpf_program__set_log_level(p, 1));
    }
  }

  #failedProgram(log: string): string | undefined {
    const m = /prog '([^']+)': failed to load/.exec(log);
    if (m && this.#programs.has(m[1])) return m[1];
    for (const [name, buf] of this.#logBufs) {
      if (buf[0] !== 0 && this.#fdOf(name) < 0) return name;
    }
    return undefined;
  }

  #fdOf(name: string): number {
    return libbpf().bpf_program__fd(this.#find('program', name)) as number;
  }

  #reopen(): void {
    const old = this.#raw();
    const fresh = openRaw(this.path, this.#opts);
    libbpf().bpf_object__close(old);
    this.#obj = fresh;
    this.#loaded = false;
    this.#rodata = undefined;
    this.#defaultAttachTypes();
    for (const s of this.#settings) s(fresh);
  }

  /** Unloads everything this object created (links made from it are separate). Idempotent. */
  close(): void {
    if (this.#obj === null) return;
    for (const m of this.#maps.values()) m.detachFromObject();
    libbpf().bpf_object__close(this.#obj);
    this.#obj = null;
    this.#logBufs.clear();
  }
}

function openRaw(path: string, opts: OpenOptions): Ptr {
  if (!existsSync(path)) throw new KernelError(`bpf_object__open_file(${path})`, 2, 'no such file (run `bash scripts/build-bpf`?)');
  const o = opts.name ? { sz: koffi.sizeof('bpf_object_open_opts'), object_name: opts.name } : null;
  const { result, log, forward } = captureLibbpfLog(() => {
    const obj = libbpf().bpf_object__open_file(path, o) as Ptr | null;
    return { obj, errno: lastErrno() };
  });
  if (result.obj !== null) forward();
  if (result.obj === null) {
    const last = log.trim().split('\n').filter(Boolean).at(-1)?.replace(/^libbpf: /, '');
    const err = new KernelError(`bpf_object__open_file(${path})`, result.errno || 22, last);
    err.libbpfLog = log;
    throw err;
  }
  return result.obj;
}

function cstring(buf: Buffer | undefined): string {
  if (!buf) return '';
  const z = buf.indexOf(0);
  return buf.subarray(0, z < 0 ? buf.length : z).toString('utf8');
}

function encodeConst(name: string, size: number, value: number | bigint | Buffer): Buffer {
  if (Buffer.isBuffer(value)) {
    if (value.length !== size) throw new RangeError(`setConst('${name}'): value is ${value.length} bytes, the variable is ${size}`);
    return value;
  }
  if (typeof value !== 'number' && typeof value !== 'bigint') throw new TypeError(`setConst('${name}'): value must be a number, bigint or Buffer`);
  if (typeof value === 'number' && !Number.isInteger(value)) throw new RangeError(`setConst('${name}'): ${value} is not an integer`);
  if (![1, 2, 4, 8].includes(size))
    throw new RangeError(`setConst('${name}'): the variable is ${size} bytes (a struct or array): pass a Buffer of ${size} bytes`);
  const bits = BigInt(size * 8);
  const v = BigInt(value);
  if (v < -(1n << (bits - 1n)) || v >= 1n << bits) throw new RangeError(`setConst('${name}'): ${value} does not fit in ${size} bytes`);
  return writeLE(v, size);
}

function writeLE(v: bigint, size: number): Buffer {
  const out = Buffer.alloc(size);
  let u = BigInt.asUintN(size * 8, v);
  for (let i = 0; i < size; i++) {
    out[i] = Number(u & 0xffn);
    u >>= 8n;
  }
  return out;
}
