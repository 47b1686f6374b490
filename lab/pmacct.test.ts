import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePcapStats, parsePmacctJson, parseProcStat, pmacctdConfig, PmacctError } from './pmacct.js';

const spec = { iface: 'tgpmt1h', outputFile: '/tmp/x/flows.json', logFile: '/tmp/x/pmacctd.log', refreshSeconds: 3600 };

test('pmacctdConfig: one interface, host pairs into appended JSON, no sampling, foreground', () => {
  const lines = pmacctdConfig(spec).split('\n');
  for (const l of [
    'daemonize: false', 'pcap_interface: tgpmt1h', 'aggregate: src_host, dst_host', 'plugins: print', 'print_output: json',
    'print_output_file: /tmp/x/flows.json', 'print_output_file_append: true', 'print_refresh_time: 3600', 'logfile: /tmp/x/pmacctd.log',
  ]) {
    assert.ok(lines.includes(l), `has "${l}"`);
  }
  assert.ok(!lines.some((l) => l.startsWith('sampling_rate')), 'samples nothing');
});

test('pmacctdConfig: bad input names the field', () => {
  assert.throws(() => pmacctdConfig({ ...spec, iface: 'eth0\nplugins: memory' }), /^PmacctError: iface: /);
  assert.throws(() => pmacctdConfig({ ...spec, outputFile: 'flows.json' }), /outputFile: must be an absolute path/);
  assert.throws(() => pmacctdConfig({ ...spec, logFile: '/tmp/a b' }), /logFile: /);
  assert.throws(() => pmacctdConfig({ ...spec, refreshSeconds: 0 }), /refreshSeconds: /);
});

test('parsePmacctJson sums purges of the same host pair and keeps pairs apart', () => {
  const text = [
    '{"event_type": "purge", "ip_src": "198.18.1.2", "ip_dst": "198.19.0.2", "packets": 3, "bytes": 252}',
    '{"event_type": "purge", "ip_src": "2001:2:0:1::2", "ip_dst": "2001:2:0:100::2", "packets": 2, "bytes": 208}',
    '',
    '{"event_type": "purge", "ip_src": "198.18.1.2", "ip_dst": "198.19.0.2", "packets": 1, "bytes": 84}',
  ].join('\n');
  assert.deepEqual(parsePmacctJson(text), [
    { src: '198.18.1.2', dst: '198.19.0.2', packets: 4, bytes: 336 },
    { src: '2001:2:0:1::2', dst: '2001:2:0:100::2', packets: 2, bytes: 208 },
  ]);
  assert.deepEqual(parsePmacctJson(''), []);
});

test('parsePmacctJson: malformed lines are errors naming the line and field', () => {
  assert.throws(() => parsePmacctJson('{"ip_src": "a", "ip_dst": "b", "packets": 1, "bytes": 2}\nnot json'), /line 2: not JSON/);
  assert.throws(() => parsePmacctJson('{"ip_src": "a", "ip_dst": "b", "packets": -1, "bytes": 2}'), /line 1: packets: /);
  assert.throws(() => parsePmacctJson('{"net_src": "a", "packets": 1, "bytes": 2}'), /line 1: ip_src\/ip_dst: /);
});

test('parsePcapStats reads the counts pmacctd prints at exit, for the named interface', () => {
  const out = 'NOTICE ( default/core ): +++\nNOTICE ( default/core ): [tgpmt1h,0] received_packets=300000 dropped_packets=60502\nNOTICE ( default/core ): ---\n';
  assert.deepEqual(parsePcapStats(out, 'tgpmt1h'), { received: 300000, dropped: 60502 });
  assert.throws(() => parsePcapStats(out, 'tgpmt2h'), PmacctError);
});

test('parseProcStat: process group and utime+stime+cutime+cstime, comm with spaces and parentheses', () => {
  const stat = '4242 (pmacctd: Core (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 1 0 5 0 0';
  assert.deepEqual(parseProcStat(stat), { pgrp: 4242, ticks: 11 + 22 + 33 + 44 });
  assert.throws(() => parseProcStat('1 (x) S 1'), PmacctError);
});
