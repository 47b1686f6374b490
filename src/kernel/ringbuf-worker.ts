// Worker side of RingBufReader: blocks in ring_buffer__poll so the main event
// loop never does, copies each record into a transferable batch and posts it.
// The sample callback is registered here because koffi runs a registered
// callback on the thread that registered it; stop is a shared flag checked
// after every poll timeout.
import { parentPort, workerData } from 'node:worker_threads';
import koffi from 'koffi';
import { libbpf, type Ptr } from './libbpf.js';

export interface RingBufWorkerData {
  mapFd: number;
  pollMs: number;
  batchBytes: number;
  stop: SharedArrayBuffer;
  lost?: { fd: number; key: number; valueBufferSize: number };
}

export type RingBufWorkerMessage =
  | { type: 'ready'; baselineLost: string }
  | { type: 'records'; buf: ArrayBuffer; ends: Uint32Array }
  | { type: 'lost'; count: string }
  | { type: 'error'; message: string }
  | { type: 'done' };

const EINTR = 4;

function run(): void {
  const port = parentPort;
  if (!port) throw new Error('ringbuf-worker must run as a worker thread');
  const d = workerData as RingBufWorkerData;
  const stop = new Int32Array(d.stop);
  const post = (m: RingBufWorkerMessage, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer ?? []);
  const l = libbpf();

  let pool = new Uint8Array(d.batchBytes);
  let used = 0;
  let ends: number[] = [];
  const flush = () => {
    if (ends.length === 0) return;
    const buf = pool.buffer.slice(0, used);
    post({ type: 'records', buf, ends: Uint32Array.from(ends) }, [buf]);
    pool = new Uint8Array(d.batchBytes);
    used = 0;
    ends = [];
  };

  const lostKey = Buffer.alloc(4);
  const lostVal = d.lost ? Buffer.alloc(d.lost.valueBufferSize) : Buffer.alloc(0);
  const readLost = (): bigint => {
    if (!d.lost) return 0n;
    lostKey.writeUInt32LE(d.lost.key, 0);
    const r = l.bpf_map_lookup_elem(d.lost.fd, lostKey, lostVal) as number;
    if (r < 0) throw new Error(`reading lost counter: bpf_map_lookup_elem returned ${r}`);
    let sum = 0n;
    for (let o = 0; o + 8 <= lostVal.length; o += 8) sum += lostVal.readBigUInt64LE(o);
    return sum;
  };
  let lastLost = readLost();
  const checkLost = () => {
    const now = readLost();
    if (now > lastLost) post({ type: 'lost', count: String(now - lastLost) });
    lastLost = now;
  };

  const cb = koffi.register(
    (_ctx: Ptr, data: Ptr, size: number | bigint): number => {
      const n = Number(size);
      if (used + n > pool.length) {
        flush();
        if (n > pool.length) pool = new Uint8Array(n);
      }
      pool.set(new Uint8Array(koffi.view(data, n)), used);
      used += n;
      ends.push(used);
      return 0;
    },
    'ring_buffer_sample_fn *',
  );
  let rb: Ptr | null = null;
  try {
    rb = l.ring_buffer__new(d.mapFd, cb, null, null) as Ptr | null;
    if (rb === null) throw new Error(`ring_buffer__new(fd ${d.mapFd}) failed: errno ${koffi.errno()}`);
    post({ type: 'ready', baselineLost: String(lastLost) });
    while (Atomics.load(stop, 0) === 0) {
      const r = l.ring_buffer__poll(rb, d.pollMs) as number;
      if (r < 0 && r !== -EINTR) throw new Error(`ring_buffer__poll failed: ${r}`);
      flush();
      checkLost();
    }
    // drain what arrived between the last poll and stop()
    const r = l.ring_buffer__consume(rb) as number;
    if (r < 0 && r !== -EINTR) throw new Error(`ring_buffer__consume failed: ${r}`);
    flush();
    checkLost();
  } catch (e) {
    post({ type: 'error', message: (e as Error).message });
  } finally {
    if (rb !== null) l.ring_buffer__free(rb);
    koffi.unregister(cb);
    post({ type: 'done' });
  }
}

run();
