// Flood and scan detection with automatic blocks, the agent's half
// (docs/security.md, "Floods and scans"). The datapath counts what the
// firewall lets through per destination and per source (UDP from reflection
// ports apart), and the distinct ports each source sends SYNs and UDP to.
// Every poll this compares the counts with the ones `window` ago:
//  - a destination receiving more than the ddos thresholds is flooded:
//    reflection traffic to it is blocked (amplification), or else the
//    sources sending most of it are (volumetric); a block lives holdFor and
//    is renewed while what it drops is still a flood;
//  - a source that touched portscan.threshold distinct ports in its window
//    is a scanner: an event, and with action block, a block for blockFor.
// Start, end and detection are security events. Blocks carry their expiry
// into the datapath, which honours it without the agent.
import { pollEvery } from '../periodic.js';
import { type BpfMap, TypedMap, u32 } from '../kernel/index.js';
import { TgAddrKey, TgBlock, TgTraffic, type TgHoneypot, TG_FW_LIVE_BLOCK_REFL, TG_FW_LIVE_BLOCK_SRC, TG_FW_LIVE_DDOS, TG_FW_LIVE_SCAN } from '../kernel/abi.gen.js';
import { formatAddress } from '../policy/cidr.js';
import type { SecuritySection } from '../policy/index.js';
import type { NewEvent } from '../events/event.js';
import type { FirewallMaps } from './maps.js';
import { honeypotOf } from './compile.js';

export type DdosSection = NonNullable<SecuritySection['ddos']>;
export type PortscanSection = NonNullable<SecuritySection['portscan']>;
type Addr = ReturnType<typeof TgAddrKey.decode>;
type Traffic = ReturnType<typeof TgTraffic.decode>;

/** A volumetric flood's sources sending at least this share of the threshold each are blocked. */
export const HEAVY_SHARE = 0.1;
/** Sources blocked at most per flood. */
export const MAX_BLOCKED_PER_FLOOD = 1024;

const NO_REDIRECT = { bytes: 0n, idle_ns: 0n, to: { ifindex: 0, family: 0, via_be: Buffer.alloc(16) } };
const text = (k: Addr): string => formatAddress(k.ip_ver === 4 ? 4 : 6, k.addr_be.subarray(0, k.ip_ver === 4 ? 4 : 16));
const id = (k: Addr): string => `${k.ip_ver}:${k.addr_be.toString('hex')}`;

interface Snapshot {
  at: number;
  dst: Map<string, Traffic & { key: Addr }>;
  src: Map<string, Traffic & { key: Addr }>;
}

interface Flood {
  key: Addr;
  address: string;
  kind: 'amplification' | 'volumetric';
  since: number;
  peakPps: number;
  peakBps: number;
  /** Sources blocked for it (volumetric). */
  sources: Addr[];
  /** When the last block renewal happened (ms). */
  renewedAt: number;
}

export interface GuardStatus {
  floods: Array<{ destination: string; tenant: string | null; kind: Flood['kind']; since: string; peakPps: number; peakBps: number; blockedSources: number }>;
  blocks: { sources: number; reflection: number };
}

export interface GuardsOptions {
  tenantOf(address: string): string | null;
  record(events: NewEvent[]): void;
  onError?(err: Error): void;
  pollMs?: number;
  /** CLOCK_MONOTONIC ns, bpf_ktime_get_ns's clock (tests may pass another). */
  monoNs?(): bigint;
}

export class Guards {
  readonly #fw: FirewallMaps;
  readonly #reflPort: BpfMap;
  readonly #dst: TypedMap<Addr, Traffic>;
  readonly #src: TypedMap<Addr, Traffic>;
  readonly #blockSrc: TypedMap<Addr, ReturnType<typeof TgBlock.decode>>;
  readonly #blockRefl: TypedMap<Addr, ReturnType<typeof TgBlock.decode>>;
  readonly #opts: GuardsOptions;
  #ddos: DdosSection | undefined;
  #scan: PortscanSection | undefined;
  #history: Snapshot[] = [];
  readonly #floods = new Map<string, Flood>();
  /** Scanners flagged, by source id: when, so one scan is one event per window. */
  readonly #flagged = new Map<string, number>();
  #ports = '';
  /** Where portscan.action redirect sends scanners. */
  #scanTarget: TgHoneypot | undefined;
  #stop: (() => void) | undefined;
  /** Whether the block maps held entries when #setFlags last looked (true until it has: an earlier agent's). */
  #blocksHeld = true;

