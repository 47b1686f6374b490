// Network isolation in the kernel: the cgroup_skb backstop driven through
// BPF_PROG_TEST_RUN with maps from the production compiler, then real
// processes in docker-style container cgroups (inside a network namespace of
// their own, addresses 198.18.0.0/15 and 2001:2::/48 on its loopback):
// connection limits per container and per tenant, exact counts through
// 10,000 connects and closes with churn and across a restart of the
// TypeScript side, and destination rules for TCP, UDP and raw ICMP with the
// events they raise.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { cgroup2Root, removePins, RingBufReader, taiOffsetMs, TypedMap, u32, u64 } from '../src/kernel/index.js';
import { TG_NI_EVENTS_PER_SEC, TG_NIEV_EGRESS_DENIED, TG_SEV_SENT, TG_SEV_SUPPRESSED, TgNiEvent } from '../src/kernel/abi.gen.js';
import type { NewEvent } from '../src/events/event.js';
import { parsePolicy, type IsolationScope } from '../src/policy/index.js';
import {
  compileNetIsolation, destinationVerdict, generationEntries, kernelScopeId, netDestination, NetIsoDatapath, NetIsolation, describeNetEvent,
  type NetContainer,
} from '../src/netiso/index.js';
import { kernelReady, tag } from './kernel/helpers.js';

const PY = '/usr/bin/python3';
const EPERM = 1;
const PORT = 8080;

// ---- the helper programs -----------------------------------------------------

/**
 * Runs inside a container cgroup: reads commands on stdin, answers one JSON
 * line each. Holds the TCP sockets it opened until told to close them.
 */
const HELPER = String.raw`
import errno, json, os, random, select, socket, struct, sys, time
socks = []
def out(o):
    sys.stdout.write(json.dumps(o) + "\n"); sys.stdout.flush()
def fam(h):
    return socket.AF_INET6 if ":" in h else socket.AF_INET
def tcp(h, p):
    s = socket.socket(fam(h), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    try:
        s.settimeout(5)
        s.connect((h, p))
        return s, 0
    except OSError as e:
        s.close()
        return None, e.errno or -1
def csum(b):
    if len(b) % 2: b += b"\0"
    n = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    n = (n >> 16) + (n & 0xffff); n += n >> 16
    return ~n & 0xffff
def icmp(h):
    v6 = ":" in h
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xffff
    req, rep = (128, 129) if v6 else (8, 0)
    body = struct.pack("!BBHHH", req, 0, 0, ident, 1) + b"tgni"
    pkt = body if v6 else struct.pack("!BBHHH", req, 0, csum(body), ident, 1) + b"tgni"
    try:
        s.sendto(pkt, (h, 0))
    except OSError as e:
        s.close(); return {"errno": e.errno, "reply": False}
    end = time.time() + 1
    while time.time() < end:
        r, _, _ = select.select([s], [], [], max(0, end - time.time()))
        if not r: break
        d = s.recv(2048)
        off = 0 if v6 else (d[0] & 15) * 4
        if len(d) >= off + 8 and d[off] == rep and struct.unpack("!H", d[off + 4:off + 6])[0] == ident:
            s.close(); return {"errno": 0, "reply": True}
    s.close(); return {"errno": 0, "reply": False}
def churn(n, h, p, seed, hold):
    rnd = random.Random(seed)
    made = closed = 0; errs = {}
    for _ in range(n):
        if socks and (len(socks) >= hold or rnd.random() < 0.45):
            socks.pop(rnd.randrange(len(socks))).close(); closed += 1
        else:
            s, e = tcp(h, p)
            if s: socks.append(s); made += 1
            else: errs[str(e)] = errs.get(str(e), 0) + 1
    return {"open": len(socks), "connected": made, "closed": closed, "errors": errs}
out({"ready": os.getpid()})
for line in sys.stdin:
    a = line.split()
    if not a: continue
    c = a[0]
    if c == "open":
        ok = 0; errs = []
        for _ in range(int(a[1])):
            s, e = tcp(a[2], int(a[3]))
            if s: socks.append(s); ok += 1
            else: errs.append(e)
        out({"ok": ok, "errors": errs, "open": len(socks)})
    elif c == "close":
        for _ in range(min(int(a[1]), len(socks))): socks.pop().close()
        out({"open": len(socks)})
    elif c == "churn":
        out(churn(int(a[1]), a[2], int(a[3]), int(a[4]), int(a[5])))
    elif c == "tcp":
        s, e = tcp(a[1], int(a[2]))
        if s: s.close()
        out({"errno": e})
    elif c == "retry":
        s = socket.socket(fam(a[1]), socket.SOCK_STREAM)
        first = s.connect_ex((a[1], int(a[2])))
        second = s.connect_ex((a[1], int(a[3])))
        if second == 0: socks.append(s)
        else: s.close()
        out({"first": first, "second": second, "open": len(socks)})
    elif c == "udp" or c == "udpconnect":
        s = socket.socket(fam(a[1]), socket.SOCK_DGRAM)
        try:
            if c == "udp": s.sendto(b"tgni", (a[1], int(a[2])))
            else: s.connect((a[1], int(a[2]))); s.send(b"tgni")
            e = 0
        except OSError as x:
            e = x.errno
        s.close(); out({"errno": e})
    elif c == "icmp":
        out(icmp(a[1]))
    elif c == "quit":
        for s in socks: s.close()
        out({"open": 0}); break
`;

/** Accepts on [::]:PORT (IPv4 too) and closes what it accepts; outside the containers. */
const LISTENER = String.raw`
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
s.listen(4096)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.close()
`;

class Helper {
  readonly proc: ChildProcessWithoutNullStreams;
  #lines: string[] = [];
  #waiting: Array<(line: string | undefined) => void> = [];
  #stderr = '';
  #closed = false;

