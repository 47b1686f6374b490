// Invoice endpoints (docs/billing.md). A caller scoped to a tenant (a tenant
// token, see auth.ts) reaches only that tenant's invoices.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { BillingError, INVOICE_FORMATS, renderInvoice, type Billing } from '../billing/index.js';
import { ApiError, parseQuery } from './errors.js';
import { callerOf } from './auth.js';

export interface BillingContext {
  billing?: Billing;
  /** Each quota of the live policy: the datapath's count and the ledger's. */
  quotas?: () => unknown[];
  /** The latest alerts with their deliveries, newest first. */
  alerts?: (limit: number) => unknown[];
}

const alertsQuery = z.object({ limit: z.coerce.number().int().min(1).max(10_000).default(100) }).strict();

const CONTENT_TYPES = { json: 'application/json; charset=utf-8', csv: 'text/csv; charset=utf-8', html: 'text/html; charset=utf-8' } as const;
const invoiceQuery = z.object({ format: z.enum(INVOICE_FORMATS).default('json') }).strict();

function billingError(err: unknown): unknown {
  if (!(err instanceof BillingError)) return err;
  return new ApiError(err.code === 'INVALID_PERIOD' ? 'BAD_REQUEST' : 'NOT_FOUND', err.message, err.field);
}

/** The tenant in the path, once the caller may see it. */
function tenantParam(req: FastifyRequest): string {
  const { tenant } = req.params as { tenant: string };
  const caller = callerOf(req);
  if (caller.tenant !== undefined && caller.tenant !== tenant) {
    throw new ApiError('FORBIDDEN', `token "${caller.name}" is scoped to tenant "${caller.tenant}"`, 'tenant');
  }
  return tenant;
}

export function billingRoutes(app: FastifyInstance, ctx: BillingContext): void {
  const billing = (): Billing => {
    if (!ctx.billing) throw new ApiError('NOT_FOUND', 'this agent has no billing');
    return ctx.billing;
  };

  /** The tenant's closed invoices and the running period. */
  app.get('/v1/invoices/:tenant', async (req) => {
    const tenant = tenantParam(req);
    try {
      return billing().list(tenant);
    } catch (err) {
      throw billingError(err);
    }
  });

  app.get('/v1/quotas', async () => ({ quotas: ctx.quotas?.() ?? [] }));

  app.get('/v1/alerts', async (req) => {
    const q = parseQuery(alertsQuery, req.query);
    return { alerts: ctx.alerts?.(q.limit) ?? [] };
  });

  /** One invoice; :period is an id such as 2026-11, or "current". */
  app.get('/v1/invoices/:tenant/:period', async (req, reply) => {
    const tenant = tenantParam(req);
    const { period } = req.params as { period: string };
    const q = parseQuery(invoiceQuery, req.query);
    let text: string;
    try {
      const inv = billing().invoice(tenant, period === 'current' ? undefined : period);
      text = renderInvoice(inv.doc, inv.json, q.format);
    } catch (err) {
      throw billingError(err);
    }
    // The stored bytes as they are: no re-serialisation.
    reply.type(CONTENT_TYPES[q.format]);
    reply.serializer((p: unknown) => String(p));
    return text;
  });
}
