// The security section's rate limits and event settings in the schema
// (schema.ts: limitShape, checkLimit, security.rateLimits, security.events):
// what is refused, naming the field, and what good input normalises to.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePolicy, PolicyError, type PolicyIssue } from './load.js';
import type { SecuritySection } from './schema.js';

const TENANTS = 'tenants: [{ name: acme, selectors: { interfaces: [eth9] } }]\n';
/** A policy whose security section is the given (indented) lines. */
const doc = (security: string): string => `version: 1\n${TENANTS}security:\n${security}`;
/** A policy with one standing limit, written as a flow mapping's inside. */
const standing = (fields: string): string => doc(`  rateLimits: [{ name: lim, ${fields} }]\n`);
/** A policy with one rate-limit rule whose rateLimit is the flow mapping's inside. */
const ruled = (fields: string): string => doc(`  rules: [{ name: r, action: rate-limit, rateLimit: { ${fields} } }]\n`);

function security(text: string): SecuritySection {
  const s = parsePolicy(text, 'p.yaml').security;
  assert.ok(s, 'the policy has a security section');
  return s;
}

function issuesOf(text: string): readonly PolicyIssue[] {
  try {
    parsePolicy(text, 'p.yaml');
  } catch (err) {
    assert.ok(err instanceof PolicyError, `expected PolicyError, got ${String(err)}`);
    return err.issues;
  }
  assert.fail('the document was accepted');
}

/** Asserts exactly these [path, message pattern] issues, in order. */
function expectIssues(text: string, expected: Array<[string, RegExp]>): void {
  const got = issuesOf(text);
  const show = got.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`).join('\n');
  assert.equal(got.length, expected.length, `issues:\n${show}`);
  expected.forEach(([path, re], n) => {
    assert.equal(got[n]!.path, path, `issue ${n}:\n${show}`);
    assert.match(got[n]!.message, re, `message of ${path}`);
    assert.equal(got[n]!.line, 4, `line of ${path}: the security section's only line`);
  });
}

describe('rate limit schema: refused input names the field', () => {
  test('burst without pps', () => {
    expectIssues(standing('bps: 1mbit, burst: 5'), [['security.rateLimits[0].burst', /^a packet burst needs pps$/]]);
    expectIssues(ruled('bps: 1mbit, burst: 5'), [['security.rules[0].rateLimit.burst', /^a packet burst needs pps$/]]);
  });

  test('burstBytes without bps', () => {
    expectIssues(standing('pps: 5, burstBytes: 64KB'), [['security.rateLimits[0].burstBytes', /^a byte burst needs bps$/]]);
    expectIssues(ruled('pps: 5, burstBytes: 64KB'), [['security.rules[0].rateLimit.burstBytes', /^a byte burst needs bps$/]]);
  });

  test('neither pps nor bps (the limit itself is named; a burst alone is also refused)', () => {
    expectIssues(standing('per: rule'), [['security.rateLimits[0]', /^give pps, bps or both$/]]);
    expectIssues(ruled('per: source'), [['security.rules[0].rateLimit', /^give pps, bps or both$/]]);
    expectIssues(ruled('burst: 3'), [
      ['security.rules[0].rateLimit', /^give pps, bps or both$/],
      ['security.rules[0].rateLimit.burst', /^a packet burst needs pps$/],
    ]);
  });

  test('bps out of 8bit..8tbit', () => {
    expectIssues(standing('bps: 1bit'), [['security.rateLimits[0].bps', /^must be from 8bit to 8tbit per second$/]]);
    expectIssues(standing('bps: 7'), [['security.rateLimits[0].bps', /^must be from 8bit to 8tbit per second$/]]);
    expectIssues(ruled('bps: 0bit'), [['security.rules[0].rateLimit.bps', /^must be from 8bit to 8tbit per second$/]]);
    expectIssues(ruled('bps: 8001gbit'), [['security.rules[0].rateLimit.bps', /^must be from 8bit to 8tbit per second$/]]);
    expectIssues(ruled('bps: 10mbps'), [['security.rules[0].rateLimit.bps', /"bps" is ambiguous/]]);
    // The edges themselves are accepted.
    assert.equal(security(ruled('bps: 8bit')).rules[0]!.rateLimit!.bps, 8);
    assert.equal(security(ruled('bps: 8tbit')).rules[0]!.rateLimit!.bps, 8e12);
  });

  test('per must be source, destination, rule or tenant', () => {
    expectIssues(standing('pps: 1, per: bogus'), [['security.rateLimits[0].per', /expected one of "source", "destination", "rule", "tenant"/]]);
    expectIssues(ruled('pps: 1, per: bogus'), [['security.rules[0].rateLimit.per', /expected one of "source", "destination", "rule", "tenant"/]]);
  });

  test('burstBytes from 64 bytes to 1GB; pps and burst from 1 to 10^9', () => {
    expectIssues(ruled('bps: 1mbit, burstBytes: 63'), [['security.rules[0].rateLimit.burstBytes', /^must be from 64 bytes to 1GB$/]]);
    expectIssues(ruled('bps: 1mbit, burstBytes: 1000000001'), [['security.rules[0].rateLimit.burstBytes', /^must be from 64 bytes to 1GB$/]]);
    expectIssues(ruled('bps: 1mbit, burstBytes: 1GiB'), [['security.rules[0].rateLimit.burstBytes', /^must be from 64 bytes to 1GB$/]]);
    expectIssues(ruled('bps: 1mbit, burstBytes: lots'), [['security.rules[0].rateLimit.burstBytes', /not a size/]]);
    expectIssues(standing('pps: 0'), [['security.rateLimits[0].pps', /./]]);
    expectIssues(standing('pps: 1000000001'), [['security.rateLimits[0].pps', /./]]);
    expectIssues(standing('pps: 1.5'), [['security.rateLimits[0].pps', /./]]);
    expectIssues(standing('pps: 5, burst: 0'), [['security.rateLimits[0].burst', /./]]);
    expectIssues(standing('pps: 5, burst: 1000000001'), [['security.rateLimits[0].burst', /./]]);
    assert.equal(security(ruled('bps: 1mbit, burstBytes: 64')).rules[0]!.rateLimit!.burstBytes, 64);
    assert.equal(security(ruled('bps: 1mbit, burstBytes: 1GB')).rules[0]!.rateLimit!.burstBytes, 1_000_000_000);
    assert.equal(security(standing('pps: 1000000000, burst: 1000000000')).rateLimits[0]!.burst, 1_000_000_000);
  });

  test('at most 16 standing limits', () => {
    const limits = (n: number) => doc(`  rateLimits: [${Array.from({ length: n }, (_, i) => `{ name: l${i}, pps: 1 }`).join(', ')}]\n`);
    expectIssues(limits(17), [['security.rateLimits', /^at most 16 standing rate limits$/]]);
    assert.equal(security(limits(16)).rateLimits.length, 16);
  });

  test('standing limits: unknown keys, an unknown tenant and duplicate names', () => {
    expectIssues(standing('pps: 1, burstPackets: 3'), [['security.rateLimits[0].burstPackets', /unknown key "burstPackets"/]]);
    expectIssues(standing('pps: 1, direction: sideways'), [['security.rateLimits[0].direction', /"ingress", "egress", "both"/]]);
    expectIssues(standing('pps: 1, tenant: nobody'), [['security.rateLimits[0].tenant', /unknown tenant "nobody"/]]);
    expectIssues(doc('  rateLimits: [{ name: x, pps: 1 }, { name: x, bps: 1mbit }]\n'), [['security.rateLimits[1].name', /duplicate rate limit name "x"/]]);
  });

  test('events: logRate 1..10^6, maxStored 1000..10^8, retention a duration', () => {
    expectIssues(doc('  events: { logRate: 0 }\n'), [['security.events.logRate', /at least 1/]]);
    expectIssues(doc('  events: { logRate: 1000001 }\n'), [['security.events.logRate', /./]]);
    expectIssues(doc('  events: { maxStored: 999 }\n'), [['security.events.maxStored', /./]]);
    expectIssues(doc('  events: { retention: 3600 }\n'), [['security.events.retention', /duration/]]);
    expectIssues(doc('  events: { lograte: 5 }\n'), [['security.events.lograte', /unknown key "lograte"/]]);
  });
});

