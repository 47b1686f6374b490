import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tenantsByCgroup } from './tenant-map.js';

const cg = (cgroupPath: string) => ({ cgroupPath, cgroupId: 1n });
const owners = (cgroups: ReturnType<typeof cg>[], tenants: Parameters<typeof tenantsByCgroup>[1]) =>
  Object.fromEntries([...tenantsByCgroup(cgroups, tenants)].map(([c, t]) => [c.cgroupPath, t]));

test('each cgroup goes to the tenant whose glob matches; unmatched cgroups are absent', () => {
  const cgroups = [cg('/tenants/acme/web'), cg('/tenants/globex'), cg('/system.slice/ssh.service'), cg('/tenants/acme')];
  assert.deepEqual(
    owners(cgroups, [
      { tenant: 'acme', globs: ['/tenants/acme/**'] },
      { tenant: 'globex', globs: ['/nothing', '/tenants/globex'] },
    ]),
    { '/tenants/acme/web': 'acme', '/tenants/acme': 'acme', '/tenants/globex': 'globex' },
  );
});

test('overlapping globs of two tenants: the tenant listed first wins', () => {
  const cgroups = [cg('/tenants/acme/web'), cg('/tenants/initech')];
  const broadFirst = [
    { tenant: 'all', globs: ['/tenants/**'] },
    { tenant: 'acme', globs: ['/tenants/acme/*'] },
  ];
  assert.deepEqual(owners(cgroups, broadFirst), { '/tenants/acme/web': 'all', '/tenants/initech': 'all' });
  assert.deepEqual(owners(cgroups, [...broadFirst].reverse()), { '/tenants/acme/web': 'acme', '/tenants/initech': 'all' });
});

test('the map is keyed by the caller\'s own objects, so their cgroup ids come along', () => {
  const web = { cgroupPath: '/system.slice/docker-x.scope', cgroupId: 42n };
  const m = tenantsByCgroup([web], [{ tenant: 'acme', globs: ['/system.slice/docker-*.scope'] }]);
  assert.equal(m.get(web), 'acme');
});

test('no tenants or no globs select nothing', () => {
  assert.equal(tenantsByCgroup([cg('/a')], []).size, 0);
  assert.equal(tenantsByCgroup([cg('/a')], [{ tenant: 'acme', globs: [] }]).size, 0);
});

test('a bad glob is an error naming the tenant and the glob', () => {
  assert.throws(() => tenantsByCgroup([cg('/a')], [{ tenant: 'acme', globs: ['tenants/acme'] }]), /tenant "acme": cgroup glob "tenants\/acme" must be a path/);
});
