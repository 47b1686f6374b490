#!/usr/bin/env node
// UDP and TCP senders and receivers for the lab's traffic drivers
// (lab/traffic.ts): plain Node, no dependencies, run inside a netns with
// `ip netns exec`. Each prints one JSON line with what it did.
//
//   udp-recv --port P [--expect N] [--timeout-ms T] [--linger-ms L]
//        binds [::]:P (v4 and v6), prints "ready", counts datagrams; exits
//        printing {"packets":..,"bytes":..} once N arrived, or L ms after its
//        stdin closes, or after T ms at the latest.
//   udp-send --to ADDR --port P --sizes 64,512 --count N [--burst B] [--sport S]
//        sends N datagrams of each payload size, yielding to the event loop
//        every B datagrams so neither the veth backlog nor the receiver's
//        socket buffer overflows; prints {"packets":..,"bytes":..} of what the
//        kernel accepted.
//   tcp-recv --port P [--timeout-ms T]
//        listens on [::]:P, prints "ready", accepts one connection, reads to
//        EOF, answers the count on the same connection and prints {"bytes":..}.
//   tcp-send --to ADDR --port P --bytes N [--timeout-ms T]
//        writes exactly N bytes, half-closes, waits for the receiver's count
//        and prints {"bytes":N,"received":..,"seconds":..}. Unlike iperf3 -n,
//        whose server may stop reading before the last block, every byte
//        written has been read by the peer when this returns.
//   tcp-sink --port P --seconds S [--sample-ms M]
//        listens on [::]:P, prints "ready", accepts one connection and reads
//        whatever arrives for S seconds from the first byte (or until EOF),
//        then prints {"bytes":..,"samples":[[ms,bytes],..]}: payload read so
//        far every M ms (default 250). For transfers a quota cuts or throttles.
//   tcp-source --to ADDR --port P --bytes N --seconds S
//        writes up to N bytes, and stops after S seconds whether or not they
//        went out (a blocked connection never drains); prints {"written":..}.
//   http-get --to ADDR --port P --count N [--path /health] [--timeout-ms T]
//        N GETs one after the other, each on a new connection; prints
//        {"ok":..,"failed":..,"errors":{message:count},"ms":{"p50":..,"p99":..,"max":..}}.
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import { isIPv6 } from 'node:net';

function fail(msg) {
  process.stderr.write(`driver: ${msg}\n`);
  process.exit(2);
}

