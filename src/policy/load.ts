// Reads a policy document: YAML -> schema -> cross-document checks. Every
// problem is reported at once with its path and its line and column in the
// source, so a rejected policy can be fixed in one round.
import { readFileSync } from 'node:fs';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { crossCheck, formatPath } from './cross-check.js';
import { policySchema, type Policy } from './schema.js';
import { closest } from './suggest.js';

export interface PolicyIssue {
  /** Where in the document, e.g. "tenants[1].selectors.cidrs[0]"; "(document)" for the whole; "(yaml)" for syntax. */
  path: string;
  /** 1-based; 0 when the position is unknown. */
  line: number;
  column: number;
  message: string;
}

export class PolicyError extends Error {
  constructor(readonly source: string, readonly issues: readonly PolicyIssue[]) {
    super(
      `policy ${source} rejected (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n` +
        issues.map((i) => `  ${source}:${i.line}:${i.column}: ${i.path}: ${i.message}`).join('\n'),
    );
    this.name = 'PolicyError';
  }
}

type Seg = string | number;

/**
 * The source offset of the node at path, or of the deepest ancestor that
 * exists (a missing key is reported where its parent starts). With atKey,
 * the last segment's map key is located instead of its value (unknown keys).
 */
function locate(doc: Document, path: readonly Seg[], atKey: boolean): number | undefined {
  let node: unknown = doc.contents;
  let offset: number | undefined = (node as Node | null)?.range?.[0];
  for (let i = 0; i < path.length; i++) {
    if (isAlias(node)) node = node.resolve(doc);
    const seg = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
      if (!pair) return offset;
      const keyOffset = (pair.key as Node | null)?.range?.[0];
      if (last && atKey) return keyOffset ?? offset;
      const v = pair.value as Node | null;
      if (!v?.range) return keyOffset ?? offset;
      node = v;
      offset = v.range[0];
    } else if (isSeq(node) && typeof seg === 'number') {
      const v = node.items[seg] as Node | undefined;
      if (!v?.range) return offset;
      node = v;
      offset = v.range[0];
    } else {
      return offset;
    }
  }
  return offset;
}

// ---- turning schema issues into messages ---------------------------------

interface Def {
  type: string;
  shape?: Record<string, { _zod: { def: Def } }>;
  element?: { _zod: { def: Def } };
  innerType?: { _zod: { def: Def } };
  in?: { _zod: { def: Def } };
  left?: { _zod: { def: Def } };
  right?: { _zod: { def: Def } };
  valueType?: { _zod: { def: Def } };
}

/** The keys an object at path accepts, found by walking the schema. */
function keysAt(path: readonly Seg[]): string[] {
  let def: Def | undefined = (policySchema as unknown as { _zod: { def: Def } })._zod.def;
  const unwrap = (d: Def | undefined): Def | undefined => {
    while (d) {
      const next = d.innerType ?? d.in ?? (d.type === 'intersection' ? d.left : undefined);
      if (!next || !['optional', 'default', 'prefault', 'nullable', 'pipe', 'intersection', 'readonly', 'catch'].includes(d.type)) return d;
      d = next._zod.def;
    }
    return d;
  };
  for (const seg of path) {
    def = unwrap(def);
    if (!def) return [];
    if (def.type === 'object' && typeof seg === 'string') def = def.shape?.[seg]?._zod.def;
    else if (def.type === 'array') def = def.element?._zod.def;
    else if (def.type === 'record') def = def.valueType?._zod.def;
    else return [];
  }
  def = unwrap(def);
  return def?.type === 'object' && def.shape ? Object.keys(def.shape) : [];
}

function unknownKeyMessage(key: string, allowed: string[]): string {
  const close = closest(key, allowed);
  if (close) return `unknown key "${key}"; did you mean "${close}"?`;
  return allowed.length ? `unknown key "${key}"; allowed keys: ${allowed.join(', ')}` : `unknown key "${key}"`;
}

function typeName(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'a list';
  if (typeof x === 'object') return 'a mapping';
  return typeof x === 'string' ? `the string ${JSON.stringify(x.length > 40 ? `${x.slice(0, 40)}...` : x)}` : `${typeof x} ${String(x)}`;
}

