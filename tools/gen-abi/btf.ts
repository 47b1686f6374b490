// Reads the BTF of compiled BPF objects through `bpftool btf dump ... format raw -j`
// and resolves the tg_* structs and enums into a small, self-contained model.
import { execFileSync } from 'node:child_process';

/** One BTF type as bpftool prints it (only the fields gen-abi needs). */
export interface RawBtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  nr_bits?: number;
  encoding?: string;
  members?: { name: string; type_id: number; bits_offset: number; bitfield_size?: number }[];
  values?: { name: string; val: number | string }[];
}

/** What a struct member is, after typedefs, const and volatile are peeled off. */
export type FieldType =
  | { kind: 'int'; size: 1 | 2 | 4 | 8; signed: boolean; cName: string }
  | { kind: 'bytes'; length: number }
  | { kind: 'array'; elem: FieldType; length: number }
  | { kind: 'struct'; name: string };

export interface StructField {
  name: string;
  offset: number;
  type: FieldType;
}

export interface AbiStruct {
  name: string;
  size: number;
  fields: StructField[];
}

export interface AbiEnum {
  name: string;
  size: number;
  values: { name: string; value: bigint }[];
}

export interface Abi {
  structs: AbiStruct[];
  enums: AbiEnum[];
}

export class AbiError extends Error {
  override name = 'AbiError';
}

export function dumpBtf(objectPath: string): RawBtfType[] {
  let out: string;
  try {
    out = execFileSync('bpftool', ['btf', 'dump', 'file', objectPath, 'format', 'raw', '-j'], {
      encoding: 'utf8',
      maxBuffer: 512 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new AbiError(`bpftool could not dump the BTF of ${objectPath}: ${(e.stderr ?? e.message).trim()}`);
  }
  const parsed = JSON.parse(out) as { types?: RawBtfType[] };
  if (!Array.isArray(parsed.types)) throw new AbiError(`bpftool printed no "types" for ${objectPath}`);
  return parsed.types;
}

const PREFIX = 'tg_';

/**
 * Extracts every struct and enum of one object's BTF whose name starts with
 * prefix (default tg_, the ABI; tests pass another prefix to read private
 * structs such as the parser's pkt_meta).
 */
export function abiFromBtf(types: readonly RawBtfType[], source: string, prefix = PREFIX): Abi {
  const byId = new Map<number, RawBtfType>();
  for (const t of types) byId.set(t.id, t);
  const get = (id: number, what: string): RawBtfType => {
    const t = byId.get(id);
    if (!t) throw new AbiError(`${source}: ${what} refers to BTF type id ${id}, which does not exist`);
    return t;
  };

  const resolve = (id: number, where: string): FieldType => {
    let t = get(id, where);
    const cName = t.name; // the outermost name, e.g. __u32 rather than unsigned int
    while (t.kind === 'TYPEDEF' || t.kind === 'CONST' || t.kind === 'VOLATILE' || t.kind === 'RESTRICT') {
      t = get(t.type_id!, where);
    }
    switch (t.kind) {
      case 'INT': {
        const size = t.size!;
        if (![1, 2, 4, 8].includes(size) || t.nr_bits !== size * 8) {
          throw new AbiError(`${where}: integer type ${cName} of ${t.nr_bits} bits in ${size} bytes is not supported`);
        }
        return { kind: 'int', size: size as 1 | 2 | 4 | 8, signed: t.encoding === 'SIGNED', cName };
      }
      case 'ENUM':
      case 'ENUM64': {
        const size = t.size!;
        if (![1, 2, 4, 8].includes(size)) throw new AbiError(`${where}: enum of ${size} bytes is not supported`);
        return { kind: 'int', size: size as 1 | 2 | 4 | 8, signed: t.encoding === 'SIGNED', cName: `enum ${t.name}` };
      }
      case 'ARRAY': {
        const elem = resolve(t.type_id!, `${where}[]`);
        const length = t.nr_elems!;
        if (elem.kind === 'int' && elem.size === 1 && !elem.signed) return { kind: 'bytes', length };
        return { kind: 'array', elem, length };
      }
      case 'STRUCT':
        // The kernel's lock word in a map value: opaque to userspace (a lookup copies it out zeroed).
        if (t.name === 'bpf_spin_lock' && t.size === 4) return { kind: 'bytes', length: 4 };
        if (!t.name.startsWith(prefix)) {
          throw new AbiError(`${where}: embeds struct ${t.name || '(anonymous)'}, but only ${prefix}* structs are part of the ABI`);
        }
        return { kind: 'struct', name: t.name };
      default:
        throw new AbiError(`${where}: ${t.kind} members are not supported in the ABI (fixed-width integers, arrays and tg_* structs only)`);
    }
  };

  const structs: AbiStruct[] = [];
  const enums: AbiEnum[] = [];
  for (const t of types) {
    if (!t.name?.startsWith(prefix)) continue;
    if (t.kind === 'STRUCT') {
      const fields = (t.members ?? []).map((m) => {
        const where = `${source}: struct ${t.name}.${m.name || '(anonymous)'}`;
        if (!m.name) throw new AbiError(`${where}: anonymous members are not supported`);
        if (m.bitfield_size || m.bits_offset % 8 !== 0) throw new AbiError(`${where}: bitfields are not supported`);
        return { name: m.name, offset: m.bits_offset / 8, type: resolve(m.type_id, where) };
      });
      structs.push({ name: t.name, size: t.size!, fields });
    } else if (t.kind === 'ENUM' || t.kind === 'ENUM64') {
      enums.push({
        name: t.name,
        size: t.size!,
        values: (t.values ?? []).map((v) => ({ name: v.name, value: BigInt(v.val) })),
      });
    } else if (t.kind === 'UNION') {
      throw new AbiError(`${source}: union ${t.name} is not supported in the ABI`);
    }
  }
  return { structs, enums };
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) ===
    JSON.stringify(b, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
}

/**
 * Merges the ABIs of several objects. A type seen in two objects must be
 * identical in both (they all include the same abi.h); anything else means
 * an object is stale and the build must be redone.
 */
export function mergeAbis(parts: readonly { source: string; abi: Abi }[]): Abi {
  const structs = new Map<string, { source: string; s: AbiStruct }>();
  const enums = new Map<string, { source: string; e: AbiEnum }>();
  for (const { source, abi } of parts) {
    for (const s of abi.structs) {
      const seen = structs.get(s.name);
      if (seen && !sameJson(seen.s, s)) {
        throw new AbiError(`struct ${s.name} differs between ${seen.source} and ${source}; rebuild with scripts/build-bpf`);
      }
      structs.set(s.name, { source, s });
    }
    for (const e of abi.enums) {
      const seen = enums.get(e.name);
      if (seen && !sameJson(seen.e, e)) {
        throw new AbiError(`enum ${e.name} differs between ${seen.source} and ${source}; rebuild with scripts/build-bpf`);
      }
      enums.set(e.name, { source, e });
    }
  }
  const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return {
    structs: [...structs.values()].map((x) => x.s).sort(byName),
    enums: [...enums.values()].map((x) => x.e).sort(byName),
  };
}