function intArg(opts, name, dflt, min, max) {
  const v = opts[name];
  if (v === undefined) {
    if (dflt === undefined) fail(`--${name}: required`);
    return dflt;
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) fail(`--${name}: must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

const [mode, ...rest] = process.argv.slice(2);
const opts = {};
for (let i = 0; i < rest.length; i += 2) {
  if (!rest[i]?.startsWith('--') || rest[i + 1] === undefined) fail(`bad argument ${JSON.stringify(rest[i])}`);
  opts[rest[i].slice(2)] = rest[i + 1];
}

if (mode === 'udp-recv') {
  const port = intArg(opts, 'port', undefined, 1, 65535);
  const expect = intArg(opts, 'expect', 0, 0, 1e9);
  const timeoutMs = intArg(opts, 'timeout-ms', 30_000, 1, 600_000);
  const lingerMs = intArg(opts, 'linger-ms', 300, 0, 60_000);
  const sock = dgram.createSocket({ type: 'udp6', ipv6Only: false, recvBufferSize: 4 * 1024 * 1024 });
  let packets = 0;
  let bytes = 0;
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    process.stdout.write(JSON.stringify({ packets, bytes }) + '\n', () => process.exit(0));
  };
  sock.on('message', (msg) => {
    packets++;
    bytes += msg.length;
    if (expect > 0 && packets >= expect) finish();
  });
  sock.on('error', (e) => fail(`udp-recv: ${e.message}`));
  sock.bind(port, '::', () => process.stdout.write('ready\n'));
  setTimeout(finish, timeoutMs).unref();
  process.stdin.on('end', () => setTimeout(finish, lingerMs));
  process.stdin.on('error', () => setTimeout(finish, lingerMs));
  process.stdin.resume();
} else if (mode === 'udp-send') {
  const to = opts.to;
  if (!to) fail('--to: required');
  const port = intArg(opts, 'port', undefined, 1, 65535);
  const count = intArg(opts, 'count', undefined, 0, 10_000_000);
  const burst = intArg(opts, 'burst', 32, 1, 100_000);
  const sizes = String(opts.sizes ?? '').split(',').filter(Boolean).map(Number);
  if (sizes.length === 0 || sizes.some((s) => !Number.isInteger(s) || s < 0 || s > 65507)) {
    fail(`--sizes: must be a comma-separated list of payload sizes 0..65507, got ${JSON.stringify(opts.sizes)}`);
  }
  const sock = dgram.createSocket(isIPv6(to) ? 'udp6' : 'udp4');
  if (opts.sport !== undefined) {
    const sport = intArg(opts, 'sport', undefined, 1, 65535);
    await new Promise((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(sport, resolve);
    }).catch((e) => fail(`--sport ${sport}: ${e.message}`));
  }
  const send = (buf) =>
    new Promise((resolve, reject) => sock.send(buf, port, to, (err) => (err ? reject(err) : resolve())));
  let packets = 0;
  let bytes = 0;
  try {
    for (const size of sizes) {
      const buf = Buffer.alloc(size, 0x55);
      for (let i = 0; i < count; i++) {
        await send(buf);
        packets++;
        bytes += size;
        if (packets % burst === 0) await new Promise((r) => setTimeout(r, 1));
      }
    }
  } catch (e) {
    fail(`udp-send: after ${packets} datagrams: ${e.message}`);
  }
  sock.close();
  process.stdout.write(JSON.stringify({ packets, bytes }) + '\n');
} else if (mode === 'tcp-recv') {
  const port = intArg(opts, 'port', undefined, 1, 65535);
  const timeoutMs = intArg(opts, 'timeout-ms', 60_000, 1, 600_000);
  setTimeout(() => fail(`tcp-recv: no complete transfer within ${timeoutMs} ms`), timeoutMs).unref();
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    server.close();
    let bytes = 0;
    sock.on('data', (c) => {
      bytes += c.length;
    });
    sock.on('end', () => {
      sock.end(JSON.stringify({ bytes }) + '\n', () => {
        process.stdout.write(JSON.stringify({ bytes }) + '\n', () => process.exit(0));
      });
    });
    sock.on('error', (e) => fail(`tcp-recv: ${e.message}`));
  });
  server.on('error', (e) => fail(`tcp-recv: ${e.message}`));
  server.listen({ port, host: '::', ipv6Only: false }, () => process.stdout.write('ready\n'));
} else if (mode === 'tcp-send') {
  const to = opts.to;
  if (!to) fail('--to: required');
  const port = intArg(opts, 'port', undefined, 1, 65535);
  const total = intArg(opts, 'bytes', undefined, 0, 64 * 1024 ** 3);
  const timeoutMs = intArg(opts, 'timeout-ms', 60_000, 1, 600_000);
  setTimeout(() => fail(`tcp-send: not done within ${timeoutMs} ms`), timeoutMs).unref();
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  const start = process.hrtime.bigint();
  const sock = net.connect({ host: to, port, allowHalfOpen: true });
  let reply = '';
  sock.setEncoding('utf8');
  sock.on('data', (d) => (reply += d));
  sock.on('error', (e) => fail(`tcp-send: ${e.message}`));
  sock.on('connect', () => {
    let left = total;
    const pump = () => {
      while (left > 0) {
        const k = Math.min(left, chunk.length);
        left -= k;
        if (!sock.write(k === chunk.length ? chunk : chunk.subarray(0, k))) return void sock.once('drain', pump);
      }
      sock.end();
    };
    pump();
  });
  sock.on('end', () => {
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    let received;
    try {
      received = JSON.parse(reply).bytes;
    } catch {
      fail(`tcp-send: bad reply from receiver: ${JSON.stringify(reply)}`);
    }
    process.stdout.write(JSON.stringify({ bytes: total, received, seconds }) + '\n', () => process.exit(0));
  });
} else if (mode === 'tcp-sink') {
  const port = intArg(opts, 'port', undefined, 1, 65535);
  const seconds = intArg(opts, 'seconds', undefined, 1, 600);
  const sampleMs = intArg(opts, 'sample-ms', 250, 10, 10_000);
  // Bounded even when nobody connects.
  setTimeout(() => fail(`tcp-sink: no connection within ${seconds + 30} s`), (seconds + 30) * 1000).unref();
  const server = net.createServer((sock) => {
    server.close();
    let bytes = 0;
    let start;
    const samples = [];
    let timer;
    let finished = false;
    const done = () => {
      if (finished) return;
      finished = true;
      clearInterval(timer);
      samples.push([Number(process.hrtime.bigint() - (start ?? process.hrtime.bigint())) / 1e6, bytes]);
      sock.destroy();
      process.stdout.write(JSON.stringify({ bytes, samples }) + '\n', () => process.exit(0));
    };
    sock.on('data', (c) => {
      if (start === undefined) {
        start = process.hrtime.bigint();
        timer = setInterval(() => samples.push([Number(process.hrtime.bigint() - start) / 1e6, bytes]), sampleMs);
        setTimeout(done, seconds * 1000);
      }
      bytes += c.length;
    });
    sock.on('end', done);
    sock.on('error', () => undefined); // the source gives up by resetting: what was read counts
  });
  server.on('error', (e) => fail(`tcp-sink: ${e.message}`));
  server.listen({ port, host: '::', ipv6Only: false }, () => process.stdout.write('ready\n'));
} else if (mode === 'tcp-source') {
  const to = opts.to;
  if (!to) fail('--to: required');
  const port = intArg(opts, 'port', undefined, 1, 65535);
  const total = intArg(opts, 'bytes', undefined, 0, 64 * 1024 ** 3);
  const seconds = intArg(opts, 'seconds', undefined, 1, 600);
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  const sock = net.connect({ host: to, port });
  let written = 0;
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    sock.destroy();
    process.stdout.write(JSON.stringify({ written }) + '\n', () => process.exit(0));
  };
  setTimeout(finish, seconds * 1000);
  sock.on('error', () => undefined);
  sock.on('close', finish); // the sink hung up
  sock.on('connect', () => {
    const pump = () => {
      while (written < total) {
        const k = Math.min(total - written, chunk.length);
        written += k;
        if (!sock.write(k === chunk.length ? chunk : chunk.subarray(0, k))) return void sock.once('drain', pump);
      }
      sock.end();
    };
    pump();
  });
} else if (mode === 'http-get') {
  const to = opts.to;
  if (!to) fail('--to: required');
  const port = intArg(opts, 'port', undefined, 1, 65535);
  const count = intArg(opts, 'count', undefined, 1, 100_000);
  const timeoutMs = intArg(opts, 'timeout-ms', 5000, 1, 600_000);
  const path = opts.path ?? '/health';
  const host = isIPv6(to) ? `[${to}]` : to;
  const get = () => new Promise((resolve) => {
    const t0 = performance.now();
    const req = http.get(`http://${host}:${port}${path}`, { agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? { ms: performance.now() - t0 } : { error: `HTTP ${res.statusCode}` }));
      res.on('error', (e) => resolve({ error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ error: e.message }));
  });
  let ok = 0;
  const errors = {};
  const ms = [];
  for (let i = 0; i < count; i++) {
    const r = await get();
    if (r.error) errors[r.error] = (errors[r.error] ?? 0) + 1;
    else {
      ok++;
      ms.push(r.ms);
    }
  }
  ms.sort((a, b) => a - b);
  const q = (f) => (ms.length ? Math.round(ms[Math.min(ms.length - 1, Math.floor(ms.length * f))] * 10) / 10 : null);
  process.stdout.write(JSON.stringify({ ok, failed: count - ok, errors, ms: { p50: q(0.5), p99: q(0.99), max: q(1) } }) + '\n');
} else {
  fail('usage: driver.mjs udp-recv|udp-send|tcp-recv|tcp-send|tcp-sink|tcp-source|http-get --port P ...');
}
