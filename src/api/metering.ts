// Metering endpoints: usage from the ledger, immediate export, tenants, status.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ApiError } from './errors.js';
import type { AgentContext } from './server.js';

const usageQuery = z.object({
  tenant: z.string().min(1).optional(),
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

export function meteringRoutes(app: FastifyInstance, ctx: AgentContext): void {
  app.get('/v1/usage', async (req) => {
    const parsed = usageQuery.safeParse(req.query);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(',') : 'query');
      throw new ApiError('BAD_REQUEST', `${field}: ${issue.message}`, field);
    }
    const q = parsed.data;
    const since = q.since ? parseTime(q.since, 'since') : undefined;
    const until = q.until ? parseTime(q.until, 'until') : undefined;
    if (q.tenant && !ctx.ledger.tenants().some((t) => t.name === q.tenant)) {
      throw new ApiError('NOT_FOUND', `tenant: no tenant named "${q.tenant}"`, 'tenant');
    }
    const rows = ctx.ledger.usage({ tenant: q.tenant, since, until });
    return {
      rows: rows.map((r) => ({
        tenant: r.tenant,
        direction: r.direction,
        packets: r.packets,
        bytes: r.bytes,
        first: r.first?.toISOString() ?? null,
        last: r.last?.toISOString() ?? null,
      })),
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

  app.get('/v1/status', async () => ctx.status());
}
