// The event endpoints over a real event store, through a real unix socket
// and the CLI's stream client: pages, filters, errors that name the field,
// and the live stream's replay (Last-Event-ID) followed by live events.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { FastifyInstance } from 'fastify';
import { EventRecorder } from '../events/recorder.js';
import type { NewEvent, SecurityEvent } from '../events/event.js';
import { buildApi, listenUnix, type AgentContext } from './server.js';
import { AgentError, callAgent, streamAgent } from './client.js';

const ev = (type: string, tenant: string | null, n: number): NewEvent => ({
  at: Date.UTC(2026, 11, 7, 2, 0, n), type, tenant, rule: 'r', action: 'log', detail: { n },
  flow: { protocol: 'udp', src: '198.18.0.1', sport: 1000 + n, dst: '198.18.1.1', dport: 53 },
});

describe('security event API', () => {
  let dir: string;
  let recorder: EventRecorder;
  let app: FastifyInstance;
  let socket: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tg-evapi-'));
    recorder = new EventRecorder({ db: join(dir, 'events.db'), audit: join(dir, 'audit.jsonl') });
    const ctx = { registry: new Registry(), status: () => ({}), reload: async () => ({}), events: { store: recorder.store, hub: recorder.hub } } as unknown as AgentContext;
    app = buildApi(ctx);
    socket = join(dir, 'api.sock');
    await listenUnix(app, socket);
    recorder.record([ev('firewall.log', 'alpha', 1), ev('firewall.log', 'beta', 2), ev('events.lost', null, 3)]);
  });
  after(async () => {
    await app.close();
    recorder.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const page = (q: string) => callAgent<{ events: SecurityEvent[]; lastId: number }>(socket, 'GET', `/v1/security/events${q}`);

  test('pages: the newest by default, the oldest after an id, filtered by type and tenant', async () => {
    assert.deepEqual((await page('')).events.map((e) => e.id), [1, 2, 3]);
    assert.deepEqual((await page('?limit=2')).events.map((e) => e.id), [2, 3]);
    assert.deepEqual((await page('?after=1&limit=1')).events.map((e) => e.id), [2]);
    assert.deepEqual((await page('?type=firewall.log')).events.map((e) => e.id), [1, 2]);
    assert.deepEqual((await page('?tenant=beta')).events.map((e) => e.tenant), ['beta']);
    const one = (await page('?after=0&limit=1')).events[0]!;
    assert.deepEqual(one, {
      id: 1, at: '2026-12-07T02:00:01.000Z', type: 'firewall.log', tenant: 'alpha', rule: 'r', action: 'log', detail: { n: 1 },
      flow: { protocol: 'udp', src: '198.18.0.1', sport: 1001, dst: '198.18.1.1', dport: 53 },
    });
    assert.equal((await page('')).lastId, 3);
  });

  test('bad queries are refused, naming the field', async () => {
    for (const [q, field] of [['?limit=0', 'limit'], ['?limit=x', 'limit'], ['?after=-1', 'after'], ['?since=1', 'since']] as const) {
      await assert.rejects(page(q), (err: unknown) => err instanceof AgentError && err.status === 400 && err.field === field, q);
    }
    await assert.rejects(streamAgent(socket, '/v1/security/events/stream', () => undefined, { lastEventId: 'abc' }),
      (err: unknown) => err instanceof AgentError && err.status === 400 && err.field === 'Last-Event-ID');
  });

  test('the stream replays what the client missed (Last-Event-ID), then follows live events, filtered', async () => {
    const ctl = new AbortController();
    const got: Array<{ id: string | undefined; e: SecurityEvent }> = [];
    const gotLogs: number[] = [];
    let wake: () => void = () => undefined;
    const all = streamAgent(socket, '/v1/security/events/stream', (e, id) => {
      got.push({ id, e: e as SecurityEvent });
      wake();
    }, { lastEventId: '1', signal: ctl.signal });
    const logs = streamAgent(socket, '/v1/security/events/stream?type=firewall.log&after=0', (e) => gotLogs.push((e as SecurityEvent).id), { signal: ctl.signal });
    const until = async (n: number) => {
      const deadline = Date.now() + 5000;
      while (got.length < n && Date.now() < deadline) await new Promise<void>((r) => ((wake = r), setTimeout(r, 50)));
    };
    await until(2);
    assert.deepEqual(got.map((g) => g.e.id), [2, 3], 'the replay after id 1');
    recorder.record([ev('firewall.log', 'alpha', 4), ev('events.lost', null, 5)]);
    await until(4);
    assert.deepEqual(got.map((g) => g.e.id), [2, 3, 4, 5], 'then live, in order, each once');
    assert.deepEqual(got.map((g) => g.id), ['2', '3', '4', '5'], 'each with its id for resuming');
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(gotLogs, [1, 2, 4], 'a filtered stream from the start');
    ctl.abort();
    assert.equal(await all, '5', 'the client ends with the id to resume from');
    await logs;
  });

  test('without a position the stream starts at the newest event', async () => {
    const ctl = new AbortController();
    const got: number[] = [];
    const s = streamAgent(socket, '/v1/security/events/stream', (e) => got.push((e as SecurityEvent).id), { signal: ctl.signal });
    await new Promise((r) => setTimeout(r, 200));
    const [rec] = recorder.record([ev('firewall.log', 'alpha', 6)]);
    const deadline = Date.now() + 5000;
    while (got.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(got, [rec!.id]);
    ctl.abort();
    await s;
  });
});

test('an agent without an event store answers 404', async () => {
  const app = buildApi({ registry: new Registry(), status: () => ({}), reload: async () => ({}) } as unknown as AgentContext);
  const r = await app.inject({ method: 'GET', url: '/v1/security/events' });
  assert.equal(r.statusCode, 404);
  assert.match(r.body, /records no security events/);
  await app.close();
});