  constructor(proc: ChildProcessWithoutNullStreams) {
    this.proc = proc;
    createInterface({ input: proc.stdout }).on('line', (l) => {
      const w = this.#waiting.shift();
      if (w) w(l);
      else this.#lines.push(l);
    });
    proc.stderr.on('data', (d: Buffer) => (this.#stderr += d.toString()));
    // 'close', not 'exit': the process can be gone before its last line is read.
    proc.on('close', () => {
      this.#closed = true;
      for (const w of this.#waiting.splice(0)) w(undefined);
    });
  }

  async #next(timeoutMs: number): Promise<string> {
    const had = this.#lines.shift();
    if (had !== undefined) return had;
    if (this.#closed) throw new Error(`helper ${this.proc.pid} exited: ${this.#stderr}`);
    let timer: NodeJS.Timeout | undefined;
    const line = await new Promise<string | undefined>((resolve) => {
      this.#waiting.push(resolve);
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    });
    clearTimeout(timer);
    if (line === undefined) throw new Error(`helper ${this.proc.pid}: no answer ${this.#closed ? 'before it exited' : `within ${timeoutMs} ms`} (${this.#stderr})`);
    return line;
  }

  async ready(): Promise<number> {
    return (JSON.parse(await this.#next(10_000)) as { ready: number }).ready;
  }

  async cmd<T = Record<string, unknown>>(...words: Array<string | number>): Promise<T> {
    this.proc.stdin.write(`${words.join(' ')}\n`);
    return JSON.parse(await this.#next(120_000)) as T;
  }

  async quit(): Promise<void> {
    if (this.#closed) return;
    await this.cmd('quit');
    await new Promise((r) => (this.#closed ? r(undefined) : this.proc.once('close', r)));
  }
}

type Open = { ok: number; errors: number[]; open: number };
type Churn = { open: number; connected: number; closed: number; errors: Record<string, number> };

// ---- the environment: cgroups, a network namespace, pins -------------------

interface Container {
  dir: string;
  payload: string;
  c: NetContainer;
}

class Env {
  readonly name = `tgni-${tag()}`;
  readonly mount = cgroup2Root();
  readonly root = join(this.mount, this.name);
  readonly pins = `/sys/fs/bpf/${this.name}`;
  readonly ns = this.name;
  #dirs: string[] = [];
  #procs: ChildProcessWithoutNullStreams[] = [];
  #isolations: NetIsolation[] = [];
  #netns = false;

  constructor(t: TestContext) {
    t.after(() => this.cleanup());
    this.#mkdir(this.root);
    this.#mkdir(join(this.root, 'docker'));
  }

  #mkdir(d: string): void {
    mkdirSync(d);
    this.#dirs.push(d);
  }

  /** A docker-style container cgroup NAME/docker/<id> with a payload cgroup below it. */
  container(id: string, tenant: string): Container {
    const dir = join(this.root, 'docker', id);
    const payload = join(dir, 'payload');
    this.#mkdir(dir);
    this.#mkdir(payload);
    const ino = (p: string) => statSync(p, { bigint: true }).ino;
    return { dir, payload, c: { id, runtime: 'docker', tenant, cgroupId: ino(dir), cgroupPath: dir.slice(this.mount.length), below: [ino(payload)] } };
  }

  /** The network namespace: loopback up with 198.18.0.1, .2 and 2001:2::1, ::2 on it. */
  netns(): void {
    spawnSync('ip', ['netns', 'add', this.ns], { stdio: 'ignore' });
    this.#netns = true;
    const ip = (...a: string[]) => {
      const r = spawnSync('ip', ['-n', this.ns, ...a], { encoding: 'utf8' });
      assert.equal(r.status, 0, `ip ${a.join(' ')}: ${r.stderr}`);
    };
    ip('link', 'set', 'lo', 'up');
    ip('addr', 'add', '198.18.0.1/32', 'dev', 'lo');
    ip('addr', 'add', '198.18.0.2/32', 'dev', 'lo');
    ip('-6', 'addr', 'add', '2001:2::1/128', 'dev', 'lo', 'nodad');
    ip('-6', 'addr', 'add', '2001:2::2/128', 'dev', 'lo', 'nodad');
  }

  async listener(): Promise<void> {
    const p = spawn('nsenter', [`--net=/run/netns/${this.ns}`, PY, '-u', '-c', LISTENER, String(PORT)]);
    this.#procs.push(p);
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: p.stdout }).once('line', resolve);
      p.once('exit', () => reject(new Error('listener exited')));
    });
    assert.equal(line, 'ready');
  }

  /** The helper program inside a cgroup (moved there before it execs), in the namespace. */
  async helper(cgroup: string): Promise<Helper> {
    const p = spawn('sh', ['-c', 'echo $$ > "$1/cgroup.procs" && exec nsenter --net="/run/netns/$2" "$3" -u -c "$4"', 'sh', cgroup, this.ns, PY, HELPER]);
    this.#procs.push(p);
    const h = new Helper(p);
    await h.ready();
    return h;
  }

  open(): NetIsolation {
    const n = NetIsolation.open({ pinRoot: this.pins, cgroupRoot: `/${this.name}` });
    this.#isolations.push(n);
    return n;
  }

  /** Closes an instance (as an agent stopping would). */
  close(n: NetIsolation): void {
    this.#isolations = this.#isolations.filter((x) => x !== n);
    n.close();
  }

  cleanup(): void {
    for (const p of this.#procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    for (const n of this.#isolations) n.close();
    removePins(this.pins);
    for (const d of this.#dirs.reverse()) {
      if (!existsSync(d)) continue;
      try {
        writeFileSync(join(d, 'cgroup.kill'), '1');
      } catch {
        // gone already
      }
      for (let i = 0; i < 200; i++) {
        try {
          rmdirSync(d);
          break;
        } catch {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10); // processes still exiting
        }
      }
    }
    if (this.#netns) spawnSync('ip', ['netns', 'del', this.ns], { stdio: 'ignore' });
  }
}

/** Scopes from YAML through the production schema; tenants acme and beta. */
function scopes(name: string, isolation: string): IsolationScope[] {
  return parsePolicy(`version: 1
tenants:
  - name: acme
    selectors: { cgroups: ["/${name}/acme/**"] }
  - name: beta
    selectors: { cgroups: ["/${name}/beta/**"] }
isolation:
${isolation}`).isolation!;
}

/** Events read from the ring while the test runs, described with the instance's names. */
async function eventsOf(t: TestContext, n: NetIsolation): Promise<() => NewEvent[]> {
  const reader = new RingBufReader(n.events().ring);
  const records: Buffer[] = [];
  reader.on('records', (r: Buffer[]) => records.push(...r));
  t.after(() => reader.stop());
  await reader.ready;
  const tai = taiOffsetMs();
  return () => records.map((r) => n.describe(r, tai));
}

async function until<T>(what: string, read: () => T, ok: (v: T) => boolean, ms = 5_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = read();
    if (ok(v)) return v;
    if (Date.now() > end) assert.fail(`${what}: ${JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? String(x) : x))}`);
    await sleep(20);
  }
}

const openOf = (n: NetIsolation, group: string): number | undefined => n.connections().find((g) => g.group === group)?.open;

// ---- BPF_PROG_TEST_RUN: the backstop ----------------------------------------

function ownCgroupId(): bigint {
  const path = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'))!.slice(3);
  return statSync(join(cgroup2Root(), path), { bigint: true }).ino;
}

const v4 = (s: string): Buffer => Buffer.from(s.split('.').map(Number));
const v6 = (s: string): Buffer => netDestination(s, 0).addr;

function frame(ethertype: number, l3: Buffer): Buffer {
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(ethertype, 12);
  return Buffer.concat([eth, l3]);
}

function ipv4(dst: string, proto: number, l4: Buffer, frag = 0): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + l4.length, 2);
  h.writeUInt16BE(7, 4);
  h.writeUInt16BE(frag, 6);
  h[8] = 64;
  h[9] = proto;
  v4('198.18.9.9').copy(h, 12);
  v4(dst).copy(h, 16);
  return frame(0x0800, Buffer.concat([h, l4]));
}

function ipv6(dst: string, next: number, l4: Buffer, fragOffset?: number): Buffer {
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  let payload = l4;
  let nh = next;
  if (fragOffset !== undefined) {
    const f = Buffer.alloc(8);
    f[0] = next;
    f.writeUInt16BE(fragOffset, 2); // offset in 8-byte units << 3, MF 0
    f.writeUInt32BE(99, 4);
    payload = Buffer.concat([f, l4]);
    nh = 44;
  }
  h.writeUInt16BE(payload.length, 4);
  h[6] = nh;
  h[7] = 64;
  v6('2001:2:0:9::9').copy(h, 8);
  v6(dst).copy(h, 24);
  return frame(0x86dd, Buffer.concat([h, payload]));
}

const ports = (dport: number, len: number): Buffer => {
  const b = Buffer.alloc(len);
  b.writeUInt16BE(40000, 0);
  b.writeUInt16BE(dport, 2);
  if (len === 20) b[12] = 5 << 4;
  return b;
};
/** An IPv4 header claiming 16 bytes (ihl 4): the parser trusts none of its fields. */
const malformed = (): Buffer => {
  const f = ipv4('198.19.200.1', TCP, tcp(80));
  f[14] = 0x44;
  return f;
};
const TCP = 6, UDP = 17, ICMP = 1, ICMP6 = 58, SCTP = 132;
const tcp = (d: number) => ports(d, 20);
const udp = (d: number) => ports(d, 8);
const sctp = (d: number) => ports(d, 12);
const icmp = () => Buffer.from([8, 0, 0, 0, 0, 1, 0, 1]);

test('the cgroup_skb backstop decides like the reference, from maps the production compiler wrote, in both generations', async (t) => {
  if (!kernelReady(t)) return;
  const pins = `/sys/fs/bpf/tgni-${tag()}`;
  t.after(() => removePins(pins));
  const dp = NetIsoDatapath.open({ pinRoot: pins });
  t.after(() => dp.close());
  const s = scopes('tgni', `
  - tenant: acme
    destinations:
      default: allow
      rules:
        - { action: allow, cidrs: ["198.18.1.1/32"] }
        - { action: deny, cidrs: ["198.18.1.0/24"] }
        - { action: deny, cidrs: ["198.18.2.0/24"], protocols: [icmp] }
        - { action: deny, cidrs: ["198.18.3.0/24"], protocols: [udp], ports: [53, "5000-5010"] }
        - { action: allow, cidrs: ["198.18.4.0/24"], ports: [443] }
        - { action: deny, cidrs: ["198.18.4.0/24", "2001:2:0:4::/64"] }
        - { action: deny, cidrs: ["2001:2:0:1::/64"], protocols: [icmpv6] }
  - tenant: beta
    destinations: { default: deny, rules: [{ action: allow, cidrs: ["198.18.0.0/15"], protocols: [icmp] }] }
  - tenant: acme
    containers: "/tgni/**"
    maxConnections: 3
`);
  const plan = compileNetIsolation(s, []);
  const reader = new RingBufReader(dp.events().ring);
  const records: Buffer[] = [];
  reader.on('records', (r: Buffer[]) => records.push(...r));
  t.after(() => reader.stop());
  await reader.ready;

  // name, frame, destination for the reference (dport undefined: unknown), scope index, expected verdict
  type Row = [string, Buffer, { addr: string; proto: number; dport?: number } | undefined, number, 'allow' | 'deny', number | null];
  const rows: Row[] = [
    ['ICMP to the allowed host', ipv4('198.18.1.1', ICMP, icmp()), { addr: '198.18.1.1', proto: ICMP }, 0, 'allow', 0],
    ['ICMP to the denied /24', ipv4('198.18.1.2', ICMP, icmp()), { addr: '198.18.1.2', proto: ICMP }, 0, 'deny', 1],
    ['TCP to the denied /24', ipv4('198.18.1.2', TCP, tcp(80)), { addr: '198.18.1.2', proto: TCP, dport: 80 }, 0, 'deny', 1],
    ['ICMP where only ICMP is denied', ipv4('198.18.2.7', ICMP, icmp()), { addr: '198.18.2.7', proto: ICMP }, 0, 'deny', 2],
    ['TCP where only ICMP is denied', ipv4('198.18.2.7', TCP, tcp(80)), { addr: '198.18.2.7', proto: TCP, dport: 80 }, 0, 'allow', null],
    ['UDP to a denied port', ipv4('198.18.3.3', UDP, udp(53)), { addr: '198.18.3.3', proto: UDP, dport: 53 }, 0, 'deny', 3],
    ['UDP inside a denied range', ipv4('198.18.3.3', UDP, udp(5005)), { addr: '198.18.3.3', proto: UDP, dport: 5005 }, 0, 'deny', 3],
    ['UDP past the range', ipv4('198.18.3.3', UDP, udp(5011)), { addr: '198.18.3.3', proto: UDP, dport: 5011 }, 0, 'allow', null],
    ['TCP to the UDP-only port', ipv4('198.18.3.3', TCP, tcp(53)), { addr: '198.18.3.3', proto: TCP, dport: 53 }, 0, 'allow', null],
    ['a later UDP fragment (port unknown) meets the deny rule with ports', ipv4('198.18.3.3', UDP, Buffer.alloc(8), 185), { addr: '198.18.3.3', proto: UDP }, 0, 'deny', 3],
    ['TCP to the allowed port', ipv4('198.18.4.4', TCP, tcp(443)), { addr: '198.18.4.4', proto: TCP, dport: 443 }, 0, 'allow', 4],
    ['SCTP to the allowed port (ports alone: tcp, udp, sctp)', ipv4('198.18.4.4', SCTP, sctp(443)), { addr: '198.18.4.4', proto: SCTP, dport: 443 }, 0, 'allow', 4],
    ['TCP to another port', ipv4('198.18.4.4', TCP, tcp(80)), { addr: '198.18.4.4', proto: TCP, dport: 80 }, 0, 'deny', 5],
    ['a later TCP fragment is not let through by the allow rule with ports', ipv4('198.18.4.4', TCP, Buffer.alloc(20), 0x2000 | 185), { addr: '198.18.4.4', proto: TCP }, 0, 'deny', 5],
    ['ICMP past the port rule', ipv4('198.18.4.4', ICMP, icmp()), { addr: '198.18.4.4', proto: ICMP }, 0, 'deny', 5],
    ['ICMP nowhere near a rule', ipv4('198.19.200.1', ICMP, icmp()), { addr: '198.19.200.1', proto: ICMP }, 0, 'allow', null],
    ['ICMPv6 to the denied /64', ipv6('2001:2:0:1::1', ICMP6, icmp()), { addr: '2001:2:0:1::1', proto: ICMP6 }, 0, 'deny', 6],
    ['UDP over IPv6 there', ipv6('2001:2:0:1::1', UDP, udp(53)), { addr: '2001:2:0:1::1', proto: UDP, dport: 53 }, 0, 'allow', null],
    ['TCP over IPv6 to an IPv6 CIDR of a rule with an IPv4 one', ipv6('2001:2:0:4::9', TCP, tcp(443)), { addr: '2001:2:0:4::9', proto: TCP, dport: 443 }, 0, 'deny', 5],
    ['a later IPv6 UDP fragment', ipv6('2001:2:0:4::9', UDP, Buffer.alloc(8), 8 << 3), { addr: '2001:2:0:4::9', proto: UDP }, 0, 'deny', 5],
    ['a malformed IPv4 header (ihl 4): the destination cannot be trusted', malformed(), undefined, 0, 'deny', null],
    ['default deny: ICMP allowed', ipv4('198.18.2.7', ICMP, icmp()), { addr: '198.18.2.7', proto: ICMP }, 1, 'allow', 0],
    ['default deny: TCP refused', ipv4('198.18.1.1', TCP, tcp(80)), { addr: '198.18.1.1', proto: TCP, dport: 80 }, 1, 'deny', null],
    ['default deny: ICMP outside the allowed /15', ipv4('198.20.0.1', ICMP, icmp()), { addr: '198.20.0.1', proto: ICMP }, 1, 'deny', null],
    ['a scope without destinations checks nothing', ipv4('198.18.1.2', TCP, Buffer.alloc(3)), undefined, 2, 'allow', null],
  ];
  const me = ownCgroupId();
  let drops = 0;
  for (const gen of [0, 1] as const) {
    dp.clearGeneration(gen === 0 ? 1 : 0);
    dp.writeGeneration(generationEntries(plan.scopes, gen));
    for (const [name, data, dest, scope, action, rule] of rows) {
      if (dest) assert.deepEqual(destinationVerdict(s[scope]!, netDestination(dest.addr, dest.proto, dest.dport)), { action, rule }, `reference: ${name}`);
      dp.setCgroups(new Map([[me, { group: 0, scope: kernelScopeId(gen, scope) }]]));
      let r;
      try {
        r = dp.program('egress').testRun({ data });
      } catch (e) {
        throw new Error(`generation ${gen}: ${name}: ${(e as Error).message}`);
      }
      assert.equal(r.retval, action === 'allow' ? 1 : 0, `generation ${gen}: ${name}`);
      if (action === 'deny') drops++;
    }
  }
  // An unmapped cgroup pays one lookup and is never dropped.
  dp.setCgroups(new Map());
  assert.equal(dp.program('egress').testRun({ data: rows[1]![1] }).retval, 1, 'unmapped cgroup');

  await until('the drop events', () => records.length, (n) => n >= drops);
  const events = records.map((r) => TgNiEvent.decode(r));
  assert.equal(events.length, drops);
  assert.ok(events.every((e) => e.type === TG_NIEV_EGRESS_DENIED && e.cgroup_id === me && e.pid === process.pid), 'every drop reported, with the cgroup and task');
  const names = { container: () => undefined, group: () => undefined, scopes: () => s };
  const first = describeNetEvent(records[0]!, names, taiOffsetMs());
  assert.deepEqual([first.type, first.rule, first.action, first.flow], ['egress.denied', 'isolation[0].destinations.rules[1]', 'drop', { protocol: 'icmp', src: '0.0.0.0', sport: null, dst: '198.18.1.2', dport: null }]);
  const cut = records.map((r) => describeNetEvent(r, names, 0)).find((e) => e.flow === null);
  assert.equal(cut?.rule, 'isolation[0].destinations.default');
  const stats = new TypedMap(dp.events().stats, u32, u64);
  assert.equal(stats.getSum(TG_SEV_SENT), BigInt(drops));

  // A loop of denied packets: TG_NI_EVENTS_PER_SEC per CPU and second are sent, the rest counted; every one dropped.
  // The runs take well under a second, but may straddle the start of a new budget second: at most two budgets.
  dp.setCgroups(new Map([[me, { group: 0, scope: kernelScopeId(1, 0) }]]));
  const stat = (i: number) => stats.getSum(i) ?? 0n;
  const [sent0, suppressed0] = [stat(TG_SEV_SENT), stat(TG_SEV_SUPPRESSED)];
  const runs = 2 * TG_NI_EVENTS_PER_SEC + 500;
  assert.equal(dp.program('egress').testRun({ data: rows[1]![1], repeat: runs }).retval, 0);
  const sent = stat(TG_SEV_SENT) - sent0;
  const suppressed = stat(TG_SEV_SUPPRESSED) - suppressed0;
  assert.equal(sent + suppressed, BigInt(runs));
  assert.ok(sent <= BigInt(2 * TG_NI_EVENTS_PER_SEC) && suppressed >= BigInt(runs - 2 * TG_NI_EVENTS_PER_SEC), `sent ${sent}, suppressed ${suppressed}`);
});

// ---- real processes in container cgroups -----------------------------------

const ID = (c: string): string => c.repeat(32);

test('connection limit: the (N+1)th connect gets EPERM, a close frees a slot; the payload cgroup counts too; a neighbour without a limit is unaffected; a killed process releases its sockets', { timeout: 120_000 }, async (t) => {
  if (!kernelReady(t)) return;
  const env = new Env(t);
  env.netns();
  await env.listener();
  const a = env.container(ID('a1'), 'acme');
  const b = env.container(ID('b2'), 'acme');
  const s = scopes(env.name, `
  - tenant: acme
    containers: "/${env.name}/docker/a1*"
    maxConnections: 5
  - tenant: acme
`);
  const n = env.open();
  assert.deepEqual(n.attachment?.attached.sort(), ['connect4', 'connect6', 'egress', 'sendmsg4', 'sendmsg6', 'sock_release']);
  const events = await eventsOf(t, n);
  assert.deepEqual(n.apply(s, [a.c, b.c]), { containers: 2, groups: 2, unassigned: [], uncovered: [], generation: 1, switched: true });
  const A = `container:${a.c.id}`;
  const B = 'tenant:acme';

  const ha = await env.helper(a.dir);
  assert.deepEqual(await ha.cmd<Open>('open', 5, '198.18.0.1', PORT), { ok: 5, errors: [], open: 5 });
  assert.deepEqual(n.connections().find((g) => g.group === A), { group: A, kind: 'container', tenant: 'acme', scope: 0, containers: [a.c.id], open: 5, limit: 5, slot: n.connections().find((g) => g.group === A)!.slot });
  assert.deepEqual(await ha.cmd<Open>('open', 2, '198.18.0.1', PORT), { ok: 0, errors: [EPERM, EPERM], open: 5 }, 'the 6th and 7th connect fail with EPERM');
  assert.deepEqual(await ha.cmd('tcp', '2001:2::1', PORT), { errno: EPERM }, 'over IPv6 too');
  const hp = await env.helper(a.payload);
  assert.deepEqual(await hp.cmd<Open>('open', 1, '198.18.0.1', PORT), { ok: 0, errors: [EPERM], open: 0 }, 'the cgroup below the container counts for it');
  assert.equal(openOf(n, A), 5);

  assert.deepEqual(await ha.cmd('close', 1), { open: 4 });
  assert.equal(openOf(n, A), 4, 'a close frees a slot');
  assert.deepEqual(await hp.cmd<Open>('open', 2, '2001:2::1', PORT), { ok: 1, errors: [EPERM], open: 1 });
  assert.equal(openOf(n, A), 5);

  const hb = await env.helper(b.dir);
  assert.deepEqual(await hb.cmd<Open>('open', 20, '198.18.0.1', PORT), { ok: 20, errors: [], open: 20 }, 'the neighbour has no limit');
  assert.equal(openOf(n, B), 20);
  assert.equal(openOf(n, A), 5);
  // A socket whose first connect failed (nothing listens on port 9) and that connects again is counted once.
  assert.deepEqual(await hb.cmd('retry', '198.18.0.1', 9, PORT), { first: 111, second: 0, open: 21 });
  assert.equal(openOf(n, B), 21, 'counted once');
  const hb2 = await env.helper(b.dir);
  assert.deepEqual(await hb2.cmd<Open>('open', 3, '198.18.0.1', PORT), { ok: 3, errors: [], open: 3 });
  assert.equal(openOf(n, B), 24);
  hb2.proc.kill('SIGKILL');
  await until('the killed process\'s sockets released', () => openOf(n, B), (v) => v === 21);

  const limits = await until('limit events', () => events().filter((e) => e.type === 'connections.limit'), (l) => l.length === 5);
  for (const e of limits) {
    assert.equal(e.rule, 'isolation[0].maxConnections');
    assert.equal(e.action, 'deny');
    assert.equal(e.tenant, 'acme');
    assert.equal(e.detail.container, a.c.id);
    assert.equal(e.detail.group, A);
    assert.equal(e.detail.limit, 5);
    assert.equal(e.detail.command, 'python3');
    assert.equal(e.detail.socket, 'stream');
    assert.equal(e.flow?.dport, PORT);
  }
  assert.deepEqual(limits.map((e) => e.flow?.dst), ['198.18.0.1', '198.18.0.1', '2001:2::1', '198.18.0.1', '2001:2::1']);
  assert.deepEqual(limits.map((e) => e.detail.pid), [ha.proc.pid, ha.proc.pid, ha.proc.pid, hp.proc.pid, hp.proc.pid]);

  for (const h of [ha, hp, hb]) await h.quit();
  assert.equal(openOf(n, A), 0);
  assert.equal(openOf(n, B), 0);
});

test('10,000 connects and closes with churn keep the count exact, also while the TypeScript side is closed and after it reopens over the same pins', { timeout: 300_000 }, async (t) => {
  if (!kernelReady(t)) return;
  const env = new Env(t);
  env.netns();
  await env.listener();
  const c = env.container(ID('c3'), 'acme');
  const s = scopes(env.name, `
  - tenant: acme
    containers: "/${env.name}/docker/**"
    maxConnections: 40
`);
  const G = `container:${c.c.id}`;
  let n = env.open();
  n.apply(s, [c.c]);
  const slot = n.connections()[0]!.slot;
  // Two processes (the container's and its payload cgroup's) churn at once, together wanting up to 60.
  const hs = [await env.helper(c.dir), await env.helper(c.payload)];
  let attempts = 0;
  let refused = 0;
  let maxOpen = 0;
  for (let round = 0; attempts < 10_000; round++) {
    assert.ok(round < 30, 'enough rounds');
    if (round === 4) {
      env.close(n); // the agent stops: the kernel keeps enforcing and counting
    }
    const res = await Promise.all(hs.map((h, i) => h.cmd<Churn>('churn', 800, i === 0 ? '198.18.0.1' : '2001:2::1', PORT, round * 2 + i, 30)));
    for (const r of res) {
      attempts += r.connected + Object.values(r.errors).reduce((a, b) => a + b, 0);
      refused += r.errors[String(EPERM)] ?? 0;
      assert.deepEqual(Object.keys(r.errors).filter((e) => e !== String(EPERM)), [], `only EPERM: ${JSON.stringify(r.errors)}`);
    }
    const open = res.reduce((a, r) => a + r.open, 0);
    maxOpen = Math.max(maxOpen, open);
    assert.ok(open <= 40, `round ${round}: ${open} open, limit 40`);
    if (round === 4) {
      // A restarted agent: the same pins, the links adopted, the group in its slot, the count exact.
      n = env.open();
      assert.deepEqual(n.attachment?.adopted.length, 6);
      assert.equal(n.attachment?.reset, false);
      assert.equal(n.datapath.count(slot), BigInt(open), 'counted while no agent ran');
      n.apply(s, [c.c]);
      assert.equal(n.connections()[0]!.slot, slot, 'the group keeps its slot');
    }
    assert.equal(openOf(n, G), open, `round ${round}: the kernel counts the sockets open`);
  }
  assert.ok(refused > 0, `the limit was reached (${refused} refused)`);
  // Topped up at rest: exactly 40 open, the 41st refused.
  const before = await hs[1]!.cmd<{ open: number }>('close', 0);
  const top = await hs[0]!.cmd<Open>('open', 45, '198.18.0.1', PORT);
  assert.equal(top.open + before.open, 40);
  assert.deepEqual(top.errors, Array.from({ length: 45 - top.ok }, () => EPERM));
  assert.equal(openOf(n, G), 40);
  for (const h of hs) await h.quit();
  assert.equal(openOf(n, G), 0, `0 after ${attempts} connects`);
  t.diagnostic(`${attempts} connect attempts, ${refused} refused with EPERM, at most ${maxOpen} open`);
});

test('slots and leases: a slot given to another group starts at zero and the old group\'s sockets never release into it; hooks attached again begin counting again', { timeout: 60_000 }, async (t) => {
  if (!kernelReady(t)) return;
  const env = new Env(t);
  env.netns();
  await env.listener();
  const x = env.container(ID('c1'), 'acme');
  const y = env.container(ID('c2'), 'acme');
  const s = scopes(env.name, `
  - tenant: acme
    containers: "/${env.name}/docker/**"
    maxConnections: 3
`);
  const n = env.open();
  n.apply(s, [x.c]);
  const hx = await env.helper(x.dir);
  assert.deepEqual(await hx.cmd<Open>('open', 3, '198.18.0.1', PORT), { ok: 3, errors: [], open: 3 });
  const slot = n.connections()[0]!.slot;
  assert.equal(n.datapath.count(slot), 3n);

  // X goes (its process still holds three sockets), Y comes and gets X's slot.
  n.apply(s, []);
  n.apply(s, [y.c]);
  assert.deepEqual(n.connections().map((g) => [g.group, g.slot, g.open]), [[`container:${y.c.id}`, slot, 0]]);
  assert.deepEqual(await hx.cmd('close', 3), { open: 0 });
  assert.equal(n.datapath.count(slot), 0n, 'X\'s sockets did not release into Y');
  const hy = await env.helper(y.dir);
  assert.deepEqual(await hy.cmd<Open>('open', 4, '198.18.0.1', PORT), { ok: 3, errors: [EPERM], open: 3 });

  // Detached: closes go unseen; attached again, counting begins again and old sockets never release.
  n.detach();
  assert.equal(n.datapath.attachedAt(), undefined);
  assert.deepEqual(await hy.cmd('close', 1), { open: 2 });
  assert.deepEqual(await hy.cmd<Open>('open', 2, '198.18.0.1', PORT), { ok: 2, errors: [], open: 4 }, 'nothing is enforced while detached');
  const again = n.attach(`/${env.name}`);
  assert.equal(again.reset, true);
  assert.equal(again.attached.length, 6);
  assert.equal(n.datapath.attachedAt(), statSync(env.root, { bigint: true }).ino);
  assert.equal(openOf(n, `container:${y.c.id}`), 0);
  assert.deepEqual(await hy.cmd<Open>('open', 4, '198.18.0.1', PORT), { ok: 3, errors: [EPERM], open: 7 });
  assert.deepEqual(await hy.cmd('close', 3), { open: 4 });
  assert.equal(openOf(n, `container:${y.c.id}`), 0);
  assert.deepEqual(await hy.cmd('close', 4), { open: 0 });
  assert.equal(openOf(n, `container:${y.c.id}`), 0, 'never below zero');
  for (const h of [hx, hy]) await h.quit();
});

test('a tenant scope limits the sum over its containers', { timeout: 60_000 }, async (t) => {
  if (!kernelReady(t)) return;
  const env = new Env(t);
  env.netns();
  await env.listener();
  const d = env.container(ID('d4'), 'beta');
  const e = env.container(ID('e5'), 'beta');
  const other = env.container(ID('f6'), 'acme');
  const s = scopes(env.name, `
  - tenant: beta
    maxConnections: 6
  - tenant: acme
    maxConnections: 1
`);
  const n = env.open();
  n.apply(s, [d.c, e.c, other.c]);
  const hd = await env.helper(d.dir);
  const he = await env.helper(e.payload);
  const hf = await env.helper(other.dir);
  assert.deepEqual(await hd.cmd<Open>('open', 4, '198.18.0.1', PORT), { ok: 4, errors: [], open: 4 });
  assert.deepEqual(await he.cmd<Open>('open', 4, '198.18.0.2', PORT), { ok: 2, errors: [EPERM, EPERM], open: 2 });
  assert.deepEqual(await hf.cmd<Open>('open', 2, '198.18.0.1', PORT), { ok: 1, errors: [EPERM], open: 1 }, 'another tenant counts apart');
  const beta = n.connections().find((g) => g.group === 'tenant:beta')!;
  assert.deepEqual({ ...beta, slot: 0 }, { group: 'tenant:beta', kind: 'tenant', tenant: 'beta', scope: 0, containers: [d.c.id, e.c.id], open: 6, limit: 6, slot: 0 });
  assert.deepEqual(await hd.cmd('close', 3), { open: 1 });
  assert.deepEqual(await he.cmd<Open>('open', 4, '198.18.0.2', PORT), { ok: 3, errors: [EPERM], open: 5 });
  assert.equal(openOf(n, 'tenant:beta'), 6);
  // The limit goes up in place: the count goes on.
  const raised = scopes(env.name, `
  - tenant: beta
    maxConnections: 8
  - tenant: acme
    maxConnections: 1
`);
  const outside: NetContainer = { id: ID('99'), runtime: 'docker', tenant: 'acme', cgroupId: 2n ** 62n, cgroupPath: '/elsewhere/docker/99', below: [] };
  const r = n.apply(raised, [d.c, e.c, other.c, outside]);
  assert.equal(r.switched, false, 'no rule changed');
  assert.deepEqual(r.uncovered, [outside.id], 'a container the hooks do not cover is named');
  assert.equal(openOf(n, 'tenant:beta'), 6);
  assert.deepEqual(await hd.cmd<Open>('open', 3, '198.18.0.1', PORT), { ok: 2, errors: [EPERM], open: 3 });
  for (const h of [hd, he, hf]) await h.quit();
  assert.equal(openOf(n, 'tenant:beta'), 0);
});

test('destination rules: TCP and UDP connect, UDP sendmsg and raw ICMP (backstop) denied or allowed per container, with events; a policy change switches generations', { timeout: 120_000 }, async (t) => {
  if (!kernelReady(t)) return;
  const env = new Env(t);
  env.netns();
  await env.listener();
  const f = env.container(ID('f7'), 'acme');
  const g = env.container(ID('a8'), 'acme');
  const h = env.container(ID('b9'), 'beta');
  const policy = (deny: string) => scopes(env.name, `
  - tenant: acme
    containers: "/${env.name}/docker/f7*"
    destinations:
      default: allow
      rules:
        - { action: deny, cidrs: [${deny}] }
        - { action: deny, cidrs: ["198.18.0.1/32"], protocols: [udp], ports: [53] }
        - { action: deny, cidrs: ["198.18.0.1/32"], protocols: [icmp] }
  - tenant: acme
  - tenant: beta
    destinations:
      default: deny
      rules:
        - { action: allow, cidrs: ["198.18.0.1/32"], protocols: [tcp], ports: [${PORT}] }
        - { action: allow, cidrs: ["2001:2::1/128"], protocols: [icmpv6] }
`);
  const s = policy('"198.18.0.2/32", "2001:2::2/128"');
  const n = env.open();
  const events = await eventsOf(t, n);
  const first = n.apply(s, [f.c, g.c, h.c]);
  const hf = await env.helper(f.dir);
  const hg = await env.helper(g.dir);
  const hh = await env.helper(h.payload);
  type Row = [string, Helper, Array<string | number>, Record<string, unknown>];
  const rows: Row[] = [
    ['TCP to an allowed address', hf, ['tcp', '198.18.0.1', PORT], { errno: 0 }],
    ['TCP to a denied address', hf, ['tcp', '198.18.0.2', PORT], { errno: EPERM }],
    ['TCP over IPv6, allowed', hf, ['tcp', '2001:2::1', PORT], { errno: 0 }],
    ['TCP over IPv6, denied', hf, ['tcp', '2001:2::2', PORT], { errno: EPERM }],
    ['TCP from a dual-stack socket to a v4-mapped denied address', hf, ['tcp', '::ffff:198.18.0.2', PORT], { errno: EPERM }],
    ['UDP sendto a denied port', hf, ['udp', '198.18.0.1', 53], { errno: EPERM }],
    ['UDP sendto another port', hf, ['udp', '198.18.0.1', 54], { errno: 0 }],
    ['UDP connect to a denied address', hf, ['udpconnect', '198.18.0.2', 9999], { errno: EPERM }],
    ['UDP sendto over IPv6, denied', hf, ['udp', '2001:2::2', 53], { errno: EPERM }],
    ['raw ICMP where ICMP is denied (backstop)', hf, ['icmp', '198.18.0.1'], { errno: EPERM, reply: false }],
    ['raw ICMP to a denied address (backstop)', hf, ['icmp', '198.18.0.2'], { errno: EPERM, reply: false }],
    ['raw ICMP to loopback, allowed', hf, ['icmp', '127.0.0.1'], { errno: 0, reply: true }],
    ['raw ICMPv6 to a denied address (backstop)', hf, ['icmp', '2001:2::2'], { errno: EPERM, reply: false }],
    ['raw ICMPv6, allowed', hf, ['icmp', '2001:2::1'], { errno: 0, reply: true }],
    ['the neighbour: TCP to the address F may not reach', hg, ['tcp', '198.18.0.2', PORT], { errno: 0 }],
    ['the neighbour: raw ICMP', hg, ['icmp', '198.18.0.1'], { errno: 0, reply: true }],
    ['the neighbour: UDP to port 53', hg, ['udp', '198.18.0.1', 53], { errno: 0 }],
    ['default deny: the allowed TCP port', hh, ['tcp', '198.18.0.1', PORT], { errno: 0 }],
    ['default deny: another port', hh, ['tcp', '198.18.0.1', PORT + 1], { errno: EPERM }],
    ['default deny: UDP', hh, ['udp', '198.18.0.1', PORT], { errno: EPERM }],
    ['default deny: raw ICMP to loopback', hh, ['icmp', '127.0.0.1'], { errno: EPERM, reply: false }],
    ['default deny: the allowed ICMPv6', hh, ['icmp', '2001:2::1'], { errno: 0, reply: true }],
  ];
  for (const [name, helper, cmd, want] of rows) assert.deepEqual(await helper.cmd(...cmd), want, name);

  const denied = rows.filter(([, , , w]) => w.errno === EPERM).length;
  const got = await until('a denial event each', () => events().filter((e) => e.type.endsWith('.denied')), (l) => l.length >= denied);
  assert.equal(got.length, denied);
  const byType = (type: string) => got.filter((e) => e.type === type);
  assert.equal(byType('connect.denied').length, 5);
  assert.equal(byType('sendmsg.denied').length, 3);
  assert.equal(byType('egress.denied').length, 4);
  const c = byType('connect.denied')[0]!;
  assert.deepEqual(
    { type: c.type, tenant: c.tenant, rule: c.rule, action: c.action, flow: c.flow, container: c.detail.container, command: c.detail.command, pid: c.detail.pid, socket: c.detail.socket },
    { type: 'connect.denied', tenant: 'acme', rule: 'isolation[0].destinations.rules[0]', action: 'deny', flow: { protocol: 'tcp', src: '0.0.0.0', sport: null, dst: '198.18.0.2', dport: PORT }, container: f.c.id, command: 'python3', pid: hf.proc.pid, socket: 'stream' },
  );
  assert.deepEqual(byType('connect.denied').map((e) => [e.rule, e.flow?.protocol, e.flow?.dst, e.flow?.dport, e.detail.socket, e.detail.container]), [
    ['isolation[0].destinations.rules[0]', 'tcp', '198.18.0.2', PORT, 'stream', f.c.id],
    ['isolation[0].destinations.rules[0]', 'tcp', '2001:2::2', PORT, 'stream', f.c.id],
    ['isolation[0].destinations.rules[0]', 'tcp', '198.18.0.2', PORT, 'stream', f.c.id], // v4-mapped, reported as the IPv4 destination
    ['isolation[0].destinations.rules[0]', 'udp', '198.18.0.2', 9999, 'dgram', f.c.id],
    ['isolation[2].destinations.default', 'tcp', '198.18.0.1', PORT + 1, 'stream', h.c.id],
  ]);
  assert.deepEqual(byType('sendmsg.denied').map((e) => [e.rule, e.flow?.protocol, e.flow?.dst, e.flow?.dport, e.detail.socket]), [
    ['isolation[0].destinations.rules[1]', 'udp', '198.18.0.1', 53, 'dgram'],
    ['isolation[0].destinations.rules[0]', 'udp', '2001:2::2', 53, 'dgram'],
    ['isolation[2].destinations.default', 'udp', '198.18.0.1', PORT, 'dgram'],
  ]);
  assert.deepEqual(byType('egress.denied').map((e) => [e.rule, e.action, e.flow?.protocol, e.flow?.dst, e.detail.socket, e.detail.container]), [
    ['isolation[0].destinations.rules[2]', 'drop', 'icmp', '198.18.0.1', 'raw', f.c.id],
    ['isolation[0].destinations.rules[0]', 'drop', 'icmp', '198.18.0.2', 'raw', f.c.id],
    ['isolation[0].destinations.rules[0]', 'drop', 'icmpv6', '2001:2::2', 'raw', f.c.id],
    ['isolation[2].destinations.default', 'drop', 'icmp', '127.0.0.1', 'raw', h.c.id],
  ]);

  // A new policy: the rules are switched to the other generation at once, the old one removed.
  const oldId = kernelScopeId(first.generation, 0);
  const second = n.apply(policy('"2001:2::2/128"'), [f.c, g.c, h.c]);
  assert.deepEqual([second.switched, second.generation], [true, first.generation === 0 ? 1 : 0]);
  assert.deepEqual(n.datapath.prefixes(oldId), { v4: [], v6: [] }, 'the old generation is gone');
  assert.deepEqual(await hf.cmd('tcp', '198.18.0.2', PORT), { errno: 0 }, 'allowed now');
  assert.deepEqual(await hf.cmd('tcp', '2001:2::2', PORT), { errno: EPERM }, 'still denied');
  assert.equal(n.apply(policy('"2001:2::2/128"'), [f.c, g.c, h.c]).switched, false, 'the same rules again: nothing rewritten');
  for (const x of [hf, hg, hh]) await x.quit();
});
