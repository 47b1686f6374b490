// Pure tests of the L7 signature compiler (l7.ts): byte classes, the
// automaton against a naive search (exact hand cases and a seeded property
// test), the plan compileL7 hands the map writer, the schema's checks, and
// the built-in sets against the shared corpora (l7.fixture.ts).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TG_FW_DENY, TG_FW_LOG, TG_FW_MAX_SLOTS, TG_L7_MAX_SIGS, TG_L7_MAX_STATES, TG_L7_SCAN, TG_L7_SIG_SHIFT, TG_PORTS } from '../kernel/abi.gen.js';
import { parsePolicy, PolicyError, type SecuritySection } from '../policy/index.js';
import { L7_SET_NAMES } from '../policy/schema.js';
import { buildDfa, compileL7, L7_SETS, L7CompileError, patternClasses, scanPayload, signaturePatterns, type Dfa, type L7Signature } from './l7.js';
import { L7_ATTACKS, L7_BENIGN } from './l7.fixture.js';
import { int, mulberry32, pick } from './firewall.fixture.js';

// ---- helpers ----------------------------------------------------------------

type L7Section = NonNullable<SecuritySection['l7']>;

/** The l7 section of a policy whose signatures are these YAML flow mappings, parsed the production way. */
function l7Of(sigs: readonly string[]): L7Section {
  const l7 = parsePolicy(`version: 1\nsecurity:\n  l7:\n    signatures:\n${sigs.map((s) => `      - ${s}\n`).join('')}`, 'l7.yaml').security?.l7;
  assert.ok(l7);
  return l7;
}

/** A signature as the schema would produce it (defaults filled in). */
function sig(s: Partial<L7Signature> & { name?: string }): L7Signature {
  return { name: 'sig', protocol: 'http', ports: [{ from: 80, to: 80 }], caseInsensitive: true, action: 'log', ...s };
}

/** The automaton of plain patterns: [text, signature, caseInsensitive]. */
function dfaOf(pats: ReadonlyArray<readonly [string, number, boolean?]>, maxStates?: number): Dfa {
  return buildDfa(pats.map(([text, s, ci = false]) => ({ classes: patternClasses(text, ci), sig: s })), maxStates);
}

const scan = (dfa: Dfa, input: string, limit?: number): number => scanPayload(dfa, Buffer.from(input, 'utf8'), limit);

