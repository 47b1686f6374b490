// Builds a codec at run time from a struct read out of BTF: for tests that
// need to decode a data-plane-private struct (e.g. the parser's pkt_meta in a
// test wrapper object) without mirroring its layout by hand.
import { array, bytes, s8, s16, s32, s64, struct, u8, u16, u32, u64, type Codec, type Field } from '../../src/kernel/codec.js';
import { abiFromBtf, AbiError, dumpBtf, type Abi, type FieldType } from './btf.js';

const INTS = { u8, u16, u32, u64, s8, s16, s32, s64 } as const;

function fieldCodec(t: FieldType, abi: Abi): Codec<unknown> {
  switch (t.kind) {
    case 'int':
      return INTS[`${t.signed ? 's' : 'u'}${t.size * 8}` as keyof typeof INTS] as Codec<unknown>;
    case 'bytes':
      return bytes(t.length) as Codec<unknown>;
    case 'array':
      return array(fieldCodec(t.elem, abi), t.length) as Codec<unknown>;
    case 'struct':
      return structCodec(abi, t.name);
  }
}

export function structCodec<T extends object = Record<string, unknown>>(abi: Abi, name: string): Codec<T> {
  const s = abi.structs.find((x) => x.name === name);
  if (!s) throw new AbiError(`struct ${name} is not in BTF (has: ${abi.structs.map((x) => x.name).join(', ') || 'none'})`);
  const fields = s.fields.map((f) => [f.name, f.offset, fieldCodec(f.type, abi)] as const) as unknown as Field<T>[];
  return struct<T>(s.size, fields);
}

/** The codec of struct `name` as the BTF of objectPath lays it out. */
export function codecFromObject<T extends object = Record<string, unknown>>(objectPath: string, name: string): Codec<T> {
  return structCodec<T>(abiFromBtf(dumpBtf(objectPath), objectPath, name), name);
}
