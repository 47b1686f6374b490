// Cgroups to tenants by the policy's `tenants[].selectors.cgroups` globs.
// The glob language is src/policy/cgroup-match.ts; this only decides who
// wins when globs of two tenants select the same cgroup: the tenant listed
// first in the policy, as docs/policy.md promises. The policy's cross-check
// refuses the same glob string in two tenants, but different globs may
// overlap ("/tenants/**" and "/tenants/acme/*"), and that is allowed.
import { cgroupMatcher } from '../policy/cgroup-match.js';

export interface TenantCgroups {
  tenant: string;
  /** Globs relative to the cgroup2 mount, e.g. "/tenants/acme/**". */
  globs: readonly string[];
}

/**
 * Which tenant owns each cgroup: the first tenant, in list order, with a glob
 * matching the cgroup's path. Cgroups that no tenant selects are absent.
 * Pass the tenants in policy order:
 * `policy.tenants.map((t) => ({ tenant: t.name, globs: t.selectors.cgroups }))`.
 * Throws, naming the tenant, on a glob cgroup-match.ts refuses.
 */
export function tenantsByCgroup<C extends { cgroupPath: string }>(cgroups: readonly C[], tenants: readonly TenantCgroups[]): Map<C, string> {
  const matchers = tenants.map(({ tenant, globs }) => {
    try {
      return { tenant, matches: cgroupMatcher(globs) };
    } catch (e) {
      throw new Error(`tenant "${tenant}": ${(e as Error).message}`);
    }
  });
  const owner = new Map<C, string>();
  for (const cg of cgroups) {
    const first = matchers.find((m) => m.matches(cg.cgroupPath));
    if (first) owner.set(cg, first.tenant);
  }
  return owner;
}
