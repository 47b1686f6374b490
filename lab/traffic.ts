// Traffic drivers with ground truth. Each runs inside a lab node's netns, is
// bounded in packets and seconds, and returns exactly what it put on the wire
// (IP bytes = IP header + L4 header + payload; Ethernet framing excluded).
//
// Everything is sized to fit the veth MTU of 1500 so that one datagram is one
// IP packet. Veth offloads are left at their defaults: TCP segments may be
// GSO/GRO-coalesced on the way (one counted "packet" can carry many MSS), so
// TCP wire truth comes from interface counters (ifaceCounters), and
// tcpTransfer guarantees only the exact payload. The lab pins neighbour entries,
// so no ARP/NDP packets interleave with measured traffic.

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { isIPv4, isIPv6 } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EndpointNode } from './topology.js';
import { ethernet, inetChecksum, ipv4, ipv6, udp } from './packets.js';
import { httpFromNetns, ip, runInNetns, spawnInNetns, waitExit, type HttpResult } from './exec.js';

export interface Truth {
  packets: number;
  /** Sum of IP packet lengths (IP header included, link header excluded). */
  ipBytes: number;
}

export type Family = 4 | 6;

export class TrafficError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrafficError';
  }
}

const MTU = 1500;
const IP_HDR: Record<Family, number> = { 4: 20, 6: 40 };
const UDP_HDR = 8;
const ICMP_HDR = 8;

export function familyOf(address: string): Family {
  if (isIPv4(address)) return 4;
  if (isIPv6(address)) return 6;
  throw new TrafficError(`to: ${JSON.stringify(address)} is not an IPv4 or IPv6 address`);
}

function addressOf(node: EndpointNode, family: Family): string {
  return family === 4 ? node.ipv4 : node.ipv6;
}

