// Which isolation scope of the policy governs each container: a scope names
// a tenant and, optionally, a cgroup glob narrowing it to some of the
// tenant's containers. The first scope in policy order that selects a
// container governs it (docs/isolation.md). Pure.
import { cgroupMatcher } from '../policy/cgroup-match.js';
import type { IsolationScope } from '../policy/index.js';

export interface ScopedContainer<C> {
  container: C;
  /** Index of the governing scope in policy.isolation. */
  scope: number;
}

/** Containers of the tenants the scopes name, each with its governing scope; others are left out. */
export function scopeContainers<C extends { tenant: string; cgroupPath: string }>(
  scopes: readonly IsolationScope[] | undefined,
  containers: readonly C[],
): Array<ScopedContainer<C>> {
  const matchers = (scopes ?? []).map((s) => ({ tenant: s.tenant, matches: s.containers === undefined ? () => true : cgroupMatcher([s.containers]) }));
  const out: Array<ScopedContainer<C>> = [];
  for (const c of containers) {
    const scope = matchers.findIndex((m) => m.tenant === c.tenant && m.matches(c.cgroupPath));
    if (scope >= 0) out.push({ container: c, scope });
  }
  return out;
}
