// Container endpoints: the containers on the host with their tenant and
// isolation scope, what each monitored container's processes did
// (syscall counts), and the seccomp profile learned from it
// (docs/isolation.md).
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ContainerView } from '../isolation/isolation.js';
import { AmbiguousContainer } from '../isolation/isolation.js';
import type { SeenSyscall } from '../sysmon/store.js';
import { syscallName } from '../sysmon/syscalls.js';
import { seccompProfile } from '../sysmon/seccomp.js';
import { ApiError, parseQuery } from './errors.js';
import { parseTime } from './metering.js';

export interface IsolationContext {
  isolation?: {
    containers(): ContainerView[];
    resolve(idOrPrefix: string): string | undefined;
    syscalls(id: string, since?: number): { container: { id: string; runtime: string; tenant: string; cgroup: string }; syscalls: SeenSyscall[] } | undefined;
  };
}

const sinceQuery = z.object({ since: z.string().min(1).optional() }).strict();
const idParam = z.object({ id: z.string().regex(/^[0-9a-f]{1,64}$/, { message: 'must be a container id or a prefix of one (hex digits)' }) });

export function isolationRoutes(app: FastifyInstance, ctx: IsolationContext): void {
  const isolation = () => {
    if (!ctx.isolation) throw new ApiError('NOT_FOUND', 'this agent does not monitor containers');
    return ctx.isolation;
  };
  /** The container's id and its observations since the query's time. */
  const observed = (params: unknown, query: unknown) => {
    const { id } = parseQuery(idParam, params);
    const { since } = parseQuery(sinceQuery, query);
    const iso = isolation();
    let full: string | undefined;
    try {
      full = iso.resolve(id);
    } catch (err) {
      if (err instanceof AmbiguousContainer) throw new ApiError('BAD_REQUEST', `id: ${err.message}; give more of it`, 'id');
      throw err;
    }
    const sinceMs = since === undefined ? 0 : parseTime(since, 'since').getTime();
    const r = full === undefined ? undefined : iso.syscalls(full, sinceMs);
    if (!r) throw new ApiError('NOT_FOUND', `id: no monitored container "${id}" (a container is monitored while an isolation scope of the policy governs it)`, 'id');
    return { ...r, since: since === undefined ? null : new Date(sinceMs).toISOString() };
  };

  app.get('/v1/containers', async () => ({ containers: isolation().containers() }));

  app.get('/v1/containers/:id/syscalls', async (req) => {
    const r = observed(req.params, req.query);
    return {
      container: r.container,
      since: r.since,
      syscalls: r.syscalls
        .map((s) => ({ name: syscallName(s.nr) ?? null, nr: s.nr, count: s.count, firstSeen: new Date(s.firstAt).toISOString(), lastSeen: new Date(s.lastAt).toISOString() }))
        .sort((a, b) => (b.count > a.count ? 1 : b.count < a.count ? -1 : a.nr - b.nr)),
    };
  });

  /** The OCI seccomp profile allowing what the container was seen doing; `unnamed`: observed numbers it cannot allow. */
  app.get('/v1/containers/:id/seccomp', async (req) => {
    const r = observed(req.params, req.query);
    return { container: r.container, since: r.since, ...seccompProfile(r.syscalls) };
  });
}
