// Security endpoints: the firewall's rules with their hit counters and what
// the datapath did with the packets it filtered (docs/security.md).
import type { FastifyInstance } from 'fastify';
import type { FirewallStatus } from '../firewall/firewall.js';

export interface SecurityContext {
  security?: () => FirewallStatus;
}

export function securityRoutes(app: FastifyInstance, ctx: SecurityContext): void {
  app.get('/v1/security/rules', async () => {
    const s = ctx.security?.();
    return s ?? { enabled: false, generation: 0, defaultAction: null, rules: [], limits: [], buckets: null, stats: {} };
  });
}
