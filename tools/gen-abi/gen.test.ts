// Checks tools/gen-abi against the real compiled objects: every struct and enum
// of bpf/include/abi.h reaches BTF, and the sizes, offsets and values read back
// from BTF equal what a C compiler says about abi.h itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { abiFromBtf, AbiError, type Abi, type RawBtfType } from './btf.js';
import { generate, HEADER, pascalCase } from './generate.js';
import { diffSummary, OBJECT_DIR, OUTPUT, ROOT, objectPaths, readAbi } from './main.js';

const ABI_H = join(ROOT, 'bpf', 'include', 'abi.h');
const METER_O = join(OBJECT_DIR, 'meter.bpf.o');

function loadAbi(t: { skip(msg: string): void }): Abi | undefined {
  if (!existsSync(METER_O)) {
    t.skip(`${METER_O} is missing: run \`bash scripts/build-bpf\` first`);
    return undefined;
  }
  return readAbi(objectPaths());
}

/** Compiles a native C program against abi.h that prints what the C compiler thinks. */
function cFacts(abi: Abi): Record<string, string> {
  const lines: string[] = [
    '#include <stdio.h>',
    '#include <stddef.h>',
    '#include <linux/types.h>',
    '#include <linux/bpf.h>', // struct bpf_spin_lock, which a map value in abi.h embeds
    '#include "abi.h"',
    'int main(void) {',
  ];
  for (const s of abi.structs) {
    lines.push(`  printf("sizeof ${s.name} %zu\\n", sizeof(struct ${s.name}));`);
    for (const f of s.fields) {
      lines.push(`  printf("offsetof ${s.name}.${f.name} %zu\\n", offsetof(struct ${s.name}, ${f.name}));`);
      lines.push(`  printf("sizeof ${s.name}.${f.name} %zu\\n", sizeof(((struct ${s.name} *)0)->${f.name}));`);
    }
  }
  for (const e of abi.enums) {
    lines.push(`  printf("sizeof enum ${e.name} %zu\\n", sizeof(enum ${e.name}));`);
    for (const v of e.values) lines.push(`  printf("value ${v.name} %lld\\n", (long long)${v.name});`);
  }
  lines.push('  return 0;', '}');
  const dir = mkdtempSync(join(tmpdir(), 'tgb-abi-'));
  try {
    writeFileSync(join(dir, 'probe.c'), lines.join('\n'));
    execFileSync('clang', ['-Wall', '-Werror', '-I', join(ROOT, 'bpf', 'include'), '-o', join(dir, 'probe'), join(dir, 'probe.c')]);
    const out = execFileSync(join(dir, 'probe'), { encoding: 'utf8' });
    return Object.fromEntries(
      out
        .trim()
        .split('\n')
        .map((l) => {
          const i = l.lastIndexOf(' ');
          return [l.slice(0, i), l.slice(i + 1)];
        }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function fieldSize(t: Abi['structs'][number]['fields'][number]['type'], abi: Abi): number {
  switch (t.kind) {
    case 'int':
      return t.size;
    case 'bytes':
      return t.length;
    case 'array':
      return t.length * fieldSize(t.elem, abi);
    case 'struct':
      return abi.structs.find((s) => s.name === t.name)!.size;
  }
}

test('every struct and enum declared in abi.h reaches the objects\' BTF', (t) => {
  const abi = loadAbi(t);
  if (!abi) return;
  const header = readFileSync(ABI_H, 'utf8');
  const declared = [...header.matchAll(/^(struct|enum)\s+(tg_\w+)\s*\{/gm)].map((m) => `${m[1]} ${m[2]}`).sort();
  const inBtf = [...abi.structs.map((s) => `struct ${s.name}`), ...abi.enums.map((e) => `enum ${e.name}`)].sort();
  assert.ok(declared.length >= 10, `expected abi.h to declare the metering ABI, found ${declared.join(', ')}`);
  for (const d of declared) assert.ok(inBtf.includes(d), `${d} is declared in abi.h but missing from BTF (needs a map or a TG_BTF_ANCHOR)`);
});

test('sizes, offsets and enum values read from BTF equal what the C compiler says about abi.h', (t) => {
  const abi = loadAbi(t);
  if (!abi) return;
  const c = cFacts(abi);
  for (const s of abi.structs) {
    assert.equal(String(s.size), c[`sizeof ${s.name}`], `sizeof(struct ${s.name})`);
    for (const f of s.fields) {
      assert.equal(String(f.offset), c[`offsetof ${s.name}.${f.name}`], `offsetof(struct ${s.name}, ${f.name})`);
      assert.equal(String(fieldSize(f.type, abi)), c[`sizeof ${s.name}.${f.name}`], `sizeof ${s.name}.${f.name}`);
    }
  }
  for (const e of abi.enums) {
    assert.equal(String(e.size), c[`sizeof enum ${e.name}`], `sizeof(enum ${e.name})`);
    for (const v of e.values) assert.equal(v.value.toString(), c[`value ${v.name}`], v.name);
  }
  // Spot checks against the literal header text, so a wrong probe cannot hide a wrong generator.
  const counter = abi.structs.find((s) => s.name === 'tg_counter')!;
  assert.deepEqual(counter.fields.map((f) => [f.name, f.offset]), [['packets', 0], ['bytes', 8]]);
  const v6 = abi.structs.find((s) => s.name === 'tg_lpm_v6_key')!;
  assert.equal(v6.size, 24);
  assert.deepEqual(v6.fields.map((f) => [f.name, f.offset]), [['prefixlen', 0], ['generation', 4], ['addr_be', 5], ['pad', 21]]);
  const dir = abi.enums.find((e) => e.name === 'tg_direction')!;
  assert.deepEqual(dir.values.map((v) => [v.name, Number(v.value)]), [['TG_DIR_INGRESS', 0], ['TG_DIR_EGRESS', 1], ['TG_DIR_MAX', 2]]);
});

test('the committed src/kernel/abi.gen.ts is what the generator writes now', (t) => {
  const abi = loadAbi(t);
  if (!abi) return;
  const fresh = generate(abi);
  assert.ok(fresh.startsWith(HEADER));
  assert.equal(generate(abi), fresh, 'generation is deterministic');
  const committed = readFileSync(OUTPUT, 'utf8');
  assert.equal(committed, fresh, diffSummary(committed, fresh));
});

test('generated codecs round-trip and lay fields out at the BTF offsets', async (t) => {
  const abi = loadAbi(t);
  if (!abi) return;
  const gen = (await import('../../src/kernel/abi.gen.js')) as Record<string, unknown>;
  const key = gen.TgLpmV4Key as { size: number; encode(v: unknown): Buffer; decode(b: Buffer): unknown };
  const v = { prefixlen: 8 + 24, generation: 1, addr_be: Buffer.from([198, 18, 0, 0]), pad: Buffer.alloc(3) };
  const buf = key.encode(v);
  assert.equal(buf.length, 12);
  assert.deepEqual([...buf], [32, 0, 0, 0, 1, 198, 18, 0, 0, 0, 0, 0]);
  assert.deepEqual(key.decode(buf), v);
  const counter = gen.TgCounter as { encode(v: unknown): Buffer };
  assert.equal(counter.encode({ packets: 1n, bytes: 2n ** 40n }).readBigUInt64LE(8), 2n ** 40n);
  for (const s of abi.structs) assert.equal((gen[pascalCase(s.name)] as { size: number }).size, s.size, s.name);
  assert.equal(gen.TG_REASON_BY_ADDR, 10);
  assert.deepEqual(gen.TgHook, { TG_HOOK_INGRESS: 0, TG_HOOK_EGRESS: 1 });
});

test('diffSummary names the lines that changed', () => {
  const s = diffSummary('a\nb\nc\n', 'a\nB\nc\nd\n');
  assert.match(s, /^1 line\(s\) only in the committed file, 2 only in a fresh generation:/);
  assert.match(s, /-2: b/);
  assert.match(s, /\+2: B/);
  assert.match(s, /\+4: d/);
});

test('unsupported BTF is rejected with the field named', () => {
  const base: RawBtfType[] = [
    { id: 1, kind: 'INT', name: 'unsigned int', size: 4, nr_bits: 32, encoding: '(none)' },
    { id: 2, kind: 'PTR', name: '', type_id: 1 },
  ];
  assert.throws(
    () => abiFromBtf([...base, { id: 3, kind: 'STRUCT', name: 'tg_bad', size: 8, members: [{ name: 'p', type_id: 2, bits_offset: 0 }] }], 'x.o'),
    (e: unknown) => e instanceof AbiError && /struct tg_bad\.p: PTR members are not supported/.test(e.message),
  );
  assert.throws(
    () =>
      abiFromBtf(
        [...base, { id: 3, kind: 'STRUCT', name: 'tg_bits', size: 4, members: [{ name: 'f', type_id: 1, bits_offset: 3, bitfield_size: 5 }] }],
        'x.o',
      ),
    (e: unknown) => e instanceof AbiError && /struct tg_bits\.f: bitfields are not supported/.test(e.message),
  );
  // Structs and enums outside the tg_ namespace are not part of the ABI.
  const abi = abiFromBtf([...base, { id: 3, kind: 'STRUCT', name: 'pkt_meta', size: 4, members: [{ name: 'f', type_id: 1, bits_offset: 0 }] }], 'x.o');
  assert.deepEqual(abi, { structs: [], enums: [] });
});
