// L7 signatures in the datapath under BPF_PROG_TEST_RUN, fed by the
// production compiler: the attack corpus of every built-in set is caught and
// the benign corpus is not; the kernel's walk agrees with the TypeScript walk
// of the same automaton on every request and on random payloads; a deny
// signature drops the segment and answers the client with a RST (checked
// byte by byte); log signatures only send events; other ports and bytes past
// the scan window are not looked at.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { TypedMap, u32, u64 } from '../src/kernel/index.js';
import { TG_L7_SCAN, TG_SEV_SENT } from '../src/kernel/abi.gen.js';
import { compileL7, scanPayload } from '../src/firewall/l7.js';
import { mulberry32 } from '../src/firewall/firewall.fixture.js';
import { L7_ATTACKS, L7_BENIGN } from '../src/firewall/l7.fixture.js';
import { ethernet, inetChecksum, ipBytes, ipv4, rawL4, IPPROTO, TCP_FLAGS } from '../lab/packets.js';
import { Harness, OBJECT } from './helpers/firewall.js';

const TC_ACT_UNSPEC = -1;
const TC_ACT_SHOT = 2;
const TC_ACT_REDIRECT = 7;
const CLIENT = '198.19.7.7';
const SERVER = '198.18.1.10';

const SECURITY = `
  l7:
    signatures:
      - { name: sqli, set: sql-injection, ports: [80, 8080], action: deny }
      - { name: traversal, set: path-traversal, ports: [80], action: log }
      - { name: xss, set: xss, ports: [80], action: log }
      - { name: shell, set: shell-injection, ports: [80], action: deny }
`;
const SETS = ['sql-injection', 'path-traversal', 'xss', 'shell-injection'] as const;
const DENY = new Set(['sql-injection', 'shell-injection']);

function tcpChecksum(src: string, dst: string, seg: Buffer): number {
  const pseudo = Buffer.alloc(12);
  ipBytes(src).copy(pseudo, 0);
  ipBytes(dst).copy(pseudo, 4);
  pseudo[9] = IPPROTO.TCP;
  pseudo.writeUInt16BE(seg.length, 10);
  const copy = Buffer.from(seg);
  copy.writeUInt16BE(0, 16);
  return inetChecksum(pseudo, copy);
}

