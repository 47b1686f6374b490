// Which existing cgroups belong to which tenant, from the policy's cgroup
// globs: the input the metering compiler turns into tg_tenant_cgroup. Only
// the subtree the cgroup hooks see (the globs' covering root) is walked.
// Containers (by runtime naming) below a tenant's cgroup are listed too, with
// that tenant, so each gets its own entry and counter slot.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { listCgroups, parseContainerCgroup, tenantsByCgroup } from '../containers/index.js';
import { findCgroup2, readMounts } from '../kernel/index.js';
import { cgroupCoveringRoot, type Policy } from '../policy/index.js';

export interface TenantContainer {
  id: string;
  runtime: string;
  tenant: string;
  cgroupId: bigint;
  /** Relative to the cgroup2 mount. */
  cgroupPath: string;
  /** The cgroups below the container's own (a runtime's payload cgroup, systemd in a container). */
  below: Array<{ cgroupId: bigint; cgroupPath: string }>;
}

export interface CgroupTenants {
  /** Cgroup id -> tenant: cgroups a tenant's glob selects (first tenant wins) and the containers below them. */
  tenants: Map<bigint, string>;
  containers: TenantContainer[];
}

export function cgroupTenants(policy: Policy): CgroupTenants {
  const tenants = policy.tenants.map((t) => ({ tenant: t.name, globs: t.selectors.cgroups })).filter((t) => t.globs.length > 0);
  const root = cgroupCoveringRoot(tenants.flatMap((t) => t.globs));
  const mount = findCgroup2(readMounts());
  // A root that does not exist yet holds no cgroups; the hooks attach at its nearest existing ancestor.
  if (root === undefined || mount === undefined || !existsSync(join(mount, root))) return { tenants: new Map(), containers: [] };
  const cgroups = listCgroups({ mount, under: root }); // one walk serves the globs and the containers
  const owners = [...tenantsByCgroup(cgroups, tenants)];
  const byPath = new Map(owners.map(([cg, tenant]) => [cg.cgroupPath, tenant]));
  const out = new Map(owners.map(([cg, tenant]) => [cg.cgroupId, tenant]));
  const containers: TenantContainer[] = [];
  for (const cg of cgroups) {
    const c = parseContainerCgroup(cg.cgroupPath);
    if (!c) continue;
    // The container's own cgroup, else its deepest selected ancestor (the kernel's rule too).
    let tenant: string | undefined;
    for (let p = cg.cgroupPath; tenant === undefined && p.length > 1; p = p.slice(0, p.lastIndexOf('/')) || '/') tenant = byPath.get(p);
    if (tenant === undefined) continue;
    containers.push({ id: c.id, runtime: c.runtime, tenant, cgroupId: cg.cgroupId, cgroupPath: cg.cgroupPath, below: [] });
    out.set(cg.cgroupId, tenant);
  }
  // The walk lists parents first, so a container is known before the cgroups below it.
  const byContainerPath = new Map(containers.map((c) => [c.cgroupPath, c]));
  for (const cg of cgroups) {
    for (let p = cg.cgroupPath.slice(0, cg.cgroupPath.lastIndexOf('/')); p.length > 0; p = p.slice(0, p.lastIndexOf('/'))) {
      const c = byContainerPath.get(p);
      if (c) {
        c.below.push(cg);
        break;
      }
    }
  }
  return { tenants: out, containers };
}

/** Two results map the same cgroups to the same tenants (so nothing needs re-applying). */
export function sameCgroupTenants(a: CgroupTenants, b: CgroupTenants): boolean {
  return a.tenants.size === b.tenants.size && [...a.tenants].every(([id, t]) => b.tenants.get(id) === t);
}
