// Flow analytics endpoints: top talkers over a window from the flow store
// (docs/flows.md). Flows are analytics: nothing here touches the ledger's
// usage rows; the ledger only lends tenant and class names.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { TOP_ORDERS, type FlowTop, type TopQuery } from '../flows/index.js';
import { PROTOCOLS } from '../policy/index.js';
import { ApiError, parseQuery } from './errors.js';
import { parseTime } from './metering.js';
import type { AgentContext } from './server.js';

/** What the flow routes need; absent while the agent records no flows. */
export interface FlowsContext {
  flows?: { top(q: TopQuery): FlowTop };
}

export const DEFAULT_TOP_WINDOW = '5m';
export const MAX_TOP_LIMIT = 1000;

const topQuery = z.object({
  tenant: z.string().min(1).optional(),
  by: z.enum(TOP_ORDERS).default('bytes'),
  since: z.string().default(DEFAULT_TOP_WINDOW),
  until: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(MAX_TOP_LIMIT).default(20),
}).strict();

const protocolNames = new Map<number, string>(Object.entries(PROTOCOLS).map(([name, n]) => [n, name]));

export function flowRoutes(app: FastifyInstance, ctx: AgentContext): void {
  app.get('/v1/flows/top', async (req) => {
    const q = parseQuery(topQuery, req.query);
    if (!ctx.flows) throw new ApiError('NOT_FOUND', 'this agent records no flows (metering.flows.enabled is off)');
    const tenants = new Map(ctx.ledger.tenants().map((t) => [t.id, t.name]));
    const classes = new Map(ctx.ledger.classes().map((c) => [c.id, c.name]));
    let tenantId: number | undefined;
    if (q.tenant !== undefined) {
      tenantId = [...tenants].find(([, name]) => name === q.tenant)?.[0];
      if (tenantId === undefined) throw new ApiError('NOT_FOUND', `tenant: no tenant named "${q.tenant}"`, 'tenant');
    }
    const since = parseTime(q.since, 'since');
    const until = q.until ? parseTime(q.until, 'until') : undefined;
    const top = ctx.flows.top({ by: q.by, limit: q.limit, tenantId, since, until });
    return {
      by: q.by,
      since: since.toISOString(),
      until: until?.toISOString() ?? null,
      intervals: top.intervals,
      from: top.from?.toISOString() ?? null,
      to: top.to?.toISOString() ?? null,
      distinct: top.distinct,
      packets: top.packets,
      bytes: top.bytes,
      unknown: top.unknown,
      flows: top.flows.map((f) => ({
        tenant: tenants.get(f.tenantId) ?? `tenant-id-${f.tenantId}`,
        class: classes.get(f.classId) ?? `class-id-${f.classId}`,
        direction: f.direction,
        ipVersion: f.ipVersion,
        protocol: protocolNames.get(f.protocol) ?? String(f.protocol),
        src: f.src,
        sport: f.sport,
        dst: f.dst,
        dport: f.dport,
        packets: f.packets,
        bytes: f.bytes,
        first: new Date(f.firstMs).toISOString(),
        last: new Date(f.lastMs).toISOString(),
      })),
      health: top.health,
    };
  });
}
