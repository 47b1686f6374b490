// L7 signatures compiled into the datapath's automaton (abi.h, "L7
// signatures"): every pattern of every signature, as bytes where a
// case-insensitive letter is the class {lower, upper}, in one deterministic
// automaton built by subset construction over "any bytes, then a pattern"
// (for plain strings this is the Aho-Corasick automaton). The datapath
// walks it one byte at a time with one array lookup; a transition into a
// state where some pattern is complete carries that pattern's signature.
// Pure: the map writer is src/firewall/maps.ts.
import { TG_FW_DENY, TG_FW_LOG, TG_FW_MAX_SLOTS, TG_L7_MAX_SIGS, TG_L7_MAX_STATES, TG_L7_SIG_SHIFT, TG_PORTS, type TgL7Sig } from '../kernel/abi.gen.js';
import type { MapEntry } from '../policy/compile-metering.js';
import type { L7_SET_NAMES, SecuritySection } from '../policy/schema.js';

export type L7Signature = NonNullable<SecuritySection['l7']>['signatures'][number];

/**
 * The built-in sets: literal fragments that benign HTTP requests do not
 * carry (checked against a corpus in l7.test.ts). Matching is on raw bytes:
 * an attack spelled with other encodings or whitespace is not caught (docs).
 */
export const L7_SETS: Readonly<Record<(typeof L7_SET_NAMES)[number], readonly string[]>> = {
  'sql-injection': [
    'union select', 'union all select', 'union%20select', 'union%20all%20select', 'union+select', 'union+all+select', 'union/**/select',
    "' or '1'='1", '" or "1"="1', "' or 1=1", '" or 1=1', ' or 1=1--', "'--", '; drop table', ';drop table', 'information_schema',
    'and sleep(', 'or sleep(', 'benchmark(', 'waitfor delay', 'xp_cmdshell', '@@version', 'load_file(', 'into outfile',
  ],
  'path-traversal': ['../', '..\\', '..%2f', '..%5c', '%2e%2e/', '%2e%2e%2f', '.%2e/', '/etc/passwd', '/etc/shadow', '/proc/self/', 'c:\\windows\\'],
  xss: ['<script', '%3cscript', '%253cscript', 'javascript:', ' onerror=', ' onload=', '<iframe', 'document.cookie'],
  'shell-injection': ['; cat /', ';cat /', '| cat /', '|cat /', '$(curl', '$(wget', '=`', ';wget ', '; wget ', ';/bin/sh', '|/bin/sh', ';/bin/bash', '|/bin/bash', '() {', 'nc -e'],
};

/** The patterns a signature searches for. */
export function signaturePatterns(sig: L7Signature): readonly string[] {
  if (sig.set) return L7_SETS[sig.set];
  return sig.patterns ?? [sig.pattern!];
}

/** A pattern as byte classes: each position is the set of bytes that match there. */
export function patternClasses(pattern: string, caseInsensitive: boolean): Array<readonly number[]> {
  return [...Buffer.from(pattern, 'utf8')].map((b) => {
    const c = String.fromCharCode(b);
    if (!caseInsensitive || b >= 0x80 || c.toLowerCase() === c.toUpperCase()) return [b];
    return [c.toLowerCase().charCodeAt(0), c.toUpperCase().charCodeAt(0)];
  });
}

export class L7CompileError extends Error {}

export interface Dfa {
  /** state * 256 + byte -> next state | (1 + signature) << TG_L7_SIG_SHIFT */
  table: Uint32Array;
  states: number;
}

/**
 * The automaton of patterns (each with its signature index); a match is
 * reported for the signature whose pattern completes first in the input, the
 * lowest index when several complete on the same byte.
 */
