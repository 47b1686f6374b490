// The koffi bindings to libbpf.so.1 and the few libc calls the kernel layer
// needs. This is the only file that declares foreign functions; everything is
// bound lazily on first use so importing src/kernel costs nothing on hosts
// (or unit tests) that never touch the kernel.
//
// Conventions of libbpf 1.x that callers rely on: int-returning calls return
// -errno on failure (libbpf_err), pointer-returning calls return NULL and set
// errno, which koffi.errno() reads back right after the call.
import { isMainThread } from 'node:worker_threads';
import koffi, { type LibraryHandle } from 'koffi';

export type Ptr = bigint;

export type LogLevel = 'warn' | 'info' | 'debug';
export type Logger = (level: LogLevel, message: string) => void;

const LEVELS: readonly LogLevel[] = ['warn', 'info', 'debug'];

/* eslint-disable @typescript-eslint/no-explicit-any */
type Fn = (...args: any[]) => any;

function bindLibbpf(lib: LibraryHandle) {
  const f = (decl: string): Fn => lib.func(decl);
  return {
    libbpf_set_print: f('void *libbpf_set_print(libbpf_print_fn_t *fn)'),
    libbpf_num_possible_cpus: f('int libbpf_num_possible_cpus(void)'),

    bpf_object__open_file: f('void *bpf_object__open_file(const char *path, bpf_object_open_opts *opts)'),
    bpf_object__load: f('int bpf_object__load(void *obj)'),
    bpf_object__close: f('void bpf_object__close(void *obj)'),
    bpf_object__name: f('const char *bpf_object__name(void *obj)'),
    bpf_object__next_program: f('void *bpf_object__next_program(void *obj, void *prev)'),
    bpf_object__next_map: f('void *bpf_object__next_map(void *obj, void *prev)'),
    bpf_object__find_map_by_name: f('void *bpf_object__find_map_by_name(void *obj, const char *name)'),
    bpf_object__btf: f('void *bpf_object__btf(void *obj)'),

    btf__find_by_name_kind: f('int btf__find_by_name_kind(void *btf, const char *name, uint32_t kind)'),
    btf__type_by_id: f('void *btf__type_by_id(void *btf, uint32_t id)'),
    btf__name_by_offset: f('const char *btf__name_by_offset(void *btf, uint32_t off)'),

    bpf_program__name: f('const char *bpf_program__name(void *prog)'),
    bpf_program__section_name: f('const char *bpf_program__section_name(void *prog)'),
    bpf_program__fd: f('int bpf_program__fd(void *prog)'),
    bpf_program__type: f('int bpf_program__type(void *prog)'),
    bpf_program__set_log_buf: f('int bpf_program__set_log_buf(void *prog, void *buf, size_t size)'),
    bpf_program__set_log_level: f('int bpf_program__set_log_level(void *prog, uint32_t level)'),
    bpf_program__expected_attach_type: f('int bpf_program__expected_attach_type(void *prog)'),
    bpf_program__set_expected_attach_type: f('int bpf_program__set_expected_attach_type(void *prog, int type)'),
    bpf_program__set_autoload: f('int bpf_program__set_autoload(void *prog, bool autoload)'),
    bpf_map__set_autocreate: f('int bpf_map__set_autocreate(void *map, bool autocreate)'),
    libbpf_major_version: f('uint32_t libbpf_major_version()'),
    libbpf_minor_version: f('uint32_t libbpf_minor_version()'),
    bpf_program__attach: f('void *bpf_program__attach(void *prog)'),
    bpf_program__attach_cgroup: f('void *bpf_program__attach_cgroup(void *prog, int cgroup_fd)'),

    bpf_map__name: f('const char *bpf_map__name(void *map)'),
    bpf_map__fd: f('int bpf_map__fd(void *map)'),
    bpf_map__type: f('int bpf_map__type(void *map)'),
    bpf_map__key_size: f('uint32_t bpf_map__key_size(void *map)'),
    bpf_map__value_size: f('uint32_t bpf_map__value_size(void *map)'),
    bpf_map__max_entries: f('uint32_t bpf_map__max_entries(void *map)'),
    bpf_map__map_flags: f('uint32_t bpf_map__map_flags(void *map)'),
    bpf_map__set_max_entries: f('int bpf_map__set_max_entries(void *map, uint32_t n)'),
    bpf_map__reuse_fd: f('int bpf_map__reuse_fd(void *map, int fd)'),
    bpf_map__initial_value: f('void *bpf_map__initial_value(void *map, _Out_ size_t *psize)'),
    bpf_map__is_internal: f('bool bpf_map__is_internal(void *map)'),

    bpf_link__fd: f('int bpf_link__fd(void *link)'),
    bpf_link__destroy: f('int bpf_link__destroy(void *link)'),

    bpf_link_create: f('int bpf_link_create(int prog_fd, int target_fd, int attach_type, void *opts)'),
    bpf_link_update: f('int bpf_link_update(int link_fd, int new_prog_fd, void *opts)'),
    bpf_link_detach: f('int bpf_link_detach(int link_fd)'),
    bpf_obj_pin: f('int bpf_obj_pin(int fd, const char *path)'),
    bpf_obj_get: f('int bpf_obj_get(const char *path)'),
    bpf_obj_get_info_by_fd: f('int bpf_obj_get_info_by_fd(int fd, void *info, _Inout_ uint32_t *len)'),
    bpf_prog_get_next_id: f('int bpf_prog_get_next_id(uint32_t start, _Out_ uint32_t *next)'),
    bpf_map_get_next_id: f('int bpf_map_get_next_id(uint32_t start, _Out_ uint32_t *next)'),
    bpf_link_get_next_id: f('int bpf_link_get_next_id(uint32_t start, _Out_ uint32_t *next)'),
    bpf_prog_get_fd_by_id: f('int bpf_prog_get_fd_by_id(uint32_t id)'),

    bpf_map_lookup_elem: f('int bpf_map_lookup_elem(int fd, const void *key, void *value)'),
    bpf_map_update_elem: f('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    bpf_map_delete_elem: f('int bpf_map_delete_elem(int fd, const void *key)'),
    bpf_map_get_next_key: f('int bpf_map_get_next_key(int fd, const void *key, void *next)'),
    bpf_map_update_batch: f('int bpf_map_update_batch(int fd, const void *keys, const void *values, _Inout_ uint32_t *count, void *opts)'),
    bpf_map_delete_batch: f('int bpf_map_delete_batch(int fd, const void *keys, _Inout_ uint32_t *count, void *opts)'),
    bpf_map_lookup_batch: f(
      'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, _Inout_ uint32_t *count, void *opts)',
    ),

    bpf_prog_test_run_opts: f('int bpf_prog_test_run_opts(int prog_fd, _Inout_ bpf_test_run_opts *opts)'),
    bpf_enable_stats: f('int bpf_enable_stats(int type)'),

    ring_buffer__new: f('void *ring_buffer__new(int map_fd, ring_buffer_sample_fn *cb, void *ctx, void *opts)'),
    ring_buffer__poll: f('int ring_buffer__poll(void *rb, int timeout_ms)'),
    ring_buffer__consume: f('int ring_buffer__consume(void *rb)'),
    ring_buffer__free: f('void ring_buffer__free(void *rb)'),
  };
}

function bindLibc(lib: LibraryHandle) {
  const f = (decl: string): Fn => lib.func(decl);
  return {
    vsnprintf: f('int vsnprintf(_Out_ uint8_t *buf, size_t n, const char *fmt, void *ap)'),
    if_nametoindex: f('uint32_t if_nametoindex(const char *name)'),
    if_indextoname: f('const char *if_indextoname(uint32_t ifindex, _Out_ uint8_t *name)'),
    setns: f('int setns(int fd, int nstype)'),
    close: f('int close(int fd)'),
    mount: f('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)'),
    clock_gettime: f('int clock_gettime(int clk, _Out_ uint8_t *ts)'),
  };
}

export type Libbpf = ReturnType<typeof bindLibbpf>;
export type Libc = ReturnType<typeof bindLibc>;

let types = false;
function declareTypes(): void {
  if (types) return;
  koffi.proto('int libbpf_print_fn_t(int level, const char *fmt, void *ap)');
  koffi.proto('int ring_buffer_sample_fn(void *ctx, void *data, size_t size)');
  // Only the leading fields we use; libbpf accepts a shorter sz (older caller).
  koffi.struct('bpf_object_open_opts', { sz: 'size_t', object_name: 'const char *' });
  koffi.struct('bpf_test_run_opts', {
    sz: 'size_t',
    data_in: 'void *',
    data_out: 'void *',
    data_size_in: 'uint32_t',
    data_size_out: 'uint32_t',
    ctx_in: 'void *',
    ctx_out: 'void *',
    ctx_size_in: 'uint32_t',
    ctx_size_out: 'uint32_t',
    retval: 'uint32_t',
    repeat: 'int',
    duration: 'uint32_t',
    flags: 'uint32_t',
    cpu: 'uint32_t',
    batch_size: 'uint32_t',
  });
  types = true;
}

let libbpfCache: Libbpf | undefined;
let libcCache: Libc | undefined;

/** The libbpf bindings; loads libbpf.so.1 and installs the print callback on first use. */
export function libbpf(): Libbpf {
  if (!libbpfCache) {
    declareTypes();
    let handle: LibraryHandle;
    try {
      handle = koffi.load('libbpf.so.1');
    } catch (e) {
      throw new Error(`cannot load libbpf.so.1 (install Debian package libbpf1): ${(e as Error).message}`);
    }
    libbpfCache = bindLibbpf(handle);
    // libbpf has one process-wide print hook: the main thread owns it, since a
    // callback registered in a worker dies with that worker.
    if (isMainThread) installPrint(libbpfCache);
  }
  return libbpfCache;
}

export function libc(): Libc {
  if (!libcCache) {
    declareTypes();
    libcCache = bindLibc(koffi.load('libc.so.6'));
  }
  return libcCache;
}

/** errno of the last foreign call on this thread (for NULL-returning libbpf calls). */
export function lastErrno(): number {
  return koffi.errno();
}

// ---- print callback -------------------------------------------------------

let logger: Logger = (level, message) => {
  if (level === 'warn') process.emitWarning(message.trimEnd(), { code: 'LIBBPF' });
};
interface Capture {
  lines: string[];
  /** warnings held back until we know whether they end up in a thrown error */
  warnings: string[];
}
let capture: Capture | undefined;
let printCb: bigint | undefined;
const fmtBuf = Buffer.alloc(16384);

/**
 * Replaces the sink for libbpf's warnings (debug and info messages are only
 * captured, never forwarded). Returns the previous logger.
 */
export function setLibbpfLogger(next: Logger): Logger {
  const prev = logger;
  logger = next;
  return prev;
}

/**
 * Runs fn while collecting every libbpf message (all levels); returns the
 * result and the text. Used to attach libbpf's own explanation to errors.
 * Warnings are forwarded to the logger only if the caller does not turn them
 * into an error: call the returned `forward()` when the operation succeeded.
 */
export function captureLibbpfLog<T>(fn: () => T): { result: T; log: string; forward: () => void } {
  const outer = capture;
  const mine: Capture = { lines: [], warnings: [] };
  capture = mine;
  try {
    const result = fn();
    return { result, log: mine.lines.join(''), forward: () => mine.warnings.forEach((w) => emit('warn', w)) };
  } finally {
    capture = outer;
    if (outer) {
      outer.lines.push(...mine.lines);
      outer.warnings.push(...mine.warnings);
    }
  }
}

function emit(level: LogLevel, text: string): void {
  try {
    logger(level, text);
  } catch {
    // a broken logger must never unwind through libbpf's C frames
  }
}

function installPrint(lib: Libbpf): void {
  // A registered callback: libbpf keeps the pointer for the life of the process.
  // va_list is an array type on x86_64, so it arrives as a plain pointer that
  // libc's vsnprintf consumes directly.
  printCb = koffi.register(
    (level: number, fmt: string, ap: bigint): number => {
      const n = libc().vsnprintf(fmtBuf, fmtBuf.length, fmt, ap) as number;
      const text = fmtBuf.subarray(0, Math.max(0, Math.min(n, fmtBuf.length - 1))).toString('utf8');
      const lvl = LEVELS[level] ?? 'debug';
      if (capture) {
        capture.lines.push(text);
        if (lvl === 'warn') capture.warnings.push(text);
      } else if (lvl === 'warn') {
        emit(lvl, text);
      }
      return 0;
    },
    'libbpf_print_fn_t *',
  );
  lib.libbpf_set_print(printCb);
}

/** libbpf_num_possible_cpus(): the per-CPU map value multiplier. */
export function numPossibleCpus(): number {
  const n = libbpf().libbpf_num_possible_cpus() as number;
  if (n <= 0) throw new Error(`libbpf_num_possible_cpus failed: ${n}`);
  return n;
}

/** major.minor of the libbpf that was loaded (libbpf_major_version/minor_version). */
export function libbpfVersion(): string {
  const l = libbpf();
  return `${l.libbpf_major_version() as number}.${l.libbpf_minor_version() as number}`;
}
