import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPolicyFile, parsePolicy, PolicyError, type PolicyIssue } from './load.js';

/** The issues of a rejected document (fails the test if it was accepted). */
function issuesOf(text: string): readonly PolicyIssue[] {
  try {
    parsePolicy(text, 'p.yaml');
  } catch (err) {
    assert.ok(err instanceof PolicyError, `expected PolicyError, got ${String(err)}`);
    return err.issues;
  }
  assert.fail('the document was accepted');
}

/** Asserts exactly these [path, line, column?, message pattern] issues, in order. */
function expectIssues(text: string, expected: Array<[string, number, number | undefined, RegExp]>): void {
  const got = issuesOf(text);
  const show = got.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`).join('\n');
  assert.equal(got.length, expected.length, `issues:\n${show}`);
  expected.forEach(([path, line, column, re], n) => {
    const i = got[n];
    assert.equal(i.path, path, `issue ${n}:\n${show}`);
    assert.equal(i.line, line, `line of ${path}:\n${show}`);
    if (column !== undefined) assert.equal(i.column, column, `column of ${path}:\n${show}`);
    assert.match(i.message, re, `message of ${path}`);
  });
}

const docsExample = (): string => {
  const md = readFileSync(new URL('../../docs/policy.md', import.meta.url), 'utf8');
  const m = /## Example\n\n```yaml\n([\s\S]*?)```/.exec(md);
  assert.ok(m, 'docs/policy.md has an example');
  return m[1];
};

test('the documented example parses and normalises', () => {
  const p = parsePolicy(docsExample(), 'docs/policy.md');
  assert.equal(p.metering.interval, 10_000);
  assert.deepEqual(p.metering.interfaces, [{ name: 'eth0', mode: 'xdp-native' }, { name: 'tg-br0', mode: 'tc' }]);
  assert.deepEqual(p.tenants.map((t) => t.name), ['acme', 'globex']);
  assert.deepEqual(p.tenants[0].selectors.cidrs, ['198.18.1.0/24', '2001:2:0:1::/64']);
  assert.deepEqual(p.tenants[1].selectors.cidrs, ['198.18.0.0/16', '198.19.0.0/24'], 'IPv4-mapped becomes IPv4');
  assert.deepEqual(p.tenants[1].selectors.interfaces, []);
  assert.deepEqual(p.tenants[0].labels, { team: 'web', 'cost-center': '4711' });
  assert.deepEqual(p.classes?.[0].match?.ports, [{ from: 22, to: 22 }, { from: 6443, to: 6443 }, { from: 10250, to: 10259 }]);
  assert.deepEqual(p.classes?.[0].match?.protocols, [6]);
  const rate = p.plans?.[0].rates[0];
  assert.deepEqual(rate?.tiers, [
    { upTo: 10_000_000_000_000, pricePerGB: '0.05' },
    { upTo: 50_000_000_000_000, pricePerGB: '0.035' },
    { pricePerGB: '0.02' },
  ]);
  assert.equal(rate?.free, 100_000_000_000);
  assert.equal(p.quotas?.[0].budget, 1024 ** 4);
  assert.equal(p.quotas?.[0].throttleRate, 10_000_000);
  assert.deepEqual(p.isolation?.[0].bandwidth, { egress: { rate: 100_000_000, burst: 256 * 1024 }, ingress: { rate: 200_000_000, burst: 512 * 1024 } });
  assert.equal(p.security?.ddos?.holdFor, 300_000);
  assert.equal(p.security?.rules[1].redirectTo, 'tg-hp0');
  assert.doesNotThrow(() => JSON.stringify(p), 'the parsed form is JSON-serialisable');
});

test('a minimal document gets defaults and leaves reserved sections undefined', () => {
  const p = parsePolicy('version: 1\n');
  assert.deepEqual(p, {
    version: 1,
    metering: { interval: 10_000, interfaces: [], flows: { enabled: false, maxFlows: 65_536, interval: 60_000, retention: 3_600_000, maxStoreBytes: 256 * 1024 * 1024 } },
    tenants: [],
  });
  const q = parsePolicy('version: 1\ntenants:\n  - name: a\n    selectors: { interfaces: [veth-a] }\n');
  assert.deepEqual(q.tenants[0], { name: 'a', selectors: { cidrs: [], cgroups: [], interfaces: ['veth-a'] }, labels: {} });
});

test('YAML anchors and aliases are followed', () => {
  const p = parsePolicy(`version: 1
tenants:
  - name: a
    selectors: &sel { cidrs: [198.18.1.0/24] }
  - name: b
    selectors: { cidrs: [198.18.2.0/24] }
    labels: &l { tier: gold }
  - name: c
    selectors: { interfaces: [veth-c] }
    labels: *l
`);
  assert.deepEqual(p.tenants[2].labels, { tier: 'gold' });
});

test('every problem is reported with path, line and column, sorted by position', () => {
  expectIssues(
    `version: 1
metering:
  intervall: 5s
  interfaces:
    - name: veth0
      mode: tcx
tenants:
  - name: acme
    plan: gold
    selectors:
      cidrs: [198.18.1.0/24, "198.18.2.1/24"]
  - name: acme
    selectors:
      cidrs:
        - 198.18.1.0/24
      interfaces: [veth0, "bad name"]
    labelz: {}
`,
    [
      ['metering.intervall', 3, 3, /unknown key "intervall"; did you mean "interval"\?/],
      ['metering.interfaces[0].mode', 6, 13, /expected one of "tc", "xdp-generic", "xdp-native", got the string "tcx"/],
      ['tenants[0].plan', 9, 11, /plan "gold" is not defined: the document has no plans section/],
      ['tenants[0].selectors.cidrs[1]', 11, 30, /host bits set; did you mean 198\.18\.2\.0\/24\?/],
      ['tenants[1].name', 12, 11, /duplicate tenant name "acme" \(first defined at tenants\[0\]\)/],
      ['tenants[1].selectors.cidrs[0]', 15, 11, /198\.18\.1\.0\/24 is already claimed by tenant "acme" \(tenants\[0\]\.selectors\.cidrs\[0\]\)/],
      ['tenants[1].selectors.interfaces[1]', 16, 27, /must not contain/],
      ['tenants[1].labelz', 17, 5, /unknown key "labelz"; did you mean "labels"\?/],
    ],
  );
});

test('the error message lists every issue as source:line:col: path: message', () => {
  try {
    parsePolicy('version: 1\ntenants:\n  - name: A\n    selectors: {}\n', 'pol.yaml');
    assert.fail('accepted');
  } catch (err) {
    assert.ok(err instanceof PolicyError);
    const lines = err.message.split('\n');
    assert.match(lines[0], /^policy pol\.yaml rejected \(2 problems\):$/);
    assert.equal(lines[1], '  pol.yaml:3:11: tenants[0].name: tenant name "A" must be 1-63 characters of a-z, 0-9 and "-", starting and ending with a letter or digit');
    assert.equal(lines[2], '  pol.yaml:4:16: tenants[0].selectors: needs at least one selector: cidrs, cgroups or interfaces');
  }
});

test('YAML syntax errors become PolicyError with positions', () => {
  const flow = issuesOf('version: 1\ntenants: [\n');
  assert.equal(flow[0].path, '(yaml)');
  assert.ok(flow[0].line >= 2, `line ${flow[0].line}`);
  expectIssues('version: 1\nversion: 1\n', [['(yaml)', 2, 1, /unique/]]);
  expectIssues('version: 1\n\tmetering: {}\n', [['(yaml)', 2, undefined, /.+/]]);
  expectIssues('version: 1\n---\nversion: 1\n', [['(yaml)', 2, undefined, /multiple documents/i]]);
});

test('document-level errors', () => {
  expectIssues('', [['(document)', 1, 1, /empty/]]);
  expectIssues('# just a comment\n', [['(document)', 1, 1, /empty/]]);
  expectIssues('- 1\n', [['(document)', 1, 1, /expected a mapping, got a list/]]);
  expectIssues('metering: {}\n', [['version', 1, 1, /required/]]);
  expectIssues('version: 2\n', [['version', 1, 10, /unsupported version 2; this agent reads version 1/]]);
  expectIssues('version: "1"\n', [['version', 1, 10, /unsupported version "1"/]]);
  expectIssues('version: 1\ntenant: []\n', [['tenant', 2, 1, /unknown key "tenant"; did you mean "tenants"\?/]]);
  expectIssues('version: 1\nbogus: 1\n', [['bogus', 2, 1, /allowed keys: version, metering, tenants, classes, plans, quotas, alerts, isolation, security/]]);
});

test('metering errors', () => {
  expectIssues('version: 1\nmetering:\n  interval: 500ms\n', [['metering.interval', 3, 13, /at least 1s/]]);
  expectIssues('version: 1\nmetering:\n  interval: 10\n', [['metering.interval', 3, 13, /duration string/]]);
  expectIssues('version: 1\nmetering:\n  interval: 10 sec\n', [['metering.interval', 3, 13, /not a duration/]]);
  expectIssues('version: 1\nmetering:\n  interfaces:\n    - name: a-very-long-ifname0\n', [['metering.interfaces[0].name', 4, 13, /longer than 15 bytes/]]);
  expectIssues('version: 1\nmetering:\n  interfaces:\n    - name: eth0\n    - name: eth0\n', [['metering.interfaces[1].name', 5, 13, /"eth0" is listed twice \(first at metering\.interfaces\[0\]\)/]]);
  expectIssues('version: 1\nmetering:\n  interfaces:\n    - mode: tc\n', [['metering.interfaces[0].name', 4, 7, /required/]]);
  expectIssues('version: 1\nmetering:\n  interfaces: eth0\n', [['metering.interfaces', 3, 15, /expected a list, got the string "eth0"/]]);
});

test('tenant errors', () => {
  const t = (body: string): string => `version: 1\ntenants:\n${body}`;
  expectIssues(t('  - name: unattributed\n    selectors: { interfaces: [x] }\n'), [['tenants[0].name', 3, 11, /reserved/]]);
  expectIssues(t(`  - name: ${'a'.repeat(64)}\n    selectors: { interfaces: [x] }\n`), [['tenants[0].name', 3, 11, /1-63 characters/]]);
  expectIssues(t('  - name: -a\n    selectors: { interfaces: [x] }\n'), [['tenants[0].name', 3, 11, /1-63 characters/]]);
  expectIssues(t('  - name: a\n'), [['tenants[0].selectors', 3, 5, /required/]]);
  expectIssues(t('  - name: a\n    selectors: { cidrs: [198.18.0.0/33] }\n'), [['tenants[0].selectors.cidrs[0]', 4, 26, /invalid prefix length "33"/]]);
  expectIssues(t('  - name: a\n    selectors: { cidrs: [2001:2::1/48] }\n'), [['tenants[0].selectors.cidrs[0]', 4, 26, /did you mean 2001:2::\/48\?/]]);
  expectIssues(t('  - name: a\n    selectors: { cgroups: [tenants/a] }\n'), [['tenants[0].selectors.cgroups[0]', 4, 28, /starting with "\/"/]]);
  expectIssues(t('  - name: a\n    selectors: { interfaces: [x] }\n    labels: { n: 1 }\n'), [['tenants[0].labels.n', 5, 18, /label values are strings/]]);
  expectIssues(t('  - name: a\n    selectors: { interfaces: [x] }\n    labels: { "a b": x }\n'), [['tenants[0].labels["a b"]', 5, 15, /invalid key: label keys/]]);
  expectIssues(t('  - name: a\n    selectors: { interfaces: [x], ciders: [] }\n'), [['tenants[0].selectors.ciders', 4, 35, /did you mean "cidrs"\?/]]);
});

test('duplicate CIDRs, interfaces and cgroups across and within tenants', () => {
  expectIssues(
    `version: 1
tenants:
  - name: a
    selectors:
      cidrs: [198.18.1.0/24, "2001:2::/48", 198.18.1.0/24]
      interfaces: [veth-a, veth-a]
      cgroups: [/t/a/**]
  - name: b
    selectors:
      cidrs: ["::ffff:198.18.1.0/120", "2001:0002:0::/48", 198.18.0.0/16]
      interfaces: [veth-a]
      cgroups: [/t/a/**, /t/b/**]
`,
    [
      ['tenants[0].selectors.cidrs[2]', 5, undefined, /listed twice in this tenant \(first at tenants\[0\]\.selectors\.cidrs\[0\]\)/],
      ['tenants[0].selectors.interfaces[1]', 6, undefined, /interface veth-a is listed twice in this tenant/],
      ['tenants[1].selectors.cidrs[0]', 10, undefined, /CIDR 198\.18\.1\.0\/24 is already claimed by tenant "a"/],
      ['tenants[1].selectors.cidrs[1]', 10, undefined, /CIDR 2001:2::\/48 is already claimed by tenant "a"/],
      ['tenants[1].selectors.interfaces[0]', 11, undefined, /interface veth-a is already claimed by tenant "a"/],
      ['tenants[1].selectors.cgroups[0]', 12, undefined, /cgroup glob \/t\/a\/\*\* is already claimed by tenant "a"/],
    ],
  );
});

test('overlapping prefixes of two tenants are allowed (longest prefix wins)', () => {
  const p = parsePolicy('version: 1\ntenants:\n  - name: a\n    selectors: { cidrs: [198.18.0.0/15] }\n  - name: b\n    selectors: { cidrs: [198.18.1.0/24, 198.18.1.128/25] }\n');
  assert.equal(p.tenants.length, 2);
});

test('reference checks: plans, classes, tenants', () => {
  expectIssues(
    `version: 1
tenants:
  - name: a
    plan: gold
    selectors: { interfaces: [x] }
classes:
  - name: mgmt
    billable: false
    match: { cidrs: [198.18.9.0/24] }
  - name: mgmt
    match: { protocols: [icmp] }
plans:
  - name: silver
    currency: EUR
    rates:
      - { class: mgmt, direction: both, pricePerGB: 0 }
      - { class: mgmt, direction: egress, pricePerGB: 1 }
      - { class: video, direction: egress, pricePerGB: 1 }
quotas:
  - { tenant: b, class: nope, budget: 1GB }
isolation:
  - { tenant: c, maxConnections: 10 }
security:
  rules:
    - { name: r, action: deny, tenant: d }
    - { name: r, action: log }
`,
    [
      ['tenants[0].plan', 4, 11, /unknown plan "gold"; defined: "silver"/],
      ['classes[1].name', 10, 11, /duplicate class name "mgmt"/],
      ['plans[0].rates[0].class', 16, 18, /class "mgmt" is not billable \(classes\[0\]\.billable is false\); a plan cannot price it/],
      ['plans[0].rates[1]', 17, 9, /class "mgmt" egress is already priced by plans\[0\]\.rates\[0\]/],
      ['plans[0].rates[1].class', 17, 18, /not billable/],
      ['plans[0].rates[2].class', 18, 18, /unknown class "video"; defined: "mgmt", "internet"/],
      ['quotas[0].tenant', 20, 15, /unknown tenant "b"; defined: "a"/],
      ['quotas[0].class', 20, 25, /unknown class "nope"/],
      ['isolation[0].tenant', 22, 15, /unknown tenant "c"/],
      ['security.rules[0].tenant', 25, 40, /unknown tenant "d"/],
      ['security.rules[1].name', 26, 15, /duplicate rule name "r"/],
    ],
  );
});

test('plan errors: currency, tiers, price forms', () => {
  const plan = (rates: string, extra = ''): string => `version: 1\nplans:\n  - name: p\n    currency: EUR\n${extra}    rates:\n${rates}`;
  expectIssues('version: 1\nplans:\n  - name: p\n    currency: eur\n', [['plans[0].currency', 4, 15, /ISO 4217/]]);
  expectIssues(plan('      - { class: internet, direction: egress }\n'), [['plans[0].rates[0].pricePerGB', 6, 9, /exactly one of pricePerGB or tiers/]]);
  expectIssues(plan('      - { class: internet, direction: egress, pricePerGB: 0.1 }\n'), [['plans[0].rates[0].pricePerGB', 6, 59, /not an exact amount/]]);
  expectIssues(plan('      - { class: internet, direction: sideways, pricePerGB: 1 }\n'), [['plans[0].rates[0].direction', 6, 39, /expected one of "ingress", "egress", "both"/]]);
  expectIssues(
    plan(`      - class: internet
        direction: egress
        tiers:
          - { upTo: 10TB, pricePerGB: 5 }
          - { upTo: 5TB, pricePerGB: 4 }
          - { pricePerGB: 3 }
          - { pricePerGB: 2 }
`),
    [
      ['plans[0].rates[0].tiers[1].upTo', 10, 21, /tiers overlap/],
      ['plans[0].rates[0].tiers[2].upTo', 11, 13, /only the last tier may be open-ended/],
    ],
  );
  expectIssues(plan('      - class: internet\n        direction: egress\n        tiers: [{ upTo: 1TB, pricePerGB: 1 }]\n'), [['plans[0].rates[0].tiers[0].upTo', 8, 25, /last tier must be open-ended/]]);
});

test('plan errors: unknown currency and zone, negative prices, percentile and hourly shapes', () => {
  const plan = (body: string): string => `version: 1\nplans:\n  - name: p\n${body}`;
  expectIssues(plan('    currency: XYZ\n'), [['plans[0].currency', 4, 15, /unknown currency "XYZ": not an active ISO 4217 code/]]);
  expectIssues(plan('    currency: EUR\n    timeZone: Mars/Olympus\n'), [['plans[0].timeZone', 5, 15, /Mars\/Olympus/]]);
  expectIssues(plan('    currency: EUR\n    rates: [{ class: internet, direction: egress, pricePerGB: "-0.01" }]\n'), [['plans[0].rates[0].pricePerGB', 5, 63, /not an exact amount/]]);
  expectIssues(plan('    currency: EUR\n    flatFees: [{ name: base, amount: -5 }]\n'), [['plans[0].flatFees[0].amount', 5, 38, /not an exact amount/]]);
  expectIssues(plan('    currency: EUR\n    percentile95: { sampleInterval: 7m, overagePricePerMbit: 1 }\n'), [['plans[0].percentile95.sampleInterval', 5, 37, /divide an hour evenly/]]);
  expectIssues(plan('    currency: EUR\n    percentile95: { commit: 10mbit }\n'), [['plans[0].percentile95.overagePricePerMbit', 5, 19, /required/]]);
  expectIssues(plan('    currency: EUR\n    hourly: [{ name: ip, basis: reserved, pricePerHour: 1 }]\n'), [['plans[0].hourly[0].basis', 5, 33, /"active", "provisioned"/]]);
  expectIssues(plan('    currency: EUR\n    percentile95: { class: video, overagePricePerMbit: 1 }\n'), [['plans[0].percentile95.class', 5, 28, /unknown class "video"/]]);
});

test('alerts errors: webhooks are http(s) URLs, attempts bounded', () => {
  expectIssues('version: 1\nalerts:\n  webhooks: [ftp://x/y, "not a url"]\n  maxAttempts: 0\n', [
    ['alerts.webhooks[0]', 3, 14, /"ftp:\/\/x\/y" is not an http:\/\/ or https:\/\/ URL/],
    ['alerts.webhooks[1]', 3, 25, /"not a url" is not an http/],
    ['alerts.maxAttempts', 4, 16, /at least 1/],
  ]);
});

test('class errors', () => {
  expectIssues('version: 1\nclasses:\n  - name: internet\n    match: { protocols: [tcp] }\n', [['classes[0].match', 4, 12, /fallback class/]]);
  expectIssues('version: 1\nclasses:\n  - name: mgmt\n', [['classes[0].match', 3, 5, /required/]]);
  expectIssues('version: 1\nclasses:\n  - name: mgmt\n    match: {}\n', [['classes[0].match', 4, 12, /empty match/]]);
  expectIssues('version: 1\nclasses:\n  - name: mgmt\n    match: { protocols: [icmp], ports: [22] }\n', [['classes[0].match.ports', 4, 40, /tcp, udp or sctp/]]);
  expectIssues('version: 1\nclasses:\n  - name: mgmt\n    match: { protocols: [tcpp] }\n', [['classes[0].match.protocols[0]', 4, 26, /unknown protocol "tcpp"/]]);
  expectIssues('version: 1\nclasses:\n  - name: mgmt\n    match: { ports: ["2000-1000", 70000, true] }\n', [
    ['classes[0].match.ports[0]', 4, 22, /not a port or range/],
    ['classes[0].match.ports[1]', 4, 35, /not a port or range/],
    ['classes[0].match.ports[2]', 4, 42, /expected a port/],
  ]);
});

test('quota, isolation and security errors', () => {
  expectIssues('version: 1\ntenants: [{ name: a, selectors: { interfaces: [x] } }]\nquotas:\n  - { tenant: a, budget: 1GB, action: throttle }\n', [['quotas[0].throttleRate', 4, 5, /required when action is throttle/]]);
  expectIssues('version: 1\ntenants: [{ name: a, selectors: { interfaces: [x] } }]\nquotas:\n  - { tenant: a, budget: 1GB, thresholds: [80, 50] }\n', [['quotas[0].thresholds[1]', 4, 48, /strictly increasing/]]);
  expectIssues('version: 1\ntenants: [{ name: a, selectors: { interfaces: [x] } }]\nquotas:\n  - { tenant: a, budget: 1 GiBs }\n', [['quotas[0].budget', 4, 26, /not a size/]]);
  expectIssues(
    'version: 1\ntenants: [{ name: a, selectors: { interfaces: [x] } }]\nisolation:\n  - { tenant: a, bandwidth: { egress: { rate: 10mbps, burst: 1MB } } }\n  - { tenant: a, syscalls: { mode: kill, deny: [ptrace] } }\n',
    [
      ['isolation[0].bandwidth.egress.rate', 4, 47, /ambiguous/],
      ['isolation[1]', 5, 5, /same tenant and containers as isolation\[0\]/],
      ['isolation[1].syscalls.mode', 5, 36, /"audit", "enforce"/],
    ],
  );
  expectIssues('version: 1\nsecurity:\n  rules:\n    - { name: r, action: redirect }\n    - { name: s, action: deny, rateLimit: { pps: 5 } }\n', [
    ['security.rules[0].redirectTo', 4, 7, /required when action is redirect/],
    ['security.rules[1].rateLimit', 5, 43, /only applies when action is rate-limit/],
  ]);
  expectIssues('version: 1\nsecurity:\n  ddos: { window: 1s }\n', [['security.ddos', 3, 9, /thresholdPps, thresholdBps or both/]]);
  expectIssues('version: 1\nsecurity:\n  rateLimits: [{ name: x, pps: 5, colour: red }]\n', [['security.rateLimits[0].colour', 3, 35, /unknown key "colour"/]]);
});

test('loadPolicyFile uses the path as the source', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-policy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.yaml');
  writeFileSync(good, 'version: 1\n');
  assert.equal(loadPolicyFile(good).version, 1);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'version: 1\nmetering: { interval: 1 }\n');
  assert.throws(() => loadPolicyFile(bad), (e: unknown) => e instanceof PolicyError && e.message.includes(`${bad}:2:23: metering.interval:`));
  assert.throws(() => loadPolicyFile(join(dir, 'missing.yaml')), (e: unknown) => e instanceof PolicyError && /cannot read the policy file: ENOENT/.test(e.message));
});

test('generic messages are worded for people: bounds, integers, booleans', () => {
  expectIssues(
    `version: 1
tenants: [{ name: a, selectors: { interfaces: [x] } }]
isolation:
  - { tenant: a, maxConnections: 0 }
  - { tenant: a, containers: /x, maxConnections: 1.5, syscalls: { deny: [] }, sensitivePaths: [etc] }
security:
  l7: { signatures: [{ name: s, pattern: "" }] }
classes: [{ name: x, billable: yes, match: { protocols: [256] } }]
`,
    [
      ['isolation[0].maxConnections', 4, 34, /^must be at least 1$/],
      ['isolation[1].maxConnections', 5, 50, /^expected an integer, got number 1\.5$/],
      ['isolation[1].syscalls.deny', 5, 73, /^needs at least 1 entry$/],
      ['isolation[1].sensitivePaths[0]', 5, 96, /must be an absolute path/],
      ['security.l7.signatures[0].pattern', 7, 42, /^must be at least 1 character long$/],
      ['classes[0].billable', 8, 32, /^expected a boolean, got the string "yes"$/],
      ['classes[0].match.protocols[0]', 8, 58, /unknown protocol 256/],
    ],
  );
});

test('isolation: negative or zero rates, a burst below one frame, an empty bandwidth name the field', () => {
  expectIssues(
    `version: 1
tenants: [{ name: a, selectors: { cgroups: ["/t/**"] } }]
isolation:
  - { tenant: a, bandwidth: { egress: { rate: -5mbit, burst: 0 } } }
  - { tenant: a, containers: "/t/x", bandwidth: { ingress: { rate: 0mbit, burst: 1000B } } }
  - { tenant: a, containers: "/t/y", bandwidth: {} }
`,
    [
      ['isolation[0].bandwidth.egress.rate', 4, 47, /"-5mbit" is not a rate/],
      ['isolation[0].bandwidth.egress.burst', 4, 62, /must be from 1514 bytes/],
      ['isolation[1].bandwidth.ingress.rate', 5, 68, /must be from 8kbit to 100gbit per second/],
      ['isolation[1].bandwidth.ingress.burst', 5, 82, /must be from 1514 bytes \(one full-size frame\) to 1GiB/],
      ['isolation[2].bandwidth', 6, 49, /give egress, ingress or both/],
    ],
  );
});

test('isolation: unknown syscall names, bad exec programs and too many scopes name the field', () => {
  expectIssues(
    `version: 1
tenants: [{ name: a, selectors: { cgroups: ["/t/**"] } }]
isolation:
  - { tenant: a, syscalls: { mode: enforce, deny: [ptrac, mount, frobnicate] }, execs: { alert: [bash, "a/b", ""] } }
`,
    [
      ['isolation[0].syscalls.deny[0]', 4, 52, /^unknown syscall "ptrac"; did you mean "ptrace"\? \(x86_64 names/],
      ['isolation[0].syscalls.deny[2]', 4, 66, /^unknown syscall "frobnicate" \(x86_64 names, e\.g\. "ptrace"\)$/],
      ['isolation[0].execs.alert[1]', 4, 104, /must be a program name such as "bash" or an absolute path/],
      ['isolation[0].execs.alert[2]', 4, 111, /must be a program name/],
    ],
  );
  const many = Array.from({ length: 64 }, (_, i) => `  - { tenant: a, containers: "/t/${i}" }`).join('\n');
  expectIssues(`version: 1\ntenants: [{ name: a, selectors: { cgroups: ["/t/**"] } }]\nisolation:\n${many}\n`, [['isolation', 4, 3, /at most 63 entries/]]);
  const p = parsePolicy('version: 1\ntenants: [{ name: a, selectors: { cgroups: ["/t/**"] } }]\nisolation: [{ tenant: a }]\n');
  assert.deepEqual(p.isolation?.[0], { tenant: 'a', execs: { log: false, alert: ['sh', 'bash', 'dash', 'zsh', 'ash', 'ksh', 'mksh', 'csh', 'tcsh', 'fish'] } });
});

test('metering.flows: bad values name the field', () => {
  expectIssues('version: 1\nmetering:\n  flows: { enabled: yes, maxFlows: 10 }\n', [
    ['metering.flows.enabled', 3, 21, /expected a boolean/],
    ['metering.flows.maxFlows', 3, 36, />=1024|at least|too small/i],
  ]);
  expectIssues('version: 1\nmetering:\n  flows: { interval: 500ms, bogus: 1 }\n', [
    ['metering.flows.interval', 3, 22, /at least 1s/],
    ['metering.flows.bogus', 3, 29, /unknown key "bogus"; allowed keys: enabled, maxFlows/],
  ]);
});


test('quota throttle settings and thresholds are checked', () => {
  const head = 'version: 1\ntenants: [{ name: a, selectors: { interfaces: [x] } }]\nquotas:\n';
  expectIssues(`${head}  - { tenant: a, budget: 1GB, action: block, throttleBurst: 1MB }\n`, [
    ['quotas[0].throttleBurst', 4, 61, /only applies when action is throttle/],
  ]);
  expectIssues(`${head}  - { tenant: a, budget: 1GB, throttleBurst: 1MB }\n`, [
    ['quotas[0].throttleBurst', 4, 46, /only applies when action is throttle/],
  ]);
  expectIssues(`${head}  - { tenant: a, budget: 1GB, action: throttle, throttleRate: 4bit }\n`, [
    ['quotas[0].throttleRate', 4, 63, /at least 8bit/],
  ]);
  expectIssues(`${head}  - { tenant: a, budget: 1GB, thresholds: [10, 20, 30, 40, 50] }\n`, [
    ['quotas[0].thresholds', 4, 43, /at most 4 entries/],
  ]);
  const ok = parsePolicy(`${head}  - { tenant: a, budget: 1GB, thresholds: [10, 20, 30, 40], action: throttle, throttleRate: 8bit, throttleBurst: 1MB }\n`);
  assert.deepEqual(
    [ok.quotas?.[0].thresholds, ok.quotas?.[0].throttleRate, ok.quotas?.[0].throttleBurst],
    [[10, 20, 30, 40], 8, 1_000_000],
    'the bounds themselves are accepted',
  );
});
