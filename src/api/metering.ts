// Metering endpoints: usage from the ledger, immediate export, tenants,
// classes, status.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { LedgerError, USAGE_GROUPINGS } from '../store/index.js';
import { ApiError, parseQuery } from './errors.js';
import type { AgentContext } from './server.js';

const usageQuery = z.object({
  tenant: z.string().min(1).optional(),
  class: z.string().min(1).optional(),
  by: z.enum(USAGE_GROUPINGS).optional(),
  since: z.string().optional(),
  until: z.string().optional(),
}).strict();

/** Parses an ISO time or a relative age like 15m / 2h / 7d (meaning "that long ago"). */
export function parseTime(value: string, field: string, now = Date.now()): Date {
  const rel = /^(\d+)(s|m|h|d)$/.exec(value);
  if (rel) {
    const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[rel[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(now - Number(rel[1]) * unit);
  }
  const t = Date.parse(value);
  if (Number.isNaN(t)) {
    throw new ApiError('BAD_REQUEST', `${field}: "${value}" is neither an ISO 8601 time nor an age like 15m, 2h, 7d`, field);
  }
  return new Date(t);
}

/** Runs a ledger query; the ledger's verdict on bad input becomes an API error naming the query field. */
function query<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof LedgerError && (err.code === 'UNKNOWN_TENANT' || err.code === 'UNKNOWN_CLASS')) throw new ApiError('NOT_FOUND', err.message, err.field);
    if (err instanceof LedgerError && err.code === 'INVALID_INPUT') throw new ApiError('BAD_REQUEST', err.message, err.field);
    throw err;
  }
}

export function meteringRoutes(app: FastifyInstance, ctx: AgentContext): void {
  app.get('/v1/usage', async (req) => {
    const q = parseQuery(usageQuery, req.query);
    const by = q.by ?? 'tenant-class';
    const since = q.since ? parseTime(q.since, 'since') : undefined;
    const until = q.until ? parseTime(q.until, 'until') : undefined;
    const rows = query(() => ctx.ledger.usage({ tenant: q.tenant, class: q.class, since, until, by }));
    return {
      by,
      rows: rows.map((r) => ({ ...r, first: r.first?.toISOString() ?? null, last: r.last?.toISOString() ?? null })),
    };
  });

  app.post('/v1/flush', async () => {
    try {
      const r = await ctx.exporter.exportNow();
      return { at: r.at.toISOString(), rows: r.rows, packets: r.packets, bytes: r.bytes, durationMs: r.durationMs };
    } catch (err) {
      throw new ApiError('EXPORT_FAILED', `export failed: ${(err as Error).message}`);
    }
  });

  app.get('/v1/tenants', async () => ({
    tenants: ctx.ledger.tenants().map((t) => ({ id: t.id, name: t.name })),
  }));

  app.get('/v1/classes', async () => ({
    classes: ctx.ledger.classes().map((c) => ({ id: c.id, name: c.name })),
  }));

  app.get('/v1/status', async () => ctx.status());
}
