#!/usr/bin/env node
// The lab's tenant HTTP service: plain Node, no dependencies, so it starts in
// any network namespace and cgroup in a few tens of milliseconds.
//
//   GET  /health     -> {"ok":true,"name":..,"pid":..,"cgroup":..}
//   GET  /bytes/N    -> exactly N bytes of body (0 <= N <= 1 GiB), content-length set
//   POST /sink       -> reads and counts the body, answers {"bytes":N}
//   GET  /stats      -> request and byte counters since start
//
// usage: node lab/service.mjs [--port 8080] [--host ::] [--name tenant-1]
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';

const MAX_BYTES = 1024 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x78);

function parseArgs(argv) {
  const opts = { port: 8080, host: '::', name: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--port') {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 65535) fail(`--port: must be an integer from 1 to 65535, got ${JSON.stringify(v)}`);
      opts.port = n;
      i++;
    } else if (a === '--host') {
      if (!v) fail('--host: missing value');
      opts.host = v;
      i++;
    } else if (a === '--name') {
      if (v === undefined) fail('--name: missing value');
      opts.name = v;
      i++;
    } else {
      fail(`unknown argument ${JSON.stringify(a)}`);
    }
  }
  return opts;
}

function fail(msg) {
  process.stderr.write(`service: ${msg}\n`);
  process.exit(2);
}

function ownCgroup() {
  try {
    const line = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'));
    return line ? line.slice(3) : null;
  } catch {
    return null;
  }
}

const opts = parseArgs(process.argv.slice(2));
const stats = { requests: 0, bytesServed: 0, bytesSunk: 0, startedAt: new Date().toISOString() };

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendBytes(res, n) {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
  let left = n;
  const pump = () => {
    while (left > 0) {
      const k = Math.min(left, CHUNK.length);
      left -= k;
      stats.bytesServed += k;
      if (!res.write(k === CHUNK.length ? CHUNK : CHUNK.subarray(0, k))) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

const server = createServer((req, res) => {
  stats.requests++;
  const url = new URL(req.url ?? '/', 'http://lab');
  const m = /^\/bytes\/(\d{1,10})$/.exec(url.pathname);
  if (req.method === 'GET' && m) {
    const n = Number(m[1]);
    if (n > MAX_BYTES) return json(res, 400, { error: `N: must be at most ${MAX_BYTES}, got ${n}` });
    return sendBytes(res, n);
  }
  if (req.method === 'GET' && url.pathname.startsWith('/bytes/')) {
    return json(res, 400, { error: 'N: must be a non-negative integer number of bytes' });
  }
  if (req.method === 'GET' && url.pathname === '/health') {
    return json(res, 200, { ok: true, name: opts.name, pid: process.pid, cgroup: ownCgroup() });
  }
  if (req.method === 'GET' && url.pathname === '/stats') {
    return json(res, 200, stats);
  }
  if (req.method === 'POST' && url.pathname === '/sink') {
    let bytes = 0;
    req.on('data', (c) => {
      bytes += c.length;
    });
    req.on('end', () => {
      stats.bytesSunk += bytes;
      json(res, 200, { bytes });
    });
    req.on('error', () => res.destroy());
    return;
  }
  json(res, 404, { error: `no route ${req.method} ${url.pathname}` });
});

server.on('error', (err) => fail(`listen ${opts.host}:${opts.port}: ${err.message}`));
// '::' without ipv6Only accepts IPv4 too (as v4-mapped addresses).
server.listen({ port: opts.port, host: opts.host, ipv6Only: false }, () => {
  process.stdout.write(`service ${opts.name} listening on [${opts.host}]:${opts.port} pid ${process.pid}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