/** The issue messages of a rejected document (fails when it was accepted). */
function rejected(text: string): string[] {
  try {
    parsePolicy(text, 'l7.yaml');
  } catch (err) {
    assert.ok(err instanceof PolicyError, String(err));
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
  assert.fail('the document was accepted');
}

// ---- the naive reference ----------------------------------------------------

const fold = (b: number): number => (b >= 0x41 && b <= 0x5a ? b + 0x20 : b);

/** Index of the byte where pattern first ends in input[0, n), or -1. */
function firstEnd(pattern: Uint8Array, ci: boolean, input: Uint8Array, n: number): number {
  const eq = ci ? (a: number, b: number) => fold(a) === fold(b) : (a: number, b: number) => a === b;
  for (let start = 0; start + pattern.length <= n; start++) {
    let k = 0;
    while (k < pattern.length && eq(pattern[k]!, input[start + k]!)) k++;
    if (k === pattern.length) return start + pattern.length - 1;
  }
  return -1;
}

/** 1 + the signature whose pattern ends earliest (lowest index on a tie), or 0. */
function naiveScan(pats: ReadonlyArray<{ bytes: Uint8Array; ci: boolean; sig: number }>, input: Uint8Array, limit: number): number {
  const n = Math.min(limit, input.length);
  let bestEnd = Infinity;
  let bestSig = -1;
  for (const p of pats) {
    const end = firstEnd(p.bytes, p.ci, input, n);
    if (end < 0) continue;
    if (end < bestEnd || (end === bestEnd && p.sig < bestSig)) {
      bestEnd = end;
      bestSig = p.sig;
    }
  }
  return bestSig + 1;
}

// ---- patternClasses -----------------------------------------------------------

describe('patternClasses', () => {
  test('case-insensitive letters are [lower, upper]; digits and punctuation one byte', () => {
    assert.deepEqual(patternClasses('aZ9-', true), [[0x61, 0x41], [0x7a, 0x5a], [0x39], [0x2d]]);
    assert.deepEqual(patternClasses("' OR 1=1", true), [[0x27], [0x20], [0x6f, 0x4f], [0x72, 0x52], [0x20], [0x31], [0x3d], [0x31]]);
    assert.deepEqual(patternClasses('@[`{', true), [[0x40], [0x5b], [0x60], [0x7b]]);
  });

  test('case-sensitive keeps each byte', () => {
    assert.deepEqual(patternClasses('aZ9-', false), [[0x61], [0x5a], [0x39], [0x2d]]);
  });

  test('non-ASCII: one class per UTF-8 byte, never folded', () => {
    // é = C3 A9, É = C3 89, 東 = E6 9D B1
    assert.deepEqual(patternClasses('é', true), [[0xc3], [0xa9]]);
    assert.deepEqual(patternClasses('Aé東', true), [[0x61, 0x41], [0xc3], [0xa9], [0xe6], [0x9d], [0xb1]]);
    assert.deepEqual(patternClasses('É', false), [[0xc3], [0x89]]);
    assert.equal(scan(dfaOf([['é', 0, true]]), 'CAFÉ'), 0);
    assert.equal(scan(dfaOf([['é', 0, true]]), 'café'), 1);
  });
});

// ---- buildDfa / scanPayload -------------------------------------------------------

describe('buildDfa and scanPayload', () => {
  test('state counts: one per distinct proper prefix (empty included)', () => {
    assert.equal(buildDfa([]).states, 1);
    assert.equal(dfaOf([['a', 0]]).states, 1);
    assert.equal(dfaOf([['abc', 0]]).states, 3);
    assert.equal(dfaOf([['aaab', 0]]).states, 4);
    assert.equal(dfaOf([['AbC', 0, true]]).states, 3);
    assert.equal(dfaOf([['ab', 0], ['cd', 1]]).states, 3);
    assert.equal(dfaOf([['abc', 0], ['abd', 1]]).states, 3);
    assert.equal(dfaOf([['abc', 0], ['abc', 1]]).states, 3);
    // Aho-Corasick's example: '', h, he, her, hi, s, sh
    assert.equal(dfaOf([['he', 0], ['she', 1], ['his', 2], ['hers', 3]]).states, 7);
    // é is two bytes: '', C3
    assert.equal(dfaOf([['é', 0]]).states, 2);
  });

  test('the table of a single pattern', () => {
    const d = dfaOf([['ab', 0]]);
    assert.equal(d.table.length, 2 * 256);
    const a = 0x61;
    const b = 0x62;
    assert.equal(d.table[a], 1);
    assert.equal(d.table[b], 0);
    assert.equal(d.table[256 + a], 1);
    assert.equal(d.table[256 + b], 1 << TG_L7_SIG_SHIFT);
    assert.equal(d.table[256 + 0x63], 0);
    const e = buildDfa([]);
    assert.deepEqual([...e.table], new Array(256).fill(0));
  });

  test('maxStates: exactly maxStates is fine, one more throws L7CompileError', () => {
    assert.equal(dfaOf([['abcdef', 0]], 6).states, 6);
    assert.throws(() => dfaOf([['abcdef', 0]], 5), (err: unknown) => err instanceof L7CompileError && /more than 5 automaton states/.test(err.message));
    assert.throws(() => dfaOf([['ab', 0], ['cd', 1]], 2), L7CompileError);
    assert.equal(dfaOf([['ab', 0], ['cd', 1]], 3).states, 3);
  });

  test("'he' and 'she' in 'ushers' end on the same byte: the lower index wins", () => {
    assert.equal(scan(dfaOf([['he', 0], ['she', 1]]), 'ushers'), 1);
    assert.equal(scan(dfaOf([['she', 0], ['he', 1]]), 'ushers'), 1);
    // 'hers' ends one byte later than 'he', whatever the order
    assert.equal(scan(dfaOf([['hers', 0], ['he', 1]]), 'ushers'), 2);
    assert.equal(scan(dfaOf([['hers', 0], ['she', 1]]), 'ushers'), 2);
    assert.equal(scan(dfaOf([['hers', 0]]), 'ushers'), 1);
    assert.equal(scan(dfaOf([['hers', 0]]), 'usher'), 0);
  });

  test('a pattern that is a suffix, a prefix or an inner part of another', () => {
    // suffix: both end on the same byte
    assert.equal(scan(dfaOf([['abc', 0], ['bc', 1]]), 'xabc'), 1);
    assert.equal(scan(dfaOf([['bc', 0], ['abc', 1]]), 'xabc'), 1);
    assert.equal(scan(dfaOf([['bc', 1], ['abc', 0]]), 'xabc'), 1);
    // inner: the shorter ends first
    assert.equal(scan(dfaOf([['abcd', 0], ['bc', 1]]), 'abcd'), 2);
    // prefix: the shorter ends first
    assert.equal(scan(dfaOf([['abc', 0], ['ab', 1]]), 'abc'), 2);
    // repeated characters: 'aaab' in 'aaaab' (KMP fallback)
    assert.equal(scan(dfaOf([['aaab', 0]]), 'aaaab'), 1);
    assert.equal(scan(dfaOf([['aaab', 0]]), 'aabaab'), 0);
  });

  test('the same pattern in two signatures: the lower index', () => {
    assert.equal(scan(dfaOf([['evil', 3], ['evil', 1]]), 'so evil'), 2);
    assert.equal(scan(dfaOf([['EVIL', 0], ['evil', 1, true]]), 'so evil'), 2);
    assert.equal(scan(dfaOf([['EVIL', 0], ['evil', 1, true]]), 'so EVIL'), 1);
  });

  test('the limit: a match ending on the last byte counts, one byte past does not', () => {
    const d = dfaOf([['abc', 0]]);
    assert.equal(scan(d, 'xxabc', 5), 1);
    assert.equal(scan(d, 'xxabc', 4), 0);
    assert.equal(scan(d, 'xxabc', 100), 1);
    assert.equal(scan(d, 'xxabc'), 1);
    assert.equal(scan(d, 'xxabc', 0), 0);
    assert.equal(scan(d, ''), 0);
    const pad = 'x'.repeat(TG_L7_SCAN - 3);
    assert.equal(scan(d, `${pad}abc`, TG_L7_SCAN), 1); // ends at byte TG_L7_SCAN - 1
    assert.equal(scan(d, `${pad}xabc`, TG_L7_SCAN), 0); // ends at byte TG_L7_SCAN
  });

  test('agrees with a naive search on 5,000 seeded random cases', () => {
    const rnd = mulberry32(0x17c0de);
    const alphabets = ['ab', 'abAB.-', 'aA', 'xyz.', 'aé', 'abc', 'aAbB'];
    const randomText = (alpha: string, len: number) => Array.from({ length: len }, () => pick(rnd, [...alpha])).join('');
    const flipCase = (s: string) => [...s].map((c) => (rnd() < 0.5 ? c.toUpperCase() : c.toLowerCase())).join('');
    let matched = 0;
    for (let n = 0; n < 5000; n++) {
      const alpha = pick(rnd, alphabets);
      const nsigs = 1 + int(rnd, 4);
      const ci = Array.from({ length: nsigs }, () => rnd() < 0.5);
      const texts: string[] = [];
      const pats: Array<{ text: string; sig: number }> = [];
      const npats = 1 + int(rnd, 5);
      for (let k = 0; k < npats; k++) {
        let text: string;
        const prev = texts.length ? pick(rnd, texts) : '';
        const how = int(rnd, 6);
        if (prev && how === 0) text = prev.slice(0, 1 + int(rnd, prev.length)); // prefix
        else if (prev && how === 1) text = prev.slice(int(rnd, prev.length)); // suffix
        else if (prev && how === 2) text = prev; // the same again
        else if (how === 3) text = pick(rnd, [...alpha]).repeat(1 + int(rnd, 4)) + pick(rnd, [...alpha]); // 'aaab'
        else text = randomText(alpha, 1 + int(rnd, 5));
        texts.push(text);
        pats.push({ text, sig: int(rnd, nsigs) });
      }
      let input = randomText(alpha, int(rnd, 40));
      if (rnd() < 0.5) {
        const at = int(rnd, input.length + 1);
        input = input.slice(0, at) + flipCase(pick(rnd, texts)) + input.slice(at);
      }
      const bytes = Buffer.from(input, 'utf8');
      const limit = rnd() < 0.2 ? bytes.length : int(rnd, bytes.length + 3);
      const dfa = buildDfa(pats.map((p) => ({ classes: patternClasses(p.text, ci[p.sig]!), sig: p.sig })));
      const want = naiveScan(pats.map((p) => ({ bytes: Buffer.from(p.text, 'utf8'), ci: ci[p.sig]!, sig: p.sig })), bytes, limit);
      const got = scanPayload(dfa, bytes, limit);
      if (got !== want) {
        assert.fail(`case ${n}: patterns ${JSON.stringify(pats)} ci ${JSON.stringify(ci)} input ${JSON.stringify(input)} limit ${limit}: got ${got}, want ${want}`);
      }
      if (want) matched++;
    }
    // both outcomes are well exercised
    assert.ok(matched > 1500 && matched < 4500, `matched ${matched}`);
  });
});

// ---- compileL7 and signaturePatterns ------------------------------------------------

describe('compileL7', () => {
  const l7 = l7Of([
    "{ name: sqli, set: sql-injection, ports: [80, '8000-8080'], action: deny }",
    "{ name: custom, pattern: X-Evil, caseInsensitive: false, ports: [443] }",
    '{ name: multi, patterns: [foo, bar], ports: [65535, 80] }',
  ]);

  test('ports: exactly the signatures\' ports and ranges', () => {
    const plan = compileL7(l7, 1);
    assert.equal(plan.ports.length, TG_PORTS);
    const on = [...plan.ports.keys()].filter((p) => plan.ports[p] === 1);
    assert.deepEqual(on, [80, 443, ...Array.from({ length: 81 }, (_, i) => 8000 + i), 65535]);
    assert.ok(plan.ports.every((v) => v === 0 || v === 1));
  });

  test('sigs: all 64 entries of the generation, slots and actions', () => {
    for (const gen of [0, 1] as const) {
      const plan = compileL7(l7, gen);
      assert.equal(plan.sigs.length, TG_L7_MAX_SIGS);
      plan.sigs.forEach((e, i) => {
        assert.equal(e.key, gen * TG_L7_MAX_SIGS + i);
        assert.equal(e.value.slot, TG_FW_MAX_SLOTS + i);
        assert.equal(e.value.action, i === 0 ? TG_FW_DENY : TG_FW_LOG);
        assert.deepEqual(e.value.pad, Buffer.alloc(3));
      });
      assert.deepEqual(plan.names, ['sqli', 'custom', 'multi']);
    }
    assert.equal(TG_FW_DENY, 1);
    assert.equal(TG_FW_LOG, 2);
  });

  test('the automaton reports each signature by index', () => {
    const { dfa } = compileL7(l7, 0);
    assert.ok(dfa.states <= TG_L7_MAX_STATES);
    assert.equal(dfa.table.length, dfa.states * 256);
    assert.equal(scan(dfa, 'GET /?id=1 UNION SELECT 2'), 1);
    assert.equal(scan(dfa, 'X-Evil: 1'), 2);
    assert.equal(scan(dfa, 'x-evil: 1'), 0);
    assert.equal(scan(dfa, 'FOO'), 3);
    assert.equal(scan(dfa, 'a BaR'), 3);
    assert.equal(scan(dfa, 'GET / HTTP/1.1'), 0);
  });

  test('65 signatures throw; 64 do not', () => {
    const many = (n: number): L7Section => ({ signatures: Array.from({ length: n }, (_, i) => sig({ name: `s${i}`, pattern: `p${i}` })) });
    assert.equal(compileL7(many(64), 0).names.length, 64);
    assert.throws(() => compileL7(many(65), 0), (err: unknown) => err instanceof L7CompileError && /65 signatures, at most 64/.test(err.message));
  });

  test('too many automaton states throw L7CompileError naming the section', () => {
    const big: L7Section = {
      signatures: Array.from({ length: 20 }, (_, i) => sig({ name: `s${i}`, pattern: `${String.fromCharCode(0x41 + i)}${'0123456789'.repeat(6)}` })),
    };
    assert.throws(() => compileL7(big, 0), (err: unknown) => err instanceof L7CompileError && /^security\.l7\.signatures: .*more than 1024 automaton states/.test(err.message));
  });

  test('signaturePatterns: pattern, patterns, set', () => {
    assert.deepEqual(signaturePatterns(sig({ pattern: 'abc' })), ['abc']);
    assert.deepEqual(signaturePatterns(sig({ patterns: ['a', 'b'] })), ['a', 'b']);
    for (const name of L7_SET_NAMES) assert.equal(signaturePatterns(sig({ set: name })), L7_SETS[name]);
    assert.deepEqual(Object.keys(L7_SETS).sort(), [...L7_SET_NAMES].sort());
  });
});

// ---- schema ---------------------------------------------------------------------------

describe('the l7 schema', () => {
  const doc = (sigs: string) => `version: 1\nsecurity:\n  l7:\n    signatures:\n${sigs}`;

  test('defaults', () => {
    const [s] = l7Of(['{ name: a, pattern: x }']).signatures;
    assert.deepEqual(s, { name: 'a', protocol: 'http', ports: [{ from: 80, to: 80 }], pattern: 'x', caseInsensitive: true, action: 'log' });
  });

  test('exactly one of pattern, patterns or set', () => {
    assert.deepEqual(rejected(doc('      - { name: a }\n')), ['security.l7.signatures[0]: give exactly one of pattern, patterns or set']);
    assert.deepEqual(rejected(doc('      - { name: a, pattern: x, set: xss }\n')), [
      'security.l7.signatures[0]: give exactly one of pattern, patterns or set (got pattern and set)',
    ]);
    assert.deepEqual(rejected(doc('      - { name: a, pattern: x, patterns: [y] }\n')), [
      'security.l7.signatures[0]: give exactly one of pattern, patterns or set (got pattern and patterns)',
    ]);
    assert.deepEqual(rejected(doc('      - { name: a, patterns: [y], set: xss }\n')), [
      'security.l7.signatures[0]: give exactly one of pattern, patterns or set (got patterns and set)',
    ]);
  });

  test('at most 64 signatures', () => {
    const lines = (n: number) => Array.from({ length: n }, (_, i) => `      - { name: s${i}, pattern: x${i} }\n`).join('');
    assert.equal(parsePolicy(doc(lines(64)), 'l7.yaml').security?.l7?.signatures.length, 64);
    assert.deepEqual(rejected(doc(lines(65))), ['security.l7.signatures: at most 64 signatures']);
  });

  test('unknown set names are refused', () => {
    const [msg, ...rest] = rejected(doc('      - { name: a, set: sqli }\n'));
    assert.equal(rest.length, 0);
    assert.match(msg!, /^security\.l7\.signatures\[0\]\.set: .*"sql-injection", "path-traversal", "xss", "shell-injection"/);
  });
});

// ---- the built-in sets against the corpora ---------------------------------------------

describe('built-in sets and the corpora', () => {
  test('corpus sizes', () => {
    assert.deepEqual(Object.keys(L7_ATTACKS).sort(), [...L7_SET_NAMES].sort());
    for (const name of L7_SET_NAMES) assert.ok(L7_ATTACKS[name].length >= 12, `${name}: ${L7_ATTACKS[name].length}`);
    assert.ok(L7_BENIGN.length >= 150, `benign: ${L7_BENIGN.length}`);
    assert.equal(new Set(L7_BENIGN).size, L7_BENIGN.length, 'benign requests are distinct');
  });

  test('every request is HTTP/1.1 with CRLF line endings and a correct Content-Length', () => {
    for (const r of [...Object.values(L7_ATTACKS).flat(), ...L7_BENIGN]) {
      const head = r.slice(0, r.indexOf('\r\n\r\n'));
      assert.ok(head.length > 0, r);
      const lines = head.split('\r\n');
      assert.match(lines[0]!, /^[A-Z]+ \S.* HTTP\/1\.1$/, r);
      assert.match(lines[1]!, /^Host: \S+$/, r);
      assert.ok(lines.every((l) => !l.includes('\n') && !l.includes('\r')), r);
      const body = r.slice(head.length + 4);
      const cl = lines.find((l) => l.startsWith('Content-Length: '));
      if (body.length) assert.equal(cl, `Content-Length: ${Buffer.byteLength(body)}`, r);
      else assert.equal(cl, undefined, r);
    }
  });

  test('every attack is detected by its set within the first TG_L7_SCAN bytes', () => {
    for (const name of L7_SET_NAMES) {
      const alone = compileL7(l7Of([`{ name: ${name}, set: ${name} }`]), 0).dfa;
      const second = compileL7(l7Of(['{ name: decoy, pattern: "zz-not-in-any-request" }', `{ name: ${name}, set: ${name} }`]), 0).dfa;
      L7_ATTACKS[name].forEach((r, i) => {
        const bytes = Buffer.from(r, 'utf8');
        assert.equal(scanPayload(alone, bytes, TG_L7_SCAN), 1, `${name}[${i}]: ${JSON.stringify(r)}`);
        assert.equal(scanPayload(second, bytes, TG_L7_SCAN), 2, `${name}[${i}]: ${JSON.stringify(r)}`);
      });
    }
  });

  test('no benign request is detected by all four sets together', () => {
    const plan = compileL7(l7Of(L7_SET_NAMES.map((name) => `{ name: ${name}, set: ${name} }`)), 0);
    // All four sets together leave most of the automaton for the operator's own signatures.
    assert.ok(plan.dfa.states < TG_L7_MAX_STATES / 2, `${plan.dfa.states} states`);
    const hits = L7_BENIGN.map((r) => [scanPayload(plan.dfa, Buffer.from(r, 'utf8')), r] as const).filter(([m]) => m !== 0);
    assert.deepEqual(hits.map(([m, r]) => `${plan.names[m - 1]}: ${r}`), []);
  });
});
