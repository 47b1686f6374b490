// Security events from the datapath under BPF_PROG_TEST_RUN: log rules send
// one event per packet through the ring buffer into the event store, audit
// file and live subscribers, decoded with the rule, tenant and packet; the
// per-rule budget suppresses and counts the excess; a full ring loses
// records, counts them, and the reader reports the loss once (also loss
// that happened while no agent read, and not again after a restart).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatapathEvents } from '../src/events/datapath.js';
import type { SecurityEvent } from '../src/events/event.js';
import { EventRecorder } from '../src/events/recorder.js';
import { describeSev } from '../src/firewall/events.js';
import { ipv4, ipv6, tcp, udp, TCP_FLAGS } from '../lab/packets.js';
import { frameOf, Harness, IDS, OBJECT, type Prog } from './helpers/firewall.js';

const NAMES = new Map([...IDS].map(([name, id]) => [id, name]));

describe('security events under BPF_PROG_TEST_RUN', () => {
  let skipReason: string | undefined;
  let dir: string;
  before(() => {
    if (process.getuid?.() !== 0) skipReason = 'needs root to load BPF programs';
    else if (!existsSync(OBJECT)) skipReason = `${OBJECT} is missing: run \`bash scripts/build-bpf\``;
    dir = mkdtempSync(join(tmpdir(), 'tg-evt-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A harness with its own event store, and a reader started over its ring. */
  async function setup(name: string, securityYaml: string, opts: { read?: boolean } = {}) {
    const h = new Harness();
    const security = h.apply(securityYaml);
    const ruleAt = (slot: number) => [...h.slots].find(([, s]) => s === slot)?.[0] ?? null;
    const recorder = new EventRecorder({ db: join(dir, `${name}.db`), audit: join(dir, `${name}.jsonl`) });
    const lost: bigint[] = [];
    const start = () => DatapathEvents.start({
      ring: h.obj.map('tg_sev_ring'), stats: h.obj.map('tg_sev_stats'), recorder,
      describe: (r) => describeSev(r, { rule: ruleAt, tenant: (id) => NAMES.get(id) ?? null, iface: () => null }, 0),
      onLost: (n) => lost.push(n),
    });
    const reader = opts.read === false ? undefined : await start();
    return { h, security, recorder, reader, lost, start };
  }

  async function waitFor(recorder: EventRecorder, n: number): Promise<SecurityEvent[]> {
    const deadline = Date.now() + 10_000;
    while (recorder.store.count() < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return recorder.store.list({ after: 0, limit: 100_000 });
  }

  test('a log rule sends one event per packet: rule, tenant and packet named, on every hook', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const { h, recorder, reader } = await setup('log', `
  defaultAction: allow
  rules:
    - { name: pass-ntp, action: allow, protocols: [udp], ports: [123] }
    - { name: log-dns, action: log, direction: both, protocols: [udp], ports: [53] }
    - { name: log-beta-ssh, action: log, tenant: beta, protocols: [tcp], ports: [22] }
`);
    const seen = new Array<SecurityEvent>();
    recorder.hub.subscribe((list) => seen.push(...list));
    try {
      const progs: Prog[] = ['tg_filter_ingress', 'tg_filter_egress', 'tg_filter_xdp'];
      const expected = [
        { rule: 'log-dns', tenant: 'alpha', to: 'alpha', from: null, bytes: 36, flow: { protocol: 'udp', src: '198.19.7.7', sport: 40001, dst: '198.18.1.10', dport: 53 } },
        { rule: 'log-dns', tenant: 'beta', to: null, from: 'beta', bytes: 56, flow: { protocol: 'udp', src: '2001:2:0:2::5', sport: 40002, dst: '2001:2:0:9::1', dport: 53 } },
        { rule: 'log-beta-ssh', tenant: 'beta', to: 'beta', from: null, bytes: 40, flow: { protocol: 'tcp', src: '198.19.7.7', sport: 40003, dst: '198.18.2.10', dport: 22 } },
      ];
      for (const p of progs) {
        for (const x of expected) {
          const f = x.flow;
          const l4 = f.protocol === 'udp' ? udp({ sport: f.sport, dport: f.dport, payload: Buffer.alloc(8) }) : tcp({ sport: f.sport, dport: f.dport, flags: TCP_FLAGS.SYN });
          const l3 = f.src.includes(':') ? ipv6({ src: f.src, dst: f.dst, l4 }) : ipv4({ src: f.src, dst: f.dst, l4 });
          assert.equal(h.run(p, frameOf(l3)), false, `${p}: log lets ${x.rule}'s packet through`);
        }
        // allowed and unmatched packets send nothing: an allow before the log, beta's ssh rule seen from the other side, no rule
        h.run(p, frameOf(ipv4({ src: '198.19.7.7', dst: '198.18.1.10', l4: udp({ sport: 40004, dport: 123, payload: Buffer.alloc(8) }) })));
        h.run(p, frameOf(ipv6({ src: '2001:2:0:2::5', dst: '2001:2:0:9::1', l4: tcp({ sport: 40005, dport: 22, flags: TCP_FLAGS.SYN }) })));
        h.run(p, frameOf(ipv4({ src: '198.19.7.7', dst: '198.18.1.10', l4: tcp({ sport: 40006, dport: 80, flags: TCP_FLAGS.SYN }) })));
      }
      const events = await waitFor(recorder, 9);
      assert.equal(events.length, 9, 'three logged packets on each of three programs');
      assert.deepEqual(events.map((e) => e.id), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
      for (const [i, e] of events.entries()) {
        const x = expected[i % 3]!;
        const hook = progs[Math.floor(i / 3)]!.endsWith('egress') ? 'egress' : 'ingress';
        assert.equal(e.type, 'firewall.log');
        assert.equal(e.action, 'log');
        assert.equal(e.rule, x.rule);
        assert.equal(e.tenant, x.tenant);
        assert.deepEqual(e.flow, x.flow);
        assert.deepEqual(e.detail, { bytes: x.bytes, interface: 1, hook, toTenant: x.to, fromTenant: x.from });
        assert.ok(Math.abs(Date.parse(e.at) - Date.now()) < 60_000, `event time ${e.at} is now`);
      }
      assert.deepEqual(seen.map((e) => e.id), [1, 2, 3, 4, 5, 6, 7, 8, 9], 'live subscribers got every event once, in order');
      const lines = readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as SecurityEvent);
      assert.deepEqual(lines, events, 'the audit file holds the same events as the store');
      assert.deepEqual(reader!.stats(), { sent: 9n, lost: 0n, suppressed: 0n });
    } finally {
      await reader?.stop();
      recorder.close();
      h.close();
    }
  });

  test('a log rule sends at most logRate events per second and CPU; the rest are counted as suppressed', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const { h, recorder, reader } = await setup('budget', `
  events: { logRate: 5 }
  defaultAction: log
  rules:
    - { name: log-udp, action: log, direction: both, protocols: [udp] }
`);
    try {
      const udpFrame = frameOf(ipv4({ src: '198.19.7.7', dst: '198.18.1.10', l4: udp({ sport: 1, dport: 2, payload: Buffer.alloc(8) }) }));
      const tcpFrame = frameOf(ipv4({ src: '198.19.7.7', dst: '198.18.1.10', l4: tcp({ sport: 1, dport: 2, flags: TCP_FLAGS.ACK }) }));
      // repeat runs the program in a loop on one CPU, well inside one second
      h.obj.program('tg_filter_ingress').testRun({ data: udpFrame, repeat: 50 });
      h.obj.program('tg_filter_ingress').testRun({ data: tcpFrame, repeat: 3 });
      const events = await waitFor(recorder, 8);
      assert.deepEqual(events.map((e) => e.rule), ['log-udp', 'log-udp', 'log-udp', 'log-udp', 'log-udp', '(default)', '(default)', '(default)'],
        'each rule has its own budget: the default action is not starved by the flood');
      assert.deepEqual(reader!.stats(), { sent: 8n, lost: 0n, suppressed: 45n });
      const hits = h.hitCount(h.slots.get('log-udp')!);
      assert.equal(hits, 50n, 'suppressed events are still counted packets');
    } finally {
      await reader?.stop();
      recorder.close();
      h.close();
    }
  });

  test('a full ring loses records, never blocks the datapath, and the loss is reported once, also across a restart', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const { h, recorder, lost, start } = await setup('full', `
  events: { logRate: 1000000 }
  rules:
    - { name: log-all, action: log, direction: both }
`, { read: false });
    try {
      // Nobody reads: the 4 MiB ring holds 4 MiB / (80 + 8 header) = 47,662 records.
      const frame = frameOf(ipv4({ src: '198.19.7.7', dst: '198.18.1.10', l4: udp({ sport: 1, dport: 2, payload: Buffer.alloc(8) }) }));
      const res = h.obj.program('tg_filter_ingress').testRun({ data: frame, repeat: 60_000 });
      assert.equal(res.retval | 0, -1, 'packets pass whatever the ring does');
      const capacity = Math.floor((4 << 20) / 88);
      const first = await start();
      try {
        const events = await waitFor(recorder, capacity + 1);
        const lostEvents = events.filter((e) => e.type === 'events.lost');
        assert.equal(lostEvents.length, 1);
        assert.equal(lostEvents[0]!.detail.lost, 60_000 - capacity);
        assert.equal(events.filter((e) => e.type === 'firewall.log').length, capacity, 'what the ring held was delivered');
        assert.deepEqual(lost, [BigInt(60_000 - capacity)]);
        assert.deepEqual(first.stats(), { sent: BigInt(capacity), lost: BigInt(60_000 - capacity), suppressed: 0n });
      } finally {
        await first.stop();
      }
      // A restarted reader over the same ring and store reports nothing again; new loss is reported anew.
      const again = await start();
      try {
        assert.equal(recorder.store.list({ after: 0, limit: 100_000, type: 'events.lost' }).length, 1);
        assert.equal(lost.length, 1);
      } finally {
        await again.stop();
      }
    } finally {
      recorder.close();
      h.close();
    }
  });
});
