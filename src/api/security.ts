// Security endpoints: the firewall's rules with their hit counters and what
// the datapath did with the packets it filtered (docs/security.md).
import type { FastifyInstance } from 'fastify';
import type { FirewallStatus } from '../firewall/firewall.js';
import { ApiError } from './errors.js';

export interface SecurityContext {
  security?: () => FirewallStatus;
  /** Replaces the policy's rules (PUT /v1/security/rules); throws ApiError on a bad body. */
  setRules?: (body: unknown) => Promise<unknown>;
  /** Goes back to the policy's rules. */
  clearRules?: () => Promise<unknown>;
}

export function securityRoutes(app: FastifyInstance, ctx: SecurityContext): void {
  app.get('/v1/security/rules', async () => {
    const s = ctx.security?.();
    return s ?? { enabled: false, generation: 0, defaultAction: null, rules: [], limits: [], buckets: null, stats: {} };
  });
  app.put('/v1/security/rules', async (req) => {
    if (!ctx.setRules) throw new ApiError('NOT_FOUND', 'this agent takes no rules through the API');
    return ctx.setRules(req.body);
  });
  app.delete('/v1/security/rules', async () => {
    if (!ctx.clearRules) throw new ApiError('NOT_FOUND', 'this agent takes no rules through the API');
    return ctx.clearRules();
  });
}