  constructor(fw: FirewallMaps, maps: { reflPort: BpfMap; dst: BpfMap; src: BpfMap; blockSrc: BpfMap; blockRefl: BpfMap }, opts: GuardsOptions) {
    this.#fw = fw;
    this.#reflPort = maps.reflPort;
    this.#dst = new TypedMap(maps.dst, TgAddrKey, TgTraffic);
    this.#src = new TypedMap(maps.src, TgAddrKey, TgTraffic);
    this.#blockSrc = new TypedMap(maps.blockSrc, TgAddrKey, TgBlock);
    this.#blockRefl = new TypedMap(maps.blockRefl, TgAddrKey, TgBlock);
    this.#opts = opts;
  }

  #mono(): bigint {
    return this.#opts.monoNs?.() ?? process.hrtime.bigint();
  }

  /**
   * Makes the policy's ddos and portscan sections live (counting on or off);
   * blocks already made stay until they expire. ifindexOf resolves
   * portscan.redirectTo; a missing interface throws before anything changes.
   */
  apply(security: SecuritySection | undefined, ifindexOf?: (name: string) => number | undefined): void {
    const scan = security?.portscan?.enabled ? security.portscan : undefined;
    const target = scan?.action === 'redirect' ? honeypotOf(scan.redirectTo!, scan.redirectVia, ifindexOf, 'security.portscan.redirectTo') : undefined;
    this.#scanTarget = target;
    this.#ddos = security?.ddos?.enabled ? security.ddos : undefined;
    this.#scan = scan;
    const ports = JSON.stringify(this.#ddos?.reflectionPorts ?? []);
    if (ports !== this.#ports) {
      const wanted = new Set(this.#ddos?.reflectionPorts ?? []);
      const entries: Array<[Buffer, Buffer]> = [];
      for (let p = 0; p < 65536; p++) entries.push([u32.encode(p), Buffer.from([wanted.has(p) ? 1 : 0])]);
      this.#reflPort.updateMany(entries);
      this.#ports = ports;
    }
    if (!this.#ddos) for (const f of [...this.#floods.values()]) this.#endFlood(f, Date.now(), 'flood detection switched off by the policy');
    this.#setFlags();
  }

  #setFlags(): void {
    let flags = 0;
    if (this.#ddos) flags |= TG_FW_LIVE_DDOS;
    if (this.#scan) flags |= TG_FW_LIVE_SCAN;
    if (this.#blockSrc.map.lookupBatchPacked().count > 0) flags |= TG_FW_LIVE_BLOCK_SRC;
    if (this.#blockRefl.map.lookupBatchPacked().count > 0) flags |= TG_FW_LIVE_BLOCK_REFL;
    this.#fw.setGuardFlags(flags);
    this.#blocksHeld = (flags & (TG_FW_LIVE_BLOCK_SRC | TG_FW_LIVE_BLOCK_REFL)) !== 0;
  }

  /** Polls now (the baseline: what was counted before is no rate) and every pollMs until stop(). */
  start(): void {
    this.#stop ??= pollEvery(this.#opts.pollMs ?? 200, () => this.poll(), this.#opts.onError);
  }

  stop(): void {
    this.#stop?.();
    this.#stop = undefined;
  }

  #read(map: TypedMap<Addr, Traffic>): Map<string, Traffic & { key: Addr }> {
    return new Map(map.entriesSum().map(([k, t]) => [id(k), { key: k, ...t }]));
  }

  /** The snapshot closest to `ms` ago (at least that old when there is one). */
  #back(now: number, ms: number): Snapshot | undefined {
    let pick: Snapshot | undefined;
    for (const s of this.#history) if (now - s.at >= ms) pick = s;
    return pick ?? this.#history[0];
  }

  poll(now = Date.now()): void {
    if (!this.#ddos && !this.#scan && this.#floods.size === 0) {
      this.#history = [];
      this.#expire();
      return;
    }
    const snap: Snapshot = { at: now, dst: this.#read(this.#dst), src: this.#read(this.#src) };
    if (this.#ddos) this.#floodsRound(snap, now);
    if (this.#scan) this.#scanRound(snap, now);
    this.#history.push(snap);
    const keep = Math.max(this.#ddos?.window ?? 0, this.#scan?.window ?? 0) + 2000;
    while (this.#history.length > 1 && now - this.#history[0]!.at > keep) this.#history.shift();
    this.#expire();
  }

  #floodsRound(snap: Snapshot, now: number): void {
    const d = this.#ddos!;
    const base = this.#back(now, d.window);
    if (!base || base === snap) return;
    const secs = (now - base.at) / 1000;
    if (secs <= 0) return;
    const over = (pps: number, bps: number) => (d.thresholdPps !== undefined && pps >= d.thresholdPps) || (d.thresholdBps !== undefined && bps >= d.thresholdBps);
    for (const [k, t] of snap.dst) {
      const b = base.dst.get(k);
      const pps = Number(t.packets - (b?.packets ?? 0n)) / secs;
      const bps = (Number(t.bytes - (b?.bytes ?? 0n)) * 8) / secs;
      const reflPps = Number(t.refl_packets - (b?.refl_packets ?? 0n)) / secs;
      const reflBps = (Number(t.refl_bytes - (b?.refl_bytes ?? 0n)) * 8) / secs;
      const flood = this.#floods.get(k);
      if (flood) {
        flood.peakPps = Math.max(flood.peakPps, Math.round(pps));
        flood.peakBps = Math.max(flood.peakBps, Math.round(bps));
        continue;
      }
      if (over(reflPps, reflBps)) this.#startFlood(t.key, 'amplification', reflPps, reflBps, snap, base, secs, now);
      else if (over(pps, bps)) this.#startFlood(t.key, 'volumetric', pps, bps, snap, base, secs, now);
    }
    // Floods go on while their blocks drop a flood's worth; otherwise the blocks run out and the flood ends.
    for (const f of [...this.#floods.values()]) {
      const dropped = this.#droppedRate(f, base, now);
      const allowed = this.#rate(snap, base, f, secs);
      const still = f.kind === 'amplification' ? over(dropped.pps, dropped.bps) : over(dropped.pps + allowed.pps, dropped.bps + allowed.bps);
      if (still && d.mitigation !== 'log') this.#renew(f, now);
      else if (!still && now - f.renewedAt >= d.holdFor) this.#endFlood(f, now, 'below the thresholds for holdFor');
    }
  }

  /** What still reaches a flood's destination per second (what its blocks let by). */
  #rate(snap: Snapshot, base: Snapshot, f: Flood, secs: number): { pps: number; bps: number } {
    const t = snap.dst.get(id(f.key));
    const b = base.dst.get(id(f.key));
    if (!t) return { pps: 0, bps: 0 };
    return { pps: Number(t.packets - (b?.packets ?? 0n)) / secs, bps: (Number(t.bytes - (b?.bytes ?? 0n)) * 8) / secs };
  }

  /** What a flood's blocks dropped per second over the window (from the blocks' own counters). */
  #dropped = new Map<string, { at: number; packets: bigint; bytes: bigint }[]>();
  #droppedRate(f: Flood, base: Snapshot, now: number): { pps: number; bps: number } {
    const map = f.kind === 'amplification' ? this.#blockRefl : this.#blockSrc;
    let packets = 0n;
    let bytes = 0n;
    for (const k of f.kind === 'amplification' ? [f.key] : f.sources) {
      const b = map.get(k);
      packets += b?.packets ?? 0n;
      bytes += b?.bytes ?? 0n;
    }
    const hist = this.#dropped.get(id(f.key)) ?? [];
    hist.push({ at: now, packets, bytes });
    while (hist.length > 1 && hist[0]!.at < base.at) hist.shift();
    this.#dropped.set(id(f.key), hist);
    const secs = (now - hist[0]!.at) / 1000;
    if (secs <= 0) return { pps: 0, bps: 0 };
    return { pps: Number(packets - hist[0]!.packets) / secs, bps: (Number(bytes - hist[0]!.bytes) * 8) / secs };
  }

  #startFlood(key: Addr, kind: Flood['kind'], pps: number, bps: number, snap: Snapshot, base: Snapshot, secs: number, now: number): void {
    const d = this.#ddos!;
    const address = text(key);
    const f: Flood = { key, address, kind, since: now, peakPps: Math.round(pps), peakBps: Math.round(bps), sources: [], renewedAt: now };
    this.#floods.set(id(key), f);
    if (d.mitigation === 'block-source') {
      if (kind === 'volumetric') {
        // The heavy senders to anyone right now (the per-source counters are not per destination).
        const heavy = [...snap.src.values()]
          .map((t) => ({ key: t.key, pps: Number(t.packets - (base.src.get(id(t.key))?.packets ?? 0n)) / secs, bps: (Number(t.bytes - (base.src.get(id(t.key))?.bytes ?? 0n)) * 8) / secs }))
          .filter((s) => (d.thresholdPps !== undefined && s.pps >= d.thresholdPps * HEAVY_SHARE) || (d.thresholdBps !== undefined && s.bps >= d.thresholdBps * HEAVY_SHARE))
          .sort((a, b) => b.pps - a.pps)
          .slice(0, MAX_BLOCKED_PER_FLOOD);
        f.sources = heavy.map((s) => s.key);
      }
      this.#renew(f, now);
    }
    this.#opts.record([{
      at: now, type: 'ddos.start', tenant: this.#opts.tenantOf(address), flow: null, rule: null, action: d.mitigation,
      detail: {
        destination: address, kind, pps: Math.round(pps), bps: Math.round(bps), thresholdPps: d.thresholdPps ?? null, thresholdBps: d.thresholdBps ?? null,
        blocked: d.mitigation === 'log' ? null : kind === 'amplification' ? `udp from ports ${d.reflectionPorts.join(',')}` : f.sources.map(text),
      },
    }]);
  }

  /** (Re)writes a flood's blocks with a fresh time to live. */
  #renew(f: Flood, now: number): void {
    const expires = this.#mono() + BigInt(this.#ddos?.holdFor ?? 60_000) * 1_000_000n;
    const map = f.kind === 'amplification' ? this.#blockRefl : this.#blockSrc;
    for (const k of f.kind === 'amplification' ? [f.key] : f.sources) map.set(k, { ...NO_REDIRECT, expires_ns: expires, packets: map.get(k)?.packets ?? 0n, bytes: map.get(k)?.bytes ?? 0n });
    f.renewedAt = now;
    this.#setFlags();
  }

  #endFlood(f: Flood, now: number, why: string): void {
    this.#floods.delete(id(f.key));
    this.#dropped.delete(id(f.key));
    const map = f.kind === 'amplification' ? this.#blockRefl : this.#blockSrc;
    let dropped = 0n;
    for (const k of f.kind === 'amplification' ? [f.key] : f.sources) {
      dropped += map.get(k)?.packets ?? 0n;
      map.delete(k);
    }
    this.#setFlags();
    this.#opts.record([{
      at: now, type: 'ddos.end', tenant: this.#opts.tenantOf(f.address), flow: null, rule: null, action: this.#ddos?.mitigation ?? null,
      detail: { destination: f.address, kind: f.kind, why, seconds: Math.round((now - f.since) / 100) / 10, peakPps: f.peakPps, peakBps: f.peakBps, dropped: Number(dropped) },
    }]);
  }

  #scanRound(snap: Snapshot, now: number): void {
    const s = this.#scan!;
    const base = this.#back(now, s.window);
    for (const [k, t] of snap.src) {
      const pairs = Number(t.scan_pairs - (base?.src.get(k)?.scan_pairs ?? 0n));
      if (pairs < s.threshold) continue;
      const last = this.#flagged.get(k);
      if (last !== undefined && now - last < s.window) continue;
      this.#flagged.set(k, now);
      const address = text(t.key);
      const ttl = BigInt(s.blockFor) * 1_000_000n;
      if (s.action === 'block') this.#blockSrc.set(t.key, { ...NO_REDIRECT, expires_ns: this.#mono() + ttl, packets: 0n });
      // A redirected source stays redirected while it keeps sending (idle_ns): none of its flows is cut over to the real service.
      if (s.action === 'redirect' && this.#scanTarget) this.#blockSrc.set(t.key, { expires_ns: this.#mono() + ttl, packets: 0n, bytes: 0n, idle_ns: ttl, to: this.#scanTarget });
      if (s.action !== 'log') this.#setFlags();
      this.#opts.record([{
        at: now, type: 'portscan.detected', tenant: this.#opts.tenantOf(address), flow: null, rule: null, action: s.action,
        detail: {
          source: address, ports: pairs, windowSeconds: s.window / 1000, threshold: s.threshold,
          blockedForSeconds: s.action === 'block' ? s.blockFor / 1000 : null, redirectedTo: s.action === 'redirect' ? s.redirectTo ?? null : null,
        },
      }]);
    }
    for (const [k, at] of this.#flagged) if (now - at > s.window * 2) this.#flagged.delete(k);
  }

  /** Removes blocks past their expiry (the datapath already ignores them) and clears the lookup bits when none are left. */
  #expire(): void {
    if (!this.#blocksHeld) return; // only this agent adds blocks, and #setFlags saw none
    const mono = this.#mono();
    let changed = false;
    for (const map of [this.#blockSrc, this.#blockRefl]) {
      for (const [k, b] of map.entries()) {
        if (b.expires_ns <= mono) {
          map.delete(k);
          changed = true;
        }
      }
    }
    if (changed) this.#setFlags();
  }

  status(): GuardStatus {
    return {
      floods: [...this.#floods.values()].map((f) => ({
        destination: f.address, tenant: this.#opts.tenantOf(f.address), kind: f.kind, since: new Date(f.since).toISOString(), peakPps: f.peakPps, peakBps: f.peakBps, blockedSources: f.sources.length,
      })),
      blocks: { sources: this.#blockSrc.map.lookupBatchPacked().count, reflection: this.#blockRefl.map.lookupBatchPacked().count },
    };
  }
}