/** A data segment client -> server:dport with seq 1000, ack 5000. */
function dataFrame(payload: Buffer, dport = 80): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(41000, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt32BE(1000, 4);
  h.writeUInt32BE(5000, 8);
  h[12] = 5 << 4;
  h[13] = TCP_FLAGS.ACK | TCP_FLAGS.PSH;
  h.writeUInt16BE(502, 14);
  const seg = Buffer.concat([h, payload]);
  seg.writeUInt16BE(tcpChecksum(CLIENT, SERVER, seg), 16);
  return ethernet({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', payload: ipv4({ src: CLIENT, dst: SERVER, l4: rawL4(IPPROTO.TCP, seg) }) });
}

describe('L7 signatures under BPF_PROG_TEST_RUN', () => {
  let skipReason: string | undefined;
  let h: Harness;
  let sent: () => bigint;
  let walk: (payload: Buffer) => number;
  before(() => {
    if (process.getuid?.() !== 0) skipReason = 'needs root to load BPF programs';
    else if (!existsSync(OBJECT)) skipReason = `${OBJECT} is missing: run \`bash scripts/build-bpf\``;
    if (skipReason) return;
    h = new Harness();
    const security = h.apply(SECURITY);
    const stats = new TypedMap(h.obj.map('tg_sev_stats'), u32, u64);
    sent = () => stats.getSum(TG_SEV_SENT) ?? 0n;
    const { dfa } = compileL7(security.l7!, 0);
    walk = (payload) => scanPayload(dfa, payload, TG_L7_SCAN);
  });
  after(() => h?.close());
  const run = (frame: Buffer) => {
    const r = h.obj.program('tg_filter_ingress').testRun({ data: frame });
    return { rv: r.retval | 0, out: r.data };
  };

  for (const set of SETS) {
    test(`the ${set} corpus is caught (${DENY.has(set) ? 'deny: dropped, the client reset' : 'log: an event, the segment passes'})`, (t) => {
      if (skipReason) return t.skip(skipReason);
      for (const req of L7_ATTACKS[set]) {
        const payload = Buffer.from(req, 'utf8');
        const before = sent();
        const { rv } = run(dataFrame(payload));
        assert.ok(walk(payload) > 0, `the TypeScript walk catches: ${JSON.stringify(req.slice(0, 80))}`);
        // The first signature to complete decides (another set's pattern may come earlier in the request).
        assert.equal(rv, DENY.has(SETS[walk(payload) - 1]!) ? TC_ACT_REDIRECT : TC_ACT_UNSPEC, JSON.stringify(req.slice(0, 80)));
        assert.equal(sent() - before, 1n, 'one l7.match event');
      }
    });
  }

  test('the benign corpus passes without an event', (t) => {
    if (skipReason) return t.skip(skipReason);
    const before = sent();
    for (const req of L7_BENIGN) assert.equal(run(dataFrame(Buffer.from(req, 'utf8'))).rv, TC_ACT_UNSPEC, JSON.stringify(req.slice(0, 80)));
    assert.equal(sent() - before, 0n);
    assert.equal(h.stats().l7_denied, BigInt(L7_ATTACKS['sql-injection'].length + L7_ATTACKS['shell-injection'].length));
  });

  test('the kernel walk agrees with the TypeScript walk on 3,000 random payloads', (t) => {
    if (skipReason) return t.skip(skipReason);
    const rnd = mulberry32(Number(process.env.TOLLGATE_L7_SEED ?? 7));
    const words = ['union', ' select', "'", ' or ', '1=1', '--', '../', '..%2f', '<script', 'etc/passwd', ';', ' cat /', 'sleep(', 'GET /', '%2e%2e/', 'x', ' '];
    for (let i = 0; i < 3000; i++) {
      let s = '';
      while (s.length < 40 + Math.floor(rnd() * 700)) s += rnd() < 0.3 ? String.fromCharCode(32 + Math.floor(rnd() * 95)) : words[Math.floor(rnd() * words.length)]!;
      if (rnd() < 0.5) s = s.toUpperCase();
      const payload = Buffer.from(s, 'latin1');
      const expect = walk(payload);
      const deny = expect > 0 && (expect === 1 || expect === 4);
      assert.equal(run(dataFrame(payload)).rv, deny ? TC_ACT_REDIRECT : TC_ACT_UNSPEC, `case ${i}: ${JSON.stringify(s.slice(0, 120))} (TS: ${expect})`);
    }
  });

  test('the reset: a RST|ACK to the client with seq = its ack and ack = past the segment, payload cut, checksums valid', (t) => {
    if (skipReason) return t.skip(skipReason);
    const payload = Buffer.from('GET /item?id=1 UNION SELECT password FROM users HTTP/1.1\r\nHost: x\r\n\r\n');
    const { rv, out } = run(dataFrame(payload));
    assert.equal(rv, TC_ACT_REDIRECT);
    assert.equal(out.length, 14 + 40, 'headers only');
    assert.equal(out.readUInt16BE(14 + 2), 40, 'IPv4 total length');
    assert.equal(inetChecksum(out.subarray(14, 34)), 0, 'IPv4 header checksum');
    assert.deepEqual(out.subarray(14 + 12, 14 + 16), ipBytes(SERVER), 'from the server');
    assert.deepEqual(out.subarray(14 + 16, 14 + 20), ipBytes(CLIENT), 'to the client');
    const tcp = out.subarray(34, 54);
    assert.equal(tcp.readUInt16BE(0), 80);
    assert.equal(tcp.readUInt16BE(2), 41000);
    assert.equal(tcp.readUInt32BE(4), 5000, 'seq: what the client expects next');
    assert.equal(tcp.readUInt32BE(8), 1000 + payload.length, 'ack: past the segment');
    assert.equal(tcp[13], TCP_FLAGS.RST | TCP_FLAGS.ACK);
    assert.equal(tcp.readUInt16BE(16), tcpChecksum(SERVER, CLIENT, tcp));
  });

  test('other ports, bytes past the scan window, and segments without payload are not looked at', (t) => {
    if (skipReason) return t.skip(skipReason);
    const attack = Buffer.from('GET /?id=1 UNION SELECT 1 HTTP/1.1\r\n\r\n');
    assert.equal(run(dataFrame(attack, 443)).rv, TC_ACT_UNSPEC, 'port 443 has no signature');
    assert.equal(run(dataFrame(attack, 8080)).rv, TC_ACT_REDIRECT, 'port 8080 has the sqli signature');
    const late = Buffer.concat([Buffer.alloc(TG_L7_SCAN, 'a'), attack]);
    assert.equal(run(dataFrame(late)).rv, TC_ACT_UNSPEC, `past the first ${TG_L7_SCAN} bytes (documented)`);
    assert.equal(run(dataFrame(Buffer.alloc(0))).rv, TC_ACT_UNSPEC);
    assert.notEqual(TC_ACT_SHOT, TC_ACT_UNSPEC);
  });

  test('the ports follow the signatures through updates of both generations', (t) => {
    if (skipReason) return t.skip(skipReason);
    const attack = Buffer.from('GET /?id=1 UNION SELECT 1 HTTP/1.1\r\n\r\n');
    const on = (ports: number[]) => h.apply(`
  l7:
    signatures:
      - { name: sqli, set: sql-injection, ports: [${ports.join(', ')}], action: deny }
`);
    try {
      for (const ports of [[8443], [9000, 9001], [8443], [80]]) {
        on(ports);
        for (const port of [80, 8080, 8443, 9000, 9001]) {
          assert.equal(run(dataFrame(attack, port)).rv, ports.includes(port) ? TC_ACT_REDIRECT : TC_ACT_UNSPEC, `ports ${ports}: ${port}`);
        }
      }
    } finally {
      h.apply(SECURITY);
    }
  });
});
