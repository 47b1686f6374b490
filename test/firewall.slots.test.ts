// The firewall's counter slots across a restart: the slot file is written
// after the switch, so a crash can leave it one update behind the rules in
// the kernel. A restarted agent must then give every rule the slot the
// crashed one used (or a zeroed one), never another rule's counts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Firewall } from '../src/firewall/firewall.js';
import { parsePolicy, type Policy } from '../src/policy/index.js';
import { FIXTURE_TENANTS_YAML } from '../src/firewall/firewall.fixture.js';
import { ipv4, udp } from '../lab/packets.js';
import { frameOf, Harness, IDS, OBJECT } from './helpers/firewall.js';

const policy = (rules: string[]): Policy =>
  parsePolicy(`version: 1\n${FIXTURE_TENANTS_YAML}security:\n  rules:\n${rules.map((r) => `    - { name: ${r}, action: log, protocols: [udp], ports: [${7000 + Number(r.slice(1))}] }\n`).join('')}`, 'slots');
const datagram = (dport: number) => frameOf(ipv4({ src: '198.19.5.1', dst: '198.18.1.10', l4: udp({ sport: 40000, dport, payload: Buffer.alloc(8) }) }));

describe('firewall counter slots across a crash', () => {
  let skipReason: string | undefined;
  let h: Harness | undefined;
  let dir: string | undefined;
  before(() => {
    if (process.getuid?.() !== 0) skipReason = 'needs root to load BPF programs';
    else if (!existsSync(OBJECT)) skipReason = `${OBJECT} is missing: run \`bash scripts/build-bpf\``;
  });
  after(() => {
    h?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a slot file one update behind gives a restarted firewall the same slots, and no rule another\'s hits', (t) => {
    if (skipReason) return t.skip(skipReason);
    h = new Harness();
    dir = mkdtempSync(join(tmpdir(), 'tollgate-fwslots-'));
    const file = join(dir, 'firewall-slots.json');
    const hits = (fw: Firewall) => new Map(fw.status().rules.map((r) => [r.name, r.packets]));

    const crashed = new Firewall(h.fw, file);
    crashed.apply(policy(['r1', 'r2', 'r3']), IDS);
    for (const dport of [7001, 7001, 7001, 7003]) h.run('tg_filter_ingress', datagram(dport)); // counts r4 and r5 must not inherit
    const behind = readFileSync(file, 'utf8'); // what a crash right after the next switch leaves
    crashed.apply(policy(['r2', 'r4', 'r5']), IDS); // r1 and r3 go, r4 and r5 take their slots
    for (const dport of [7002, 7004, 7004, 7005, 7005, 7005]) h.run('tg_filter_ingress', datagram(dport));
    const slotsThen = JSON.parse(readFileSync(file, 'utf8')).slots as Record<string, number>;
    assert.deepEqual(hits(crashed), new Map([['r2', 1n], ['r4', 2n], ['r5', 3n], ['(default)', 0n]]));

    writeFileSync(file, behind);
    const restarted = new Firewall(h.fw, file);
    restarted.apply(policy(['r2', 'r4', 'r5']), IDS);
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')).slots, slotsThen, 'the same slot for every rule');
    // r2 kept its slot and its count; r4 and r5 are new to the old file, so they start again from zero.
    assert.deepEqual(hits(restarted), new Map([['r2', 1n], ['r4', 0n], ['r5', 0n], ['(default)', 0n]]));
    h.run('tg_filter_ingress', datagram(7004));
    assert.equal(hits(restarted).get('r4'), 1n);
  });
});