/** Parse-wide messages for the issues no schema gave its own wording. */
const errorMap: z.core.$ZodErrorMap = (iss) => {
  if (iss.code === 'invalid_type') {
    if (iss.input === undefined) return 'required';
    const names: Record<string, string> = { object: 'a mapping', array: 'a list', int: 'an integer', number: 'a number' };
    const want = names[iss.expected] ?? `a ${iss.expected}`;
    return `expected ${want}, got ${typeName(iss.input)}`;
  }
  if (iss.code === 'invalid_format' && iss.format === 'safeint') return `expected an integer, got ${typeName(iss.input)}`;
  if (iss.code === 'too_small' || iss.code === 'too_big') {
    const small = iss.code === 'too_small';
    const n = small ? iss.minimum : iss.maximum;
    const bound = small ? (iss.inclusive === false ? 'more than' : 'at least') : (iss.inclusive === false ? 'less than' : 'at most');
    if (iss.origin === 'array') return `needs ${bound} ${n} entr${Number(n) === 1 ? 'y' : 'ies'}`;
    if (iss.origin === 'string') return `must be ${bound} ${n} character${Number(n) === 1 ? '' : 's'} long`;
    return `must be ${bound} ${n}`;
  }
  if (iss.code === 'invalid_value' && 'values' in iss) {
    return `expected one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}, got ${typeName(iss.input)}`;
  }
  return undefined;
};

function schemaIssues(issues: readonly z.core.$ZodIssue[]): { path: Seg[]; message: string; atKey: boolean }[] {
  const out: { path: Seg[]; message: string; atKey: boolean }[] = [];
  for (const iss of issues) {
    const path = iss.path.map((p) => (typeof p === 'symbol' ? String(p) : p)) as Seg[];
    if (iss.code === 'unrecognized_keys') {
      const allowed = keysAt(path);
      for (const k of iss.keys) out.push({ path: [...path, k], message: unknownKeyMessage(k, allowed), atKey: true });
    } else if (iss.code === 'invalid_key') {
      out.push({ path, message: `invalid key: ${iss.issues.map((i) => i.message).join('; ')}`, atKey: true });
    } else {
      out.push({ path, message: iss.message, atKey: false });
    }
  }
  return out;
}

/** Parses and validates a policy document; throws PolicyError listing every problem. */
export function parsePolicy(text: string, source = '<policy>'): Policy {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  const pos = (offset: number | undefined): { line: number; column: number } => {
    if (offset === undefined) return { line: 0, column: 0 };
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };

  const syntax = [...doc.errors, ...doc.warnings];
  if (syntax.length > 0) {
    throw new PolicyError(
      source,
      syntax.map((e) => ({ path: '(yaml)', ...pos(e.pos[0]), message: e.message.split('\n')[0] })),
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    throw new PolicyError(source, [{ path: '(yaml)', line: 0, column: 0, message: (err as Error).message }]);
  }
  if (raw === null || raw === undefined) {
    throw new PolicyError(source, [{ path: '(document)', line: 1, column: 1, message: 'the policy is empty; it needs at least "version: 1"' }]);
  }

  const result = policySchema.safeParse(raw, { error: errorMap });
  const found = [
    ...(result.success ? [] : schemaIssues(result.error.issues)),
    ...crossCheck(raw).map((i) => ({ ...i, atKey: false })),
  ];
  if (found.length === 0 && result.success) return result.data;

  const seen = new Set<string>();
  const issues: PolicyIssue[] = [];
  for (const f of found) {
    const issue = { path: formatPath(f.path), ...pos(locate(doc, f.path, f.atKey)), message: f.message };
    const k = `${issue.path}\0${issue.message}`;
    if (seen.has(k)) continue;
    seen.add(k);
    issues.push(issue);
  }
  issues.sort((a, b) => a.line - b.line || a.column - b.column);
  throw new PolicyError(source, issues);
}

/** Reads and parses a policy file; the path is the source in every message. */
export function loadPolicyFile(path: string): Policy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new PolicyError(path, [{ path: '(document)', line: 0, column: 0, message: `cannot read the policy file: ${e.code ?? ''} ${e.message}`.trim() }]);
  }
  return parsePolicy(text, path);
}
