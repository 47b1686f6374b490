// The agent's HTTP API: a unix socket for the CLI (reachable from the root
// namespace even when the agent meters a lab namespace) and optionally a
// loopback TCP port for Prometheus. One plugin per capability.
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Ledger } from '../store/index.js';
import type { Exporter } from '../metering/exporter.js';
import { stringifyExact } from '../json.js';
import { ApiError } from './errors.js';
import { meteringRoutes } from './metering.js';
import { flowRoutes, type FlowsContext } from './flows.js';
import { billingRoutes, type BillingContext } from './billing.js';
import { requireTokens, type Tokens } from './auth.js';
import { securityRoutes, type SecurityContext } from './security.js';
import { eventRoutes, type EventsContext } from './events.js';
import { isolationRoutes, type IsolationContext } from './isolation.js';

export interface AgentContext extends FlowsContext, BillingContext, SecurityContext, EventsContext, IsolationContext {
  ledger: Ledger;
  exporter: Exporter;
  /** Re-reads and applies the policy file; rejects (changing nothing) when it is bad. */
  reload(): Promise<unknown>;
  registry: Registry;
  status(): unknown;
}

/** tokens: require them on this listener (see auth.ts); absent, every caller is the operator. */
export function buildApi(ctx: AgentContext, opts: { tokens?: Tokens } = {}): FastifyInstance {
  const app = Fastify({ logger: false });
  app.setReplySerializer((payload) => stringifyExact(payload));
  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof ApiError) return reply.status(err.status).send(err.toJSON());
    const e = err as { statusCode?: number; message: string };
    if (e.statusCode && e.statusCode < 500) {
      return reply.status(e.statusCode).send(new ApiError('BAD_REQUEST', e.message).toJSON());
    }
    return reply.status(500).send(new ApiError('INTERNAL', e.message).toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    reply.status(404).send(new ApiError('NOT_FOUND', `no route ${req.method} ${req.url}`).toJSON());
  });
  if (opts.tokens) requireTokens(app, opts.tokens);
  app.get('/v1/health', async () => ({ ok: true }));
  app.get('/metrics', async (_req, reply) => {
    reply.type(ctx.registry.contentType);
    reply.serializer((p: unknown) => String(p));
    return ctx.registry.metrics();
  });
  app.post('/v1/reload', async () => {
    try {
      return await ctx.reload();
    } catch (err) {
      throw new ApiError('BAD_REQUEST', `policy not applied, nothing changed: ${(err as Error).message}`, 'policy');
    }
  });
  meteringRoutes(app, ctx);
  flowRoutes(app, ctx);
  billingRoutes(app, ctx);
  securityRoutes(app, ctx);
  eventRoutes(app, ctx);
  isolationRoutes(app, ctx);
  return app;
}

export async function listenUnix(app: FastifyInstance, path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  if (existsSync(path)) unlinkSync(path); // a stale socket from a crashed agent
  await app.listen({ path });
  chmodSync(path, 0o660);
}
