// Which existing cgroups belong to which tenant, from the policy's cgroup
// globs: the input the metering compiler turns into tg_tenant_cgroup. Only
// the subtree the cgroup hooks see (the globs' covering root) is walked.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { listCgroups, tenantsByCgroup } from '../containers/index.js';
import { findCgroup2, readMounts } from '../kernel/index.js';
import { cgroupCoveringRoot, type Policy } from '../policy/index.js';

/** Cgroup id -> tenant name for every cgroup under the covering root that a tenant's glob selects (first tenant wins). */
export function cgroupTenants(policy: Policy): Map<bigint, string> {
  const tenants = policy.tenants.map((t) => ({ tenant: t.name, globs: t.selectors.cgroups })).filter((t) => t.globs.length > 0);
  const root = cgroupCoveringRoot(tenants.flatMap((t) => t.globs));
  const mount = findCgroup2(readMounts());
  // A root that does not exist yet holds no cgroups; the hooks attach at its nearest existing ancestor.
  if (root === undefined || mount === undefined || !existsSync(join(mount, root))) return new Map();
  const owners = tenantsByCgroup(listCgroups({ mount, under: root }), tenants);
  return new Map([...owners].map(([cg, tenant]) => [cg.cgroupId, tenant]));
}

/** Two mappings are the same (so nothing needs re-applying). */
export function sameCgroupTenants(a: ReadonlyMap<bigint, string>, b: ReadonlyMap<bigint, string>): boolean {
  return a.size === b.size && [...a].every(([id, t]) => b.get(id) === t);
}