export function buildDfa(patterns: ReadonlyArray<{ classes: ReadonlyArray<readonly number[]>; sig: number }>, maxStates: number = TG_L7_MAX_STATES): Dfa {
  // member[p][i][b]: byte b matches position i of pattern p
  const member = patterns.map((p) => p.classes.map((cls) => {
    const m = new Uint8Array(256);
    for (const b of cls) m[b] = 1;
    return m;
  }));
  const enc = (p: number, i: number) => p * 256 + i; // i <= 64
  const ids = new Map<string, number>();
  const sets: number[][] = [];
  const idOf = (set: number[]): number => {
    const key = set.join(',');
    let id = ids.get(key);
    if (id === undefined) {
      id = sets.length;
      if (id >= maxStates) throw new L7CompileError(`the signatures need more than ${maxStates} automaton states; use fewer or shorter patterns`);
      ids.set(key, id);
      sets.push(set);
    }
    return id;
  };
  idOf([]);
  const rows: Uint32Array[] = [];
  for (let s = 0; s < sets.length; s++) {
    const row = new Uint32Array(256);
    const cur = sets[s]!;
    for (let b = 0; b < 256; b++) {
      const next: number[] = [];
      let matched = -1;
      const advance = (p: number, i: number) => {
        if (!member[p]![i]![b]) return;
        if (i + 1 === member[p]!.length) {
          const sig = patterns[p]!.sig;
          if (matched < 0 || sig < matched) matched = sig;
        } else next.push(enc(p, i + 1));
      };
      for (let p = 0; p < patterns.length; p++) advance(p, 0);
      for (const pos of cur) advance(Math.floor(pos / 256), pos % 256);
      next.sort((x, y) => x - y);
      const dedup = next.filter((v, i) => i === 0 || next[i - 1] !== v);
      row[b] = idOf(dedup) | (matched >= 0 ? (matched + 1) << TG_L7_SIG_SHIFT : 0);
    }
    rows.push(row);
  }
  const table = new Uint32Array(sets.length * 256);
  rows.forEach((r, s) => table.set(r, s * 256));
  return { table, states: sets.length };
}

/** The TypeScript walk of the same automaton (what the datapath does): 1 + the signature matched, or 0. */
export function scanPayload(dfa: Dfa, payload: Uint8Array, limit = payload.length): number {
  let state = 0;
  for (let i = 0; i < Math.min(limit, payload.length); i++) {
    const v = dfa.table[state * 256 + payload[i]!]!;
    if (v >>> TG_L7_SIG_SHIFT) return v >>> TG_L7_SIG_SHIFT;
    state = v & ((1 << TG_L7_SIG_SHIFT) - 1);
  }
  return 0;
}

export interface L7Plan {
  dfa: Dfa;
  /** Every port of the generation: 1 where some signature looks, index generation * TG_PORTS + port. */
  ports: Uint8Array;
  sigs: MapEntry<number, TgL7Sig>[];
  /** Signature index -> name. */
  names: string[];
}

export function compileL7(l7: NonNullable<SecuritySection['l7']>, generation: 0 | 1): L7Plan {
  const sigs = l7.signatures;
  if (sigs.length > TG_L7_MAX_SIGS) throw new L7CompileError(`security.l7.signatures: ${sigs.length} signatures, at most ${TG_L7_MAX_SIGS}`);
  const patterns = sigs.flatMap((s, sig) => signaturePatterns(s).map((text) => ({ classes: patternClasses(text, s.caseInsensitive), sig })));
  let dfa: Dfa;
  try {
    dfa = buildDfa(patterns);
  } catch (err) {
    throw new L7CompileError(`security.l7.signatures: ${(err as Error).message}`);
  }
  const ports = new Uint8Array(TG_PORTS);
  for (const s of sigs) for (const { from, to } of s.ports) ports.fill(1, from, to + 1);
  return {
    dfa,
    ports,
    sigs: Array.from({ length: TG_L7_MAX_SIGS }, (_, i) => ({
      key: generation * TG_L7_MAX_SIGS + i,
      value: { slot: TG_FW_MAX_SLOTS + i, action: sigs[i]?.action === 'deny' ? TG_FW_DENY : TG_FW_LOG, pad: Buffer.alloc(3) },
    })),
    names: sigs.map((s) => s.name),
  };
}
