// Flood and scan detection with automatic blocks: packets through
// BPF_PROG_TEST_RUN move the datapath's counters, the agent's Guards
// (src/firewall/guards.ts) poll them at chosen times, and what they block
// is then dropped by the datapath: a port scanner's source; reflection
// traffic to an amplification victim (other UDP to it still passes); the
// heavy sources of a volumetric flood (light ones still pass). Floods end
// after holdFor, lifting their blocks; blocks expire on time in the kernel.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Guards } from '../src/firewall/guards.js';
import type { NewEvent } from '../src/events/event.js';
import { ipv4, tcp, udp, TCP_FLAGS } from '../lab/packets.js';
import { frameOf, Harness, OBJECT } from './helpers/firewall.js';

const datagram = (src: string, dst: string, sport: number, dport = 9000) =>
  frameOf(ipv4({ src, dst, l4: udp({ sport, dport, payload: Buffer.alloc(8) }) }));
const syn = (src: string, dst: string, dport: number) => frameOf(ipv4({ src, dst, l4: tcp({ sport: 40000, dport, flags: TCP_FLAGS.SYN }) }));

describe('floods and scans under BPF_PROG_TEST_RUN', () => {
  let skipReason: string | undefined;
  const open: Array<{ h: Harness; g: Guards }> = [];
  before(() => {
    if (process.getuid?.() !== 0) skipReason = 'needs root to load BPF programs';
    else if (!existsSync(OBJECT)) skipReason = `${OBJECT} is missing: run \`bash scripts/build-bpf\``;
  });
  after(() => {
    for (const { h, g } of open) {
      g.stop();
      h.close();
    }
  });

  function setup(yaml: string) {
    const h = new Harness();
    const security = h.apply(yaml);
    const events: NewEvent[] = [];
    const g = new Guards(h.fw, {
      reflPort: h.obj.map('tg_refl_port'), dst: h.obj.map('tg_guard_dst'), src: h.obj.map('tg_guard_src'),
      blockSrc: h.obj.map('tg_block_src'), blockRefl: h.obj.map('tg_block_refl'),
    }, { tenantOf: (a) => (a.startsWith('198.18.1.') ? 'alpha' : null), record: (e) => events.push(...e) });
    g.apply(security);
    open.push({ h, g });
    const repeat = (frame: Buffer, n: number) => h.obj.program('tg_filter_ingress').testRun({ data: frame, repeat: n }).retval | 0;
    return { h, g, events, repeat };
  }

  test('a port scan is flagged once per window, and with action block its source is dropped until blockFor ends', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const { h, g, events } = setup(`
  portscan: { threshold: 10, window: 10s, action: block, blockFor: 1s }
`);
    const t0 = Date.now();
    g.poll(t0);
    for (let port = 1; port <= 9; port++) assert.equal(h.run('tg_filter_ingress', syn('198.19.66.6', '198.18.1.10', port)), false);
    h.run('tg_filter_ingress', syn('198.19.66.6', '198.18.1.10', 9)); // a port seen before is not a new one
    h.run('tg_filter_ingress', frameOf(ipv4({ src: '198.19.66.6', dst: '198.18.1.10', l4: tcp({ sport: 40000, dport: 20, flags: TCP_FLAGS.ACK }) }))); // not a SYN
    g.poll(t0 + 200);
    assert.equal(events.length, 0, '9 distinct ports: below the threshold');
    assert.equal(h.run('tg_filter_ingress', datagram('198.19.66.6', '198.18.1.11', 5000, 53)), false, 'UDP counts too: the 10th');
    g.poll(t0 + 400);
    assert.equal(events.length, 1);
    assert.deepEqual(events[0], {
      at: t0 + 400, type: 'portscan.detected', tenant: null, flow: null, rule: null, action: 'block',
      detail: { source: '198.19.66.6', ports: 10, windowSeconds: 10, threshold: 10, blockedForSeconds: 1, redirectedTo: null },
    });
    assert.equal(h.run('tg_filter_ingress', syn('198.19.66.6', '198.18.1.10', 80)), true, 'the scanner is blocked');
    assert.equal(h.run('tg_filter_ingress', syn('198.19.66.7', '198.18.1.10', 80)), false, 'others are not');
    assert.equal(h.stats().blocked_source, 1n);
    g.poll(t0 + 600);
    assert.equal(events.length, 1, 'one event per scan and window');
    assert.equal(g.status().blocks.sources, 1);
    await sleep(1100);
    assert.equal(h.run('tg_filter_ingress', syn('198.19.66.6', '198.18.1.10', 80)), false, 'the block expired in the kernel, on its own');
    g.poll(t0 + 800);
    assert.equal(g.status().blocks.sources, 0, 'and the agent removed it');
  });

  test('amplification: UDP from reflection ports over the threshold is blocked towards the victim; other UDP passes; the flood ends after holdFor', (t) => {
    if (skipReason) return t.skip(skipReason);
    const { h, g, events, repeat } = setup(`
  ddos: { thresholdPps: 100, window: 1s, mitigation: block-source, holdFor: 2s }
`);
    const t0 = Date.now();
    g.poll(t0);
    repeat(datagram('198.19.53.53', '198.18.1.10', 53), 150);
    g.poll(t0 + 1000);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.type, 'ddos.start');
    assert.equal(events[0]!.tenant, 'alpha');
    assert.equal(events[0]!.detail.kind, 'amplification');
    assert.equal(events[0]!.detail.destination, '198.18.1.10');
    assert.equal(events[0]!.detail.pps, 150);
    assert.equal(h.run('tg_filter_ingress', datagram('198.19.53.54', '198.18.1.10', 123)), true, 'NTP reflection to the victim: dropped');
    assert.equal(h.run('tg_filter_ingress', datagram('198.19.53.54', '198.18.1.10', 40000)), false, 'other UDP to it passes');
    assert.equal(h.run('tg_filter_ingress', datagram('198.19.53.54', '198.18.1.11', 53)), false, 'reflection ports to others pass');
    // the flood goes on: the block drops it and is renewed
    repeat(datagram('198.19.53.53', '198.18.1.10', 53), 200);
    g.poll(t0 + 2000);
    g.poll(t0 + 3500);
    assert.equal(events.length, 1, 'still one flood');
    assert.equal(g.status().floods.length, 1);
    // quiet for holdFor after the last renewal
    g.poll(t0 + 4100);
    g.poll(t0 + 6100);
    assert.equal(events.length, 2);
    assert.equal(events[1]!.type, 'ddos.end');
    assert.equal(events[1]!.detail.dropped, 201);
    assert.equal(h.run('tg_filter_ingress', datagram('198.19.53.54', '198.18.1.10', 53)), false, 'the block is gone');
    assert.equal(h.stats().blocked_reflection, 201n);
  });

  test('a flood measured in bits: it goes on while its block drops a threshold\'s worth of bytes, then ends', (t) => {
    if (skipReason) return t.skip(skipReason);
    const { g, events, repeat } = setup(`
  ddos: { thresholdBps: 20kbit, window: 1s, holdFor: 2s }
`);
    const t0 = Date.now();
    g.poll(t0);
    repeat(datagram('198.19.53.53', '198.18.1.30', 53), 100); // 100 x 36 bytes = 28,800 bit in the window
    g.poll(t0 + 1000);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.detail.kind, 'amplification');
    assert.equal(events[0]!.detail.bps, 28_800);
    repeat(datagram('198.19.53.53', '198.18.1.30', 53), 100); // dropped by the block: still a flood in bytes
    g.poll(t0 + 2000);
    g.poll(t0 + 3500);
    assert.equal(events.length, 1, 'renewed, not ended: the block still drops 20kbit/s worth');
    g.poll(t0 + 6000);
    assert.equal(events.length, 2);
    assert.equal(events[1]!.type, 'ddos.end');
    assert.equal(events[1]!.detail.dropped, 100);
  });

  test('volumetric: the heavy sources are blocked, light ones pass; mitigation log blocks nothing', (t) => {
    if (skipReason) return t.skip(skipReason);
    const { h, g, events, repeat } = setup(`
  ddos: { thresholdPps: 100, window: 1s, mitigation: block-source, holdFor: 2s }
`);
    const t0 = Date.now();
    g.poll(t0);
    repeat(datagram('198.19.7.1', '198.18.1.20', 40000), 120);
    repeat(datagram('198.19.7.2', '198.18.1.20', 40000), 5);
    g.poll(t0 + 1000);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.detail.kind, 'volumetric');
    assert.deepEqual(events[0]!.detail.blocked, ['198.19.7.1']);
    assert.equal(h.run('tg_filter_ingress', datagram('198.19.7.1', '198.18.1.20', 40000)), true);
    assert.equal(h.run('tg_filter_ingress', datagram('198.19.7.2', '198.18.1.20', 40000)), false);

    const log = setup(`
  ddos: { thresholdPps: 100, window: 1s, mitigation: log }
`);
    log.g.poll(t0);
    log.repeat(datagram('198.19.7.1', '198.18.1.20', 53), 150);
    log.g.poll(t0 + 1000);
    assert.equal(log.events.length, 1);
    assert.equal(log.events[0]!.detail.blocked, null);
    assert.equal(log.h.run('tg_filter_ingress', datagram('198.19.7.1', '198.18.1.20', 53)), false, 'log only reports');
  });
});
