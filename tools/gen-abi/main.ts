// tools/gen-abi: writes (--write) or verifies (--check) src/kernel/abi.gen.ts
// from the BTF of the compiled BPF objects in build/bpf.
import { existsSync, readdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { abiFromBtf, AbiError, dumpBtf, mergeAbis, type Abi } from './btf.js';
import { generate } from './generate.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const OBJECT_DIR = join(ROOT, 'build', 'bpf');
export const OUTPUT = join(ROOT, 'src', 'kernel', 'abi.gen.ts');

/** The production objects (build/bpf/*.bpf.o); test wrappers in build/bpf/tests are not part of the ABI. */
export function objectPaths(dir = OBJECT_DIR): string[] {
  if (!existsSync(dir)) throw new AbiError(`${dir} does not exist; run \`bash scripts/build-bpf\` first`);
  const objs = readdirSync(dir)
    .filter((f) => f.endsWith('.bpf.o'))
    .sort()
    .map((f) => join(dir, f));
  if (objs.length === 0) throw new AbiError(`no *.bpf.o in ${dir}; run \`bash scripts/build-bpf\` first`);
  return objs;
}

export function readAbi(objects: readonly string[]): Abi {
  return mergeAbis(objects.map((o) => ({ source: relative(ROOT, o), abi: abiFromBtf(dumpBtf(o), relative(ROOT, o)) })));
}

/** A short, readable account of how `committed` differs from `fresh`, line by line. */
export function diffSummary(committed: string, fresh: string, maxLines = 40): string {
  const a = committed.split('\n');
  const b = fresh.split('\n');
  // Longest common subsequence: the files are small (hundreds of lines).
  const n = a.length;
  const m = b.length;
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const out: string[] = [];
  let removed = 0;
  let added = 0;
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      i++;
      j++;
    } else if (i < n && (j === m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      removed++;
      if (out.length < maxLines) out.push(`-${i + 1}: ${a[i]}`);
      i++;
    } else {
      added++;
      if (out.length < maxLines) out.push(`+${j + 1}: ${b[j]}`);
      j++;
    }
  }
  const more = removed + added - out.length;
  return [`${removed} line(s) only in the committed file, ${added} only in a fresh generation:`, ...out]
    .concat(more > 0 ? [`... and ${more} more`] : [])
    .join('\n');
}

function main(argv: string[]): number {
  const mode = argv.includes('--check') ? 'check' : argv.includes('--write') ? 'write' : undefined;
  if (!mode || argv.some((a) => a !== '--check' && a !== '--write')) {
    process.stderr.write('usage: gen-abi --write | --check\n');
    return 2;
  }
  const fresh = generate(readAbi(objectPaths()));
  const committed = existsSync(OUTPUT) ? readFileSync(OUTPUT, 'utf8') : '';
  const rel = relative(ROOT, OUTPUT);
  if (mode === 'check') {
    if (committed === fresh) {
      process.stdout.write(`gen-abi: ${rel} is up to date\n`);
      return 0;
    }
    process.stderr.write(`gen-abi: ${rel} is stale; run \`npm run gen:abi\`\n${diffSummary(committed, fresh)}\n`);
    return 1;
  }
  if (committed !== fresh) {
    writeFileSync(`${OUTPUT}.tmp`, fresh);
    renameSync(`${OUTPUT}.tmp`, OUTPUT);
    process.stdout.write(`gen-abi: wrote ${rel}\n`);
  } else {
    process.stdout.write(`gen-abi: ${rel} unchanged\n`);
  }
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof AbiError)) throw err;
    process.stderr.write(`gen-abi: ${err.message}\n`);
    process.exitCode = 1;
  }
}
