// Reads the layout of a data section (.rodata) from an object's BTF through
// libbpf's btf__* accessors, so setConst finds each `const volatile` global's
// offset and size at runtime instead of trusting a hand-kept table.
import koffi from 'koffi';
import { libbpf, type Ptr } from './libbpf.js';

const BTF_KIND_VAR = 14;
const BTF_KIND_DATASEC = 15;
/** sizeof(struct btf_type) and sizeof(struct btf_var_secinfo) */
const BTF_TYPE_SIZE = 12;
const SECINFO_SIZE = 12;

export interface SectionVar {
  name: string;
  offset: number;
  size: number;
}

function readBytes(ptr: Ptr, n: number): Buffer {
  return Buffer.from(new Uint8Array(koffi.view(ptr, n)));
}

/** Variables of a DATASEC, by name; empty when the object has no such section. */
export function datasecVars(btf: Ptr | null, section: string): Map<string, SectionVar> {
  const out = new Map<string, SectionVar>();
  if (btf === null) return out;
  const l = libbpf();
  const id = l.btf__find_by_name_kind(btf, section, BTF_KIND_DATASEC) as number;
  if (id < 0) return out;
  const t = l.btf__type_by_id(btf, id) as Ptr | null;
  if (t === null) return out;
  const info = readBytes(t, BTF_TYPE_SIZE).readUInt32LE(4);
  const vlen = info & 0xffff;
  const secinfo = readBytes(t, BTF_TYPE_SIZE + vlen * SECINFO_SIZE);
  for (let i = 0; i < vlen; i++) {
    const o = BTF_TYPE_SIZE + i * SECINFO_SIZE;
    const varId = secinfo.readUInt32LE(o);
    const offset = secinfo.readUInt32LE(o + 4);
    const size = secinfo.readUInt32LE(o + 8);
    const vt = l.btf__type_by_id(btf, varId) as Ptr | null;
    if (vt === null) continue;
    const hdr = readBytes(vt, BTF_TYPE_SIZE);
    if (((hdr.readUInt32LE(4) >>> 24) & 0x1f) !== BTF_KIND_VAR) continue;
    const name = l.btf__name_by_offset(btf, hdr.readUInt32LE(0)) as string | null;
    if (name) out.set(name, { name, offset, size });
  }
  return out;
}