describe('rate limit schema: good input, normalised', () => {
  test('standing limits and a rule\'s limit: bps in bits per second, burstBytes in bytes, defaults filled in', () => {
    const s = security(doc([
      '  rateLimits:',
      '    - { name: acme-in, tenant: acme, direction: both, bps: 10mbit, burstBytes: "1500", per: tenant }',
      '    - { name: each, pps: 1000, burst: 5 }',
      '    - { name: out, direction: egress, pps: 7, bps: 12345, per: destination }',
      '  rules:',
      '    - { name: r, action: rate-limit, rateLimit: { pps: 100, bps: 1gbit, burstBytes: 64KB, per: rule } }',
      '    - { name: s, action: rate-limit, rateLimit: { bps: "512kbit", burstBytes: 2KiB } }',
      '',
    ].join('\n')));
    assert.deepEqual(s.rateLimits, [
      { name: 'acme-in', tenant: 'acme', direction: 'both', bps: 10_000_000, burstBytes: 1500, per: 'tenant' },
      { name: 'each', direction: 'ingress', pps: 1000, burst: 5, per: 'source' },
      { name: 'out', direction: 'egress', pps: 7, bps: 12_345, per: 'destination' },
    ]);
    assert.deepEqual(s.rules.map((r) => r.rateLimit), [
      { pps: 100, bps: 1_000_000_000, burstBytes: 64_000, per: 'rule' },
      { bps: 512_000, burstBytes: 2048, per: 'source' },
    ]);
  });

  test('events defaults: logRate 1000, retention 7 days, maxStored 10^6; no rate limits', () => {
    const s = security(doc('  defaultAction: allow\n'));
    assert.deepEqual(s.events, { logRate: 1000, retention: 604_800_000, maxStored: 1_000_000 });
    assert.deepEqual(s.rateLimits, []);
    assert.deepEqual(security(doc('  events: { logRate: 5, retention: 1h }\n')).events, { logRate: 5, retention: 3_600_000, maxStored: 1_000_000 });
    assert.deepEqual(security(doc('  events: { logRate: 1000000, maxStored: 100000000, retention: 30d }\n')).events,
      { logRate: 1_000_000, retention: 30 * 86_400_000, maxStored: 100_000_000 });
  });
});