function checkInt(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new TrafficError(`${field}: must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Largest payload of one unfragmented packet with this L4 header. */
function maxPayload(family: Family, l4: number): number {
  return MTU - IP_HDR[family] - l4;
}

function helperPath(name: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const p of [join(here, name), join(here, '..', '..', 'lab', name)]) if (existsSync(p)) return p;
  throw new TrafficError(`lab/${name} not found next to ${here}`);
}

function randomPort(): number {
  return 40000 + Math.floor(Math.random() * 10000);
}

// ---------------------------------------------------------------- UDP sockets

export interface UdpBurstOptions {
  /** Node that owns `to` when `to` is an address; a receiver runs there. */
  receiver?: EndpointNode;
  /** Address family when `to` is a node; default 4. */
  family?: Family;
  /**
   * Send without a receiver: the destination then answers with ICMP port
   * unreachable, which the caller must account for.
   */
  noReceiver?: boolean;
  timeoutMs?: number;
  /** Datagrams between yields of the sender (pacing); default 32. */
  burst?: number;
  /** Source port (default: one the kernel picks), e.g. 53 to look like DNS reflection. */
  sport?: number;
  /** Run the sender inside this cgroup v2 directory (absolute path), e.g. to play a container on the host network. */
  cgroup?: string;
}

export interface UdpBurstResult extends Truth {
  payloadBytes: number;
  /** What the receiver got (null with noReceiver). */
  received: { packets: number; payloadBytes: number } | null;
}

interface Helper<T> {
  /** Closes the helper's stdin and resolves with its JSON result line. */
  result(): Promise<T>;
  kill(): void;
}

/** Starts a lab/driver.mjs receiver mode in netns and waits until it is bound ("ready"). */
async function startReceiver<T>(netns: string, args: string[], timeoutMs: number): Promise<Helper<T>> {
  const child = spawnInNetns(netns, process.execPath, [helperPath('driver.mjs'), ...args]);
  const lines = createInterface({ input: child.stdout! });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const it = lines[Symbol.asyncIterator]();
  const exited = waitExit(child, timeoutMs + 5000);
  const abort = new AbortController();
  const ready = await Promise.race([
    it.next().then((r) => (r.done ? null : r.value)),
    sleep(10_000, null, { signal: abort.signal }).catch(() => null),
  ]);
  abort.abort();
  if (ready !== 'ready') {
    child.kill('SIGKILL');
    throw new TrafficError(`receiver (${args.join(' ')}) in ${netns} did not start: ${stderr.trim()}`);
  }
  return {
    async result() {
      child.stdin!.end();
      const line = await it.next();
      await exited;
      if (line.done) throw new TrafficError(`receiver (${args.join(' ')}) in ${netns} ended without a result: ${stderr.trim()}`);
      return JSON.parse(line.value) as T;
    },
    kill() {
      child.kill('SIGKILL');
    },
  };
}

function startUdpReceiver(netns: string, port: number, expect: number, timeoutMs: number) {
  return startReceiver<{ packets: number; bytes: number }>(
    netns,
    ['udp-recv', '--port', String(port), '--expect', String(expect), '--timeout-ms', String(timeoutMs)],
    timeoutMs,
  );
}

/**
 * Sends `count` UDP datagrams of each payload size in `sizes` from `from` to
 * `to` (a node, or an address with opts.receiver naming its owner). A receiver
 * in the destination netns discards them so no ICMP errors come back.
 */
export async function udpBurst(
  from: EndpointNode,
  to: EndpointNode | string,
  port: number,
  sizes: readonly number[],
  count: number,
  opts: UdpBurstOptions = {},
): Promise<UdpBurstResult> {
  const address = typeof to === 'string' ? to : addressOf(to, opts.family ?? 4);
  const family = familyOf(address);
  checkInt('port', port, 1, 65535);
  checkInt('count', count, 0, 1_000_000);
  if (!Array.isArray(sizes) || sizes.length === 0) throw new TrafficError('sizes: must be a non-empty array of payload sizes');
  sizes.forEach((s, i) => checkInt(`sizes[${i}]`, s, 0, maxPayload(family, UDP_HDR)));
  const receiverNode = typeof to === 'string' ? opts.receiver : to;
  if (!receiverNode && !opts.noReceiver) {
    throw new TrafficError('receiver: name the node that owns the address (or set noReceiver and account for ICMP errors)');
  }
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const expected = sizes.length * count;
  const receiver = opts.noReceiver ? null : await startUdpReceiver(receiverNode!.netns, port, expected, timeoutMs);
  try {
    const r = await runInNetns(
      from.netns,
      process.execPath,
      [helperPath('driver.mjs'), 'udp-send', '--to', address, '--port', String(port), '--sizes', sizes.join(','), '--count', String(count),
        '--burst', String(opts.burst ?? 32), ...(opts.sport === undefined ? [] : ['--sport', String(checkInt('sport', opts.sport, 1, 65535))])],
      { timeoutMs, cgroup: opts.cgroup },
    );
    const sent = JSON.parse(r.stdout.trim()) as { packets: number; bytes: number };
    if (sent.packets !== expected) throw new TrafficError(`sender sent ${sent.packets} datagrams, expected ${expected}`);
    const got = receiver ? await receiver.result() : null;
    return {
      packets: sent.packets,
      payloadBytes: sent.bytes,
      ipBytes: sent.bytes + sent.packets * (UDP_HDR + IP_HDR[family]),
      received: got ? { packets: got.packets, payloadBytes: got.bytes } : null,
    };
  } finally {
    receiver?.kill();
  }
}

// ---------------------------------------------------------------- ICMP echo

export interface PingResult extends Truth {
  /** Echo replies that came back. */
  replies: Truth;
}

/** `count` ICMP(v6) echo requests of `payloadSize` bytes, 10 ms apart. */
export async function ping(from: EndpointNode, to: string, count: number, payloadSize = 56, opts: { timeoutMs?: number } = {}): Promise<PingResult> {
  const family = familyOf(to);
  checkInt('count', count, 1, 100_000);
  checkInt('payloadSize', payloadSize, 0, maxPayload(family, ICMP_HDR));
  const deadlineS = Math.ceil(count * 0.01 + 3);
  const r = await runInNetns(
    from.netns,
    'ping',
    [family === 6 ? '-6' : '-4', '-n', '-q', '-c', String(count), '-s', String(payloadSize), '-i', '0.01', '-W', '2', '-w', String(deadlineS), to],
    { timeoutMs: opts.timeoutMs ?? (deadlineS + 5) * 1000, allowFail: true },
  );
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(r.stdout);
  if (!m) throw new TrafficError(`ping ${to} from ${from.name}: unexpected output: ${(r.stdout + r.stderr).trim()}`);
  const sent = Number(m[1]);
  const received = Number(m[2]);
  const per = IP_HDR[family] + ICMP_HDR + payloadSize;
  return { packets: sent, ipBytes: sent * per, replies: { packets: received, ipBytes: received * per } };
}

// ---------------------------------------------------------------- TCP

export interface TcpTransferResult {
  /** Payload bytes the sender wrote: exactly the requested count. */
  payloadBytes: number;
  /** Payload bytes the receiver read before it answered (equals payloadBytes). */
  receivedBytes: number;
  seconds: number;
}

/**
 * Exactly `bytes` of TCP payload from `from` to a one-off receiver in `to`'s
 * netns (lab/driver.mjs): the sender half-closes and returns only after the
 * receiver has read everything and answered, so every payload byte has crossed
 * the lab when this resolves. TCP wire bytes (headers, handshake, ACKs, GSO)
 * are for the caller to check against ifaceCounters.
 */
export async function tcpTransfer(
  from: EndpointNode,
  to: EndpointNode,
  bytes: number,
  opts: { family?: Family; port?: number; timeoutMs?: number } = {},
): Promise<TcpTransferResult> {
  checkInt('bytes', bytes, 0, 16 * 1024 ** 3);
  const port = checkInt('port', opts.port ?? randomPort(), 1, 65535);
  const address = addressOf(to, opts.family ?? 4);
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const receiver = await startReceiver<{ bytes: number }>(to.netns, ['tcp-recv', '--port', String(port), '--timeout-ms', String(timeoutMs)], timeoutMs);
  try {
    const r = await runInNetns(
      from.netns,
      process.execPath,
      [helperPath('driver.mjs'), 'tcp-send', '--to', address, '--port', String(port), '--bytes', String(bytes), '--timeout-ms', String(timeoutMs)],
      { timeoutMs: timeoutMs + 5000 },
    );
    const sent = JSON.parse(r.stdout.trim()) as { bytes: number; received: number; seconds: number };
    const got = await receiver.result();
    if (sent.received !== bytes || got.bytes !== bytes) {
      throw new TrafficError(`TCP ${from.name} -> ${address}:${port}: sent ${bytes}, receiver read ${got.bytes} (answered ${sent.received})`);
    }
    return { payloadBytes: bytes, receivedBytes: got.bytes, seconds: sent.seconds };
  } finally {
    receiver.kill();
  }
}

export interface TcpStreamResult {
  /** Payload bytes the source handed to its socket. */
  written: number;
  /** Payload bytes the sink read. */
  received: number;
  /** [ms since the first byte, payload bytes read by then], every sampleMs. */
  samples: Array<[number, number]>;
}

/**
 * Up to `bytes` of TCP payload from `from` to a sink in `to`'s netns for at
 * most `seconds`, whether or not it all gets through: for transfers a quota
 * cuts off or throttles. The sink reports what it read over time.
 */
export async function tcpStream(
  from: EndpointNode,
  to: EndpointNode,
  bytes: number,
  seconds: number,
  opts: { family?: Family; port?: number; sampleMs?: number } = {},
): Promise<TcpStreamResult> {
  checkInt('bytes', bytes, 1, 16 * 1024 ** 3);
  checkInt('seconds', seconds, 1, 600);
  const port = checkInt('port', opts.port ?? randomPort(), 1, 65535);
  const address = addressOf(to, opts.family ?? 4);
  const sink = await startReceiver<{ bytes: number; samples: Array<[number, number]> }>(
    to.netns, ['tcp-sink', '--port', String(port), '--seconds', String(seconds), '--sample-ms', String(opts.sampleMs ?? 250)], (seconds + 30) * 1000,
  );
  try {
    const r = await runInNetns(from.netns, process.execPath,
      [helperPath('driver.mjs'), 'tcp-source', '--to', address, '--port', String(port), '--bytes', String(bytes), '--seconds', String(seconds + 1)],
      { timeoutMs: (seconds + 10) * 1000 });
    const { written } = JSON.parse(r.stdout.trim()) as { written: number };
    const got = await sink.result();
    return { written, received: got.bytes, samples: got.samples };
  } finally {
    sink.kill();
  }
}

export interface Iperf3Result {
  /** Payload bytes the client wrote (iperf3 sum_sent). */
  payloadBytes: number;
  /**
   * Payload bytes the server reported (sum_received). iperf3's server may stop
   * reading when the client announces the end, so this can be short of
   * payloadBytes: use tcpTransfer for ground truth, this for throughput.
   */
  receivedBytes: number;
  seconds: number;
  bitsPerSecond: number;
}

async function waitListening(netns: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await runInNetns(netns, 'ss', ['-Hltn', `sport = :${port}`], { timeoutMs: 5000, allowFail: true });
    if (r.stdout.trim()) return;
    await sleep(20);
  }
  throw new TrafficError(`nothing listens on TCP port ${port} in ${netns} after ${timeoutMs} ms`);
}

/**
 * iperf3 from `from` to a one-off `iperf3 -s -1` in `to`'s netns: `-n bytes`
 * (rounded up by iperf3 to whole 128 KiB blocks), or `-t seconds` with
 * opts.seconds. For throughput benchmarks.
 */
export async function iperf3Transfer(
  from: EndpointNode,
  to: EndpointNode,
  bytes: number,
  opts: { family?: Family; port?: number; timeoutMs?: number; seconds?: number } = {},
): Promise<Iperf3Result> {
  checkInt('bytes', bytes, 1, 64 * 1024 ** 3);
  const port = checkInt('port', opts.port ?? randomPort(), 1, 65535);
  const address = addressOf(to, opts.family ?? 4);
  const timeoutMs = opts.timeoutMs ?? (opts.seconds !== undefined ? (checkInt('seconds', opts.seconds, 1, 600) + 30) * 1000 : 60_000);
  const server = spawnInNetns(to.netns, 'iperf3', ['-s', '-1', '-p', String(port), '-J'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const serverExit = waitExit(server, timeoutMs + 5000);
  try {
    await waitListening(to.netns, port, 10_000);
    const amount = opts.seconds !== undefined ? ['-t', String(opts.seconds)] : ['-n', String(bytes)];
    const r = await runInNetns(
      from.netns,
      'iperf3',
      ['-c', address, '-p', String(port), ...amount, '-J', '--connect-timeout', '5000'],
      { timeoutMs, allowFail: true },
    );
    let j: { error?: string; end?: { sum_sent?: { bytes: number; seconds: number; bits_per_second: number }; sum_received?: { bytes: number } } };
    try {
      j = JSON.parse(r.stdout);
    } catch {
      throw new TrafficError(`iperf3 to ${address}:${port}: no JSON result: ${(r.stdout + r.stderr).trim().slice(0, 500)}`);
    }
    if (j.error || r.code !== 0 || !j.end?.sum_sent || !j.end.sum_received) {
      throw new TrafficError(`iperf3 to ${address}:${port} failed: ${j.error ?? `exit ${r.code}`}`);
    }
    const s = j.end.sum_sent;
    return { payloadBytes: s.bytes, receivedBytes: j.end.sum_received.bytes, seconds: s.seconds, bitsPerSecond: s.bits_per_second };
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL');
    await serverExit;
  }
}

// ---------------------------------------------------------------- HTTP service

/** GET /bytes/N from the lab service on `to` (a tenant or the honeypot), made from `from`. */
export async function httpBytes(from: EndpointNode, to: EndpointNode, n: number, opts: { family?: Family; port?: number; timeoutMs?: number } = {}): Promise<HttpResult> {
  checkInt('n', n, 0, 1024 ** 3);
  const a = addressOf(to, opts.family ?? 4);
  const host = opts.family === 6 ? `[${a}]` : a;
  return httpFromNetns(from.netns, `http://${host}:${opts.port ?? 8080}/bytes/${n}`, { timeoutMs: opts.timeoutMs ?? 30_000 });
}

export interface HttpRequestsResult {
  ok: number;
  failed: number;
  /** Failure messages and how often each happened. */
  errors: Record<string, number>;
  /** Latency of the successful requests. */
  ms: { p50: number | null; p99: number | null; max: number | null };
}

/** `count` GETs of `path` from `from` to `to`'s service, one after the other, each on a new TCP connection. */
export async function httpRequests(from: EndpointNode, to: EndpointNode, count: number, opts: { family?: Family; port?: number; path?: string; timeoutMs?: number } = {}): Promise<HttpRequestsResult> {
  checkInt('count', count, 1, 100_000);
  const timeoutMs = opts.timeoutMs ?? 5000;
  const r = await runInNetns(from.netns, process.execPath, [helperPath('driver.mjs'), 'http-get', '--to', addressOf(to, opts.family ?? 4), '--port', String(opts.port ?? 8080),
    '--count', String(count), '--path', opts.path ?? '/health', '--timeout-ms', String(timeoutMs)], { timeoutMs: count * timeoutMs + 30_000 });
  return JSON.parse(r.stdout.trim()) as HttpRequestsResult;
}

/** POST n bytes to /sink on `to`; resolves with the count the service read. */
export async function httpSink(from: EndpointNode, to: EndpointNode, n: number, opts: { family?: Family; port?: number; timeoutMs?: number } = {}): Promise<number> {
  checkInt('n', n, 0, 256 * 1024 ** 2);
  const a = addressOf(to, opts.family ?? 4);
  const host = opts.family === 6 ? `[${a}]` : a;
  const r = await httpFromNetns(from.netns, `http://${host}:${opts.port ?? 8080}/sink`, {
    method: 'POST', uploadBytes: n, keepBody: true, timeoutMs: opts.timeoutMs ?? 30_000,
  });
  if (r.status !== 200) throw new TrafficError(`POST /sink on ${to.name}: HTTP ${r.status}`);
  return (JSON.parse(r.body) as { bytes: number }).bytes;
}

// ---------------------------------------------------------------- trafgen

/** RFC 1071 one's-complement sum of 16-bit words, folded and inverted. */
export function internetChecksum(bytes: readonly number[]): number {
  return inetChecksum(Buffer.from(bytes));
}

export interface FrameSpec {
  srcMac: string;
  dstMac: string;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  payloadSize: number;
  /** Payload fill byte; default 0x41. */
  fill?: number;
}

/** One complete Ethernet + IPv4/IPv6 + UDP frame with valid checksums (IPv4: id 0, DF). */
export function udpFrame(spec: FrameSpec): Buffer {
  const family = familyOf(spec.dst);
  if (familyOf(spec.src) !== family) throw new TrafficError('src: address family differs from dst');
  checkInt('payloadSize', spec.payloadSize, 0, maxPayload(family, UDP_HDR));
  const l4 = udp({ sport: spec.srcPort, dport: spec.dstPort, payload: Buffer.alloc(spec.payloadSize, spec.fill ?? 0x41) });
  const l3 = family === 4 ? ipv4({ src: spec.src, dst: spec.dst, id: 0, dontFragment: true, l4 }) : ipv6({ src: spec.src, dst: spec.dst, l4 });
  return ethernet({ src: spec.srcMac, dst: spec.dstMac, payload: l3 });
}

/** A trafgen configuration sending `frame` (one packet definition, literal bytes). */
export function trafgenConfig(frame: Buffer): string {
  const hex = [...frame].map((b) => `0x${b.toString(16).padStart(2, '0')}`);
  const rows: string[] = [];
  for (let i = 0; i < hex.length; i += 16) rows.push('  ' + hex.slice(i, i + 16).join(', ') + ',');
  return `/* generated by lab/traffic.ts */\n{\n${rows.join('\n')}\n}\n`;
}

export interface TrafgenOptions {
  family?: Family;
  port?: number;
  /** Run a UDP receiver in the destination (default true) so no ICMP errors come back. */
  receive?: boolean;
  /** Inter-packet gap in microseconds (trafgen -t); default none (full ring speed). */
  gapUs?: number;
  timeoutMs?: number;
}

export interface TrafgenResult extends Truth {
  payloadBytes: number;
  received: { packets: number; payloadBytes: number } | null;
}

/** trafgen's config (in a directory of its own, for the caller to remove) and arguments for `count` UDP packets. */
function trafgenRun(from: EndpointNode, to: EndpointNode, family: Family, port: number, payloadSize: number, count: number, gapUs?: number): { dir: string; args: string[]; frame: Buffer } {
  const frame = udpFrame({
    srcMac: from.mac, dstMac: from.gatewayMac,
    src: addressOf(from, family), dst: addressOf(to, family),
    srcPort: 40000, dstPort: port, payloadSize,
  });
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-trafgen-'));
  const conf = join(dir, 'udp.cfg');
  writeFileSync(conf, trafgenConfig(frame));
  // --no-sock-mem/--notouch-irq (their short forms are broken in 0.6.8): leave the machine's socket memory defaults and IRQ affinity alone;
  // -P 1: one sender process, so --num is exact.
  const args = ['--dev', 'eth0', '--conf', conf, '--num', String(count), '--cpus', '1', '--no-sock-mem', '--notouch-irq'];
  if (gapUs !== undefined) args.push('--gap', `${checkInt('gapUs', gapUs, 0, 1_000_000)}us`);
  return { dir, args, frame };
}

/**
 * A steady trickle of small UDP packets from `from` to `to`, one every
 * `gapUs`, for at most `seconds` (it stops by itself) or until stop(): a
 * probe that shows when a rule starts dropping, paced by the clock alone
 * (ping paces itself by the replies a rule stops).
 */
export function trafgenTrickle(from: EndpointNode, to: EndpointNode, gapUs: number, seconds: number): { stop(): Promise<void> } {
  checkInt('gapUs', gapUs, 10, 1_000_000);
  checkInt('seconds', seconds, 1, 3600);
  const { dir, args } = trafgenRun(from, to, 4, randomPort(), 18, Math.ceil((seconds * 1e6) / gapUs), gapUs);
  const child = spawnInNetns(from.netns, 'trafgen', args, { stdio: 'ignore' });
  const exited = waitExit(child, (seconds + 10) * 1000).finally(() => rmSync(dir, { recursive: true, force: true }));
  return {
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * `count` UDP packets of `payloadSize` from `from` to `to` through an AF_PACKET
 * TX ring (trafgen): these reach tc programs with only the Ethernet header in
 * the linear area, the case socket traffic never exercises.
 */
export async function trafgenBurst(from: EndpointNode, to: EndpointNode, count: number, payloadSize: number, opts: TrafgenOptions = {}): Promise<TrafgenResult> {
  const family = opts.family ?? 4;
  checkInt('count', count, 1, 10_000_000);
  checkInt('payloadSize', payloadSize, 0, maxPayload(family, UDP_HDR));
  const port = checkInt('port', opts.port ?? randomPort(), 1, 65535);
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const { dir, args, frame } = trafgenRun(from, to, family, port, payloadSize, count, opts.gapUs);
  const receiver = opts.receive === false ? null : await startUdpReceiver(to.netns, port, count, timeoutMs);
  try {
    const r = await runInNetns(from.netns, 'trafgen', args, { timeoutMs });
    const out = /(\d+) packets outgoing/.exec(r.stdout + r.stderr);
    if (!out || Number(out[1]) !== count) {
      throw new TrafficError(`trafgen reported ${out ? out[1] : 'no'} packets outgoing, expected ${count}`);
    }
    const got = receiver ? await receiver.result() : null;
    return {
      packets: count,
      payloadBytes: count * payloadSize,
      ipBytes: count * (frame.length - 14),
      received: got ? { packets: got.packets, payloadBytes: got.bytes } : null,
    };
  } finally {
    receiver?.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- counters

export interface IfaceCounters {
  rxPackets: number;
  rxBytes: number;
  rxDropped: number;
  txPackets: number;
  txBytes: number;
  txDropped: number;
}

/** Interface counters from `ip -s -j link show` (bytes include the 14-byte Ethernet header). */
export async function ifaceCounters(netns: string, iface: string): Promise<IfaceCounters> {
  const r = await ip(['-n', netns, '-s', '-j', 'link', 'show', 'dev', iface], { timeoutMs: 10_000 });
  const [l] = JSON.parse(r.stdout) as { stats64?: Record<'rx' | 'tx', { bytes: number; packets: number; dropped: number }> }[];
  if (!l?.stats64) throw new TrafficError(`no stats64 for ${iface} in ${netns}`);
  const { rx, tx } = l.stats64;
  return { rxPackets: rx.packets, rxBytes: rx.bytes, rxDropped: rx.dropped, txPackets: tx.packets, txBytes: tx.bytes, txDropped: tx.dropped };
}
