// RingBufReader: consumes a BPF ring buffer on a worker thread and emits
// 'records' (Buffer[]) batches on the main thread, whose event loop keeps
// running while the worker blocks in ring_buffer__poll.
//
// Ring buffers do not count what they drop: a program that fails
// bpf_ringbuf_reserve() is expected to bump a per-CPU counter, and the reader
// reports its increments as 'lost' events (bigint delta).
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { BpfMap } from './map.js';
import { MapType } from './map.js';
import type { RingBufWorkerData, RingBufWorkerMessage } from './ringbuf-worker.js';

export interface RingBufOptions {
  /** Per-CPU (or plain) array of u64 the program increments when a reserve fails. */
  lostCounter?: { map: BpfMap; index: number };
  /** How long one blocking poll may last; bounds stop() latency. Default 100 ms. */
  pollMs?: number;
  /** Bytes per posted batch. Default 256 KiB. */
  batchBytes?: number;
}

export interface RingBufReaderEvents {
  records: [Buffer[]];
  lost: [bigint];
  error: [Error];
}

/**
 * Compiled, the worker is a .js file next to this one. Run from source
 * under tsx, a worker thread does not inherit tsx's loader hooks, so a small
 * bootstrap registers them in the worker before importing the .ts file.
 */
function startWorker(workerData: RingBufWorkerData): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./ringbuf-worker.js', import.meta.url), { workerData });
  const api = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./ringbuf-worker.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(boot, { eval: true, workerData });
}

export class RingBufReader extends EventEmitter<RingBufReaderEvents> {
  readonly ready: Promise<void>;
  #worker: Worker;
  #stop = new SharedArrayBuffer(4);
  #done: Promise<void>;
  #stopping = false;
  received = 0;
  lost = 0n;
  /** With lostCounter: its value when the reader started (what was lost before; 'lost' reports increments past it). */
  lostAtStart = 0n;

  constructor(map: BpfMap, opts: RingBufOptions = {}) {
    super();
    if (map.type !== MapType.RINGBUF) throw new TypeError(`RingBufReader: map '${map.name}' is type ${map.type}, not a ring buffer (${MapType.RINGBUF})`);
    const pollMs = opts.pollMs ?? 100;
    if (!Number.isInteger(pollMs) || pollMs <= 0) throw new RangeError(`RingBufReader: pollMs must be a positive integer, got ${pollMs}`);
    const batchBytes = opts.batchBytes ?? 256 * 1024;
    if (!Number.isInteger(batchBytes) || batchBytes < 64) throw new RangeError(`RingBufReader: batchBytes must be an integer >= 64, got ${batchBytes}`);
    let lost: RingBufWorkerData['lost'];
    if (opts.lostCounter) {
      const { map: lm, index } = opts.lostCounter;
      if (lm.type !== MapType.PERCPU_ARRAY && lm.type !== MapType.ARRAY)
        throw new TypeError(`RingBufReader: lostCounter.map '${lm.name}' must be an array or per-CPU array`);
      if (lm.keySize !== 4 || lm.valueSize !== 8) throw new TypeError(`RingBufReader: lostCounter.map '${lm.name}' must map u32 -> u64`);
      if (!Number.isInteger(index) || index < 0 || index >= lm.maxEntries)
        throw new RangeError(`RingBufReader: lostCounter.index ${index} is outside 0..${lm.maxEntries - 1}`);
      lost = { fd: lm.fd, key: index, valueBufferSize: lm.valueBufferSize };
    }
    const data: RingBufWorkerData = { mapFd: map.fd, pollMs, batchBytes, stop: this.#stop, lost };
    this.#worker = startWorker(data);
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    this.ready.catch(() => undefined);
    this.#done = new Promise((resolve) => {
      this.#worker.on('message', (m: RingBufWorkerMessage) => {
        switch (m.type) {
          case 'ready':
            this.lostAtStart = BigInt(m.baselineLost);
            readyResolve();
            break;
          case 'records': {
            const all = Buffer.from(m.buf);
            const out: Buffer[] = new Array(m.ends.length);
            let start = 0;
            for (let i = 0; i < m.ends.length; i++) {
              out[i] = all.subarray(start, m.ends[i]);
              start = m.ends[i];
            }
            this.received += out.length;
            this.emit('records', out);
            break;
          }
          case 'lost': {
            const n = BigInt(m.count);
            this.lost += n;
            this.emit('lost', n);
            break;
          }
          case 'error': {
            const err = new Error(`ring buffer reader (map '${map.name}'): ${m.message}`);
            readyReject(err);
            if (this.listenerCount('error') > 0) this.emit('error', err);
            break;
          }
          case 'done':
            break;
        }
      });
      this.#worker.on('error', (e) => {
        readyReject(e);
        if (this.listenerCount('error') > 0) this.emit('error', e);
      });
      this.#worker.on('exit', () => {
        readyReject(new Error('ring buffer worker exited before it was ready'));
        resolve();
      });
    });
  }

  /** Stops polling, delivers what is still in the ring, and waits for the worker to exit. */
  async stop(): Promise<void> {
    if (!this.#stopping) {
      this.#stopping = true;
      Atomics.store(new Int32Array(this.#stop), 0, 1);
    }
    await this.#done;
  }
}
