// Security events: a page from the event store, and a live stream
// (server-sent events) that first replays what the client missed and then
// follows new events as they are recorded (docs/events.md).
import type { FastifyInstance } from 'fastify';
import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import type { SecurityEvent } from '../events/event.js';
import type { EventHub } from '../events/hub.js';
import type { EventQuery, EventStore } from '../events/store.js';
import { ApiError, parseQuery } from './errors.js';

export interface EventsContext {
  events?: { store: EventStore; hub: EventHub };
}

export const MAX_EVENTS_LIMIT = 10_000;
/** A stream client this far behind is disconnected; it resumes from the store with Last-Event-ID. */
export const STREAM_MAX_BUFFERED = 32 * 1024 * 1024;
const HEARTBEAT_MS = 15_000;
const REPLAY_BATCH = 1000;

const filters = {
  type: z.string().min(1).max(100).optional(),
  tenant: z.string().min(1).max(100).optional(),
};
const after = z.coerce.number().int().min(0);
const listQuery = z.strictObject({ ...filters, after: after.optional(), limit: z.coerce.number().int().min(1).max(MAX_EVENTS_LIMIT).default(100) });
const streamQuery = z.strictObject({ ...filters, after: after.optional() });

function events(ctx: EventsContext): { store: EventStore; hub: EventHub } {
  if (!ctx.events) throw new ApiError('NOT_FOUND', 'this agent records no security events');
  return ctx.events;
}

const matches = (q: { type?: string; tenant?: string }) => (e: SecurityEvent): boolean =>
  (q.type === undefined || e.type === q.type) && (q.tenant === undefined || e.tenant === q.tenant);

function writeEvents(res: ServerResponse, list: readonly SecurityEvent[], json: readonly string[]): void {
  let text = '';
  for (let i = 0; i < list.length; i++) text += `id: ${list[i]!.id}\ndata: ${json[i]}\n\n`;
  if (text) res.write(text);
}

export function eventRoutes(app: FastifyInstance, ctx: EventsContext): void {
  app.get('/v1/security/events', async (req) => {
    const q = parseQuery(listQuery, req.query);
    const { store } = events(ctx);
    return { events: store.list(q), lastId: store.lastId() };
  });

  app.get('/v1/security/events/stream', async (req, reply) => {
    const q = parseQuery(streamQuery, req.query);
    const { store, hub } = events(ctx);
    const header = req.headers['last-event-id'];
    let from = q.after ?? store.lastId();
    if (header !== undefined) {
      const n = Number(header);
      if (!Number.isInteger(n) || n < 0) throw new ApiError('BAD_REQUEST', `Last-Event-ID: must be an event id, got "${String(header)}"`, 'Last-Event-ID');
      from = n;
    }
    const want = matches(q);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(': tollgate security events\n\n');

    // Subscribe first, replay second: events recorded during the replay wait in `held`.
    let held: Array<[SecurityEvent, string]> | undefined = [];
    let last = from;
    const send = (list: readonly SecurityEvent[], json: readonly string[] = list.map((e) => JSON.stringify(e))): void => {
      const keep = list.flatMap((e, i) => (e.id > last && want(e) ? [i] : []));
      if (keep.length === 0) return;
      writeEvents(res, keep.map((i) => list[i]!), keep.map((i) => json[i]!));
      last = list[list.length - 1]!.id;
      if (res.writableLength > STREAM_MAX_BUFFERED) {
        res.end(': too far behind; reconnect with Last-Event-ID to resume from the store\n\n');
        close();
      }
    };
    const unsubscribe = hub.subscribe((list, json) => {
      if (held) list.forEach((e, i) => held!.push([e, json[i]!]));
      else send(list, json);
    });
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
    heartbeat.unref();
    const close = (): void => {
      clearInterval(heartbeat);
      unsubscribe();
    };
    res.on('close', close);

    const replay: EventQuery = { after: from, limit: REPLAY_BATCH, type: q.type, tenant: q.tenant };
    for (;;) {
      const batch = store.list(replay);
      if (batch.length === 0) break;
      send(batch);
      replay.after = batch[batch.length - 1]!.id;
      if (res.writableEnded) return;
      // let the socket drain between batches of a long replay
      if (res.writableLength > STREAM_MAX_BUFFERED / 2) {
        await new Promise((r) => {
          res.once('drain', r);
          res.once('close', r);
        });
      }
      if (res.destroyed) return;
    }
    const rest = held;
    held = undefined;
    send(rest.map(([e]) => e), rest.map(([, j]) => j));
  });
}
