// bpf_obj_get_info_by_fd for programs, maps and links. The info structs are
// read at fixed offsets of the stable UAPI layout (include/uapi/linux/bpf.h);
// the kernel zero-fills what it does not know and accepts a longer buffer as
// long as the tail is zero, so oversized buffers are safe.
import { closeSync } from 'node:fs';
import { check } from './errors.js';
import { libbpf } from './libbpf.js';

function infoByFd(fd: number, size: number, what: string): Buffer {
  const buf = Buffer.alloc(size);
  const len = [size];
  check(`bpf_obj_get_info_by_fd(${what} fd ${fd})`, libbpf().bpf_obj_get_info_by_fd(fd, buf, len));
  return buf;
}

function cstr(buf: Buffer, off: number, n: number): string {
  const s = buf.subarray(off, off + n);
  const z = s.indexOf(0);
  return s.subarray(0, z < 0 ? n : z).toString('utf8');
}

export interface ProgInfo {
  id: number;
  type: number;
  name: string;
  /** The kernel's hash of the program's instructions (hex): equal tags, same program. */
  tag: string;
  /** Cumulative run time; only counts while stats are enabled (see stats.ts). */
  runTimeNs: bigint;
  runCnt: bigint;
  recursionMisses: bigint;
}

export function progInfo(fd: number): ProgInfo {
  const b = infoByFd(fd, 256, 'prog');
  return {
    type: b.readUInt32LE(0),
    id: b.readUInt32LE(4),
    name: cstr(b, 64, 16),
    tag: b.subarray(8, 16).toString('hex'),
    runTimeNs: b.readBigUInt64LE(192),
    runCnt: b.readBigUInt64LE(200),
    recursionMisses: b.readBigUInt64LE(208),
  };
}

export interface MapInfo {
  id: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}

export function mapInfo(fd: number): MapInfo {
  const b = infoByFd(fd, 128, 'map');
  return {
    type: b.readUInt32LE(0),
    id: b.readUInt32LE(4),
    keySize: b.readUInt32LE(8),
    valueSize: b.readUInt32LE(12),
    maxEntries: b.readUInt32LE(16),
    flags: b.readUInt32LE(20),
    name: cstr(b, 24, 16),
  };
}

/** enum bpf_link_type */
export const LinkType = {
  RAW_TRACEPOINT: 1,
  TRACING: 2,
  CGROUP: 3,
  ITER: 4,
  NETNS: 5,
  XDP: 6,
  PERF_EVENT: 7,
  TCX: 11,
} as const;

const LINK_TYPE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(LinkType).map(([k, v]) => [v, k.toLowerCase()]),
);

export interface LinkInfo {
  id: number;
  progId: number;
  /** enum bpf_link_type */
  type: number;
  typeName: string;
  /** xdp and tcx links */
  ifindex?: number;
  /** tcx, cgroup and netns links: enum bpf_attach_type */
  attachType?: number;
  /** cgroup links */
  cgroupId?: bigint;
}

export function linkInfo(fd: number): LinkInfo {
  const b = infoByFd(fd, 128, 'link');
  const type = b.readUInt32LE(0);
  const info: LinkInfo = {
    type,
    typeName: LINK_TYPE_NAMES[type] ?? `type ${type}`,
    id: b.readUInt32LE(4),
    progId: b.readUInt32LE(8),
  };
  if (type === LinkType.XDP) info.ifindex = b.readUInt32LE(16);
  if (type === LinkType.TCX) {
    info.ifindex = b.readUInt32LE(16);
    info.attachType = b.readUInt32LE(20);
  }
  if (type === LinkType.CGROUP) {
    info.cgroupId = b.readBigUInt64LE(16);
    info.attachType = b.readUInt32LE(24);
  }
  if (type === LinkType.NETNS) info.attachType = b.readUInt32LE(20);
  return info;
}

type IdKind = 'prog' | 'map' | 'link';

/** Every id of that kind of object currently alive in the kernel. */
export function kernelIds(kind: IdKind): number[] {
  const lib = libbpf();
  const next = kind === 'prog' ? lib.bpf_prog_get_next_id : kind === 'map' ? lib.bpf_map_get_next_id : lib.bpf_link_get_next_id;
  const ids: number[] = [];
  let cur = 0;
  for (;;) {
    const out = [0];
    const r = next(cur, out) as number;
    if (r === -2) break; // ENOENT: end of the id space
    check(`bpf_${kind}_get_next_id`, r);
    ids.push(out[0]);
    cur = out[0];
  }
  return ids;
}

/** progInfo of a program known only by id (e.g. behind a pinned link). */
export function progInfoById(id: number): ProgInfo {
  const fd = libbpf().bpf_prog_get_fd_by_id(id) as number;
  check(`bpf_prog_get_fd_by_id(${id})`, fd);
  try {
    return progInfo(fd);
  } finally {
    closeSync(fd);
  }
}
