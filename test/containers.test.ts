// Container discovery against the real cgroup2 tree: a private cgroup
// tgcd-<random> holds directories shaped like each runtime's cgroups;
// discovery, the cgroup ids, the tenant mapping and the watcher (inotify and
// polling) are checked on it. Everything is removed, deepest first, also
// when a test fails.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import {
  ContainerWatcher, discoverContainers, listCgroups, resolveCgroupWalk, tenantsByCgroup,
  type Container, type ContainerWatcherOptions,
} from '../src/containers/index.js';
import { findCgroup2, readMounts } from '../src/kernel/proc-mounts.js';
import { packageRoot } from '../src/paths.js';

const MOUNT = findCgroup2(readMounts());
const hex = (): string => randomBytes(32).toString('hex');
const UID = 'c0ffee00-1234-4abc-8def-0123456789ab';
const UID2 = '5eed0000-aaaa-4bbb-8ccc-dddddddddddd';

function ready(t: TestContext): boolean {
  if (process.getuid?.() !== 0) t.skip('needs root to create cgroups');
  else if (!MOUNT) t.skip('no cgroup2 mount');
  else return true;
  return false;
}

/** Removes a cgroup and everything below it, deepest first. */
function removeTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeTree(join(dir, e.name));
  rmdirSync(dir);
}

/** A private cgroup tgcd-<random> under the cgroup2 mount, removed when the test ends. */
function sandbox(t: TestContext): { under: string; mk: (...rel: string[]) => string; abs: (rel: string) => string } {
  const under = `/tgcd-${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;
  const abs = (rel: string): string => join(MOUNT!, rel);
  mkdirSync(abs(under));
  t.after(() => removeTree(abs(under)));
  /** mkdir -p of a cgroup path below the sandbox; returns its cgroup path. */
  const mk = (...rel: string[]): string => {
    const path = [under, ...rel].join('/');
    mkdirSync(abs(path), { recursive: true });
    return path;
  };
  return { under, mk, abs };
}

const ino = (dir: string): bigint => lstatSync(dir, { bigint: true }).ino;
const summary = (cs: Container[]) =>
  cs.map(({ runtime, id, pod, cgroupPath }) => ({ runtime, id, pod, cgroupPath })).sort((a, b) => a.cgroupPath.localeCompare(b.cgroupPath));

test('discovery finds each runtime layout with its cgroup id, and nothing else', (t) => {
  if (!ready(t)) return;
  const { under, mk, abs } = sandbox(t);
  const [a, b, c, d, e, f] = [hex(), hex(), hex(), hex(), hex(), hex()];
  const pod = `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID.replaceAll('-', '_')}.slice`;
  const docker = mk('system.slice', `docker-${a}.scope`);
  mk('system.slice', `docker-${a}.scope`, 'init.scope');
  mk('system.slice', 'docker.service');
  mk('machine.slice', `libpod-conmon-${b}.scope`);
  const podman = mk('machine.slice', `libpod-${b}.scope`);
  const containerd = mk(pod, `cri-containerd-${c}.scope`);
  const crio = mk(pod, `crio-${d}.scope`);
  mk(pod, `crio-conmon-${d}.scope`);
  const fsContainerd = mk('kubepods', 'besteffort', `pod${UID2}`, e);
  const fsDocker = mk('docker', f);
  mk('tenants', 'acme', 'web');

  const found = discoverContainers({ under });
  assert.deepEqual(summary(found), summary([
    { runtime: 'docker', id: a, cgroupPath: docker },
    { runtime: 'podman', id: b, cgroupPath: podman },
    { runtime: 'containerd', id: c, pod: { uid: UID, qos: 'burstable' }, cgroupPath: containerd },
    { runtime: 'crio', id: d, pod: { uid: UID, qos: 'burstable' }, cgroupPath: crio },
    { runtime: 'containerd', id: e, pod: { uid: UID2, qos: 'besteffort' }, cgroupPath: fsContainerd },
    { runtime: 'docker', id: f, cgroupPath: fsDocker },
  ] as Container[]));
  for (const cont of found) assert.equal(cont.cgroupId, ino(abs(cont.cgroupPath)), `cgroup id of ${cont.cgroupPath}`);
  assert.equal(new Set(found.map((x) => x.cgroupId)).size, found.length, 'cgroup ids are distinct');

  // The default mount is this host's cgroup2 mount, and on cgroup2 an inode
  // is the kernel's cgroup id: the root cgroup's id is 1.
  assert.equal(resolveCgroupWalk().mount, MOUNT);
  assert.deepEqual(listCgroups({ maxDepth: 0 }), [{ cgroupPath: '/', cgroupId: 1n }]);

  // Depth is counted below `under`: 2 reaches /system.slice/docker-*.scope, not the pod's containers.
  assert.deepEqual(summary(discoverContainers({ under, maxDepth: 2 })).map((x) => x.cgroupPath).sort(), [docker, fsDocker, podman].sort());
  assert.deepEqual(discoverContainers({ under: `${under}/system.slice/docker-${a}.scope` }).map((x) => x.id), [a], 'the sub-root itself counts');
});

test('discovery refuses bad options with a message naming them', (t) => {
  if (!ready(t)) return;
  const { under } = sandbox(t);
  assert.throws(() => discoverContainers({ under: `${under}/nope` }), /cgroup ".*\/nope" does not exist under/);
  assert.throws(() => discoverContainers({ under: `${under}/../etc` }), /option "under" must not contain "\." or "\.\." segments/);
  assert.throws(() => discoverContainers({ under: 'relative' }), /option "under" must be a cgroup path/);
  assert.throws(() => discoverContainers({ maxDepth: -1 }), /option "maxDepth" must be an integer >= 0/);
  assert.throws(() => discoverContainers({ mount: '/tmp' }), /option "mount": \/tmp is not a cgroup2 mount/);
});

test('tenant mapping over discovered cgroups: first tenant in policy order wins', (t) => {
  if (!ready(t)) return;
  const { under, mk } = sandbox(t);
  const web = mk('tenants', 'acme', 'web');
  const container = mk('system.slice', `docker-${hex()}.scope`);
  const other = mk('tenants', 'globex');
  const tenants = [
    { tenant: 'acme', globs: [`${under}/tenants/acme/**`] },
    { tenant: 'docker', globs: [`${under}/system.slice/docker-*.scope`] },
    { tenant: 'rest', globs: [`${under}/**`] },
  ];
  const owner = (cgroupPath: string, map: Map<{ cgroupPath: string }, string>) => [...map].find(([c]) => c.cgroupPath === cgroupPath)?.[1];

  const all = tenantsByCgroup(listCgroups({ under }), tenants);
  assert.equal(owner(web, all), 'acme');
  assert.equal(owner(container, all), 'docker');
  assert.equal(owner(other, all), 'rest');
  assert.equal(owner(under, all), 'rest', '"/**" selects the sub-root itself');

  const containers = tenantsByCgroup(discoverContainers({ under }), [...tenants].reverse());
  assert.deepEqual([...containers.values()], ['rest'], 'reversed, the catch-all tenant comes first and wins');
});

interface Seen {
  event: 'added' | 'removed';
  c: Container;
  at: number;
}

function record(w: ContainerWatcher): { seen: Seen[]; errors: Error[] } {
  const seen: Seen[] = [];
  const errors: Error[] = [];
  w.on('added', (c) => seen.push({ event: 'added', c, at: performance.now() }));
  w.on('removed', (c) => seen.push({ event: 'removed', c, at: performance.now() }));
  w.on('error', (e) => errors.push(e));
  return { seen, errors };
}

/** Milliseconds from `since` until the event arrives; fails after 1 s. */
async function within1s(seen: Seen[], event: Seen['event'], id: string, since: number): Promise<number> {
  while (performance.now() - since < 1000) {
    const hit = seen.find((s) => s.event === event && s.c.id === id);
    if (hit) return hit.at - since;
    await sleep(5);
  }
  assert.fail(`no '${event}' for ${id.slice(0, 12)} within 1 s; saw ${JSON.stringify(seen.map((s) => [s.event, s.c.cgroupPath]))}`);
}

for (const [mode, opts] of [['inotify', {}], ['polling', { inotify: false, pollMs: 250 }]] as Array<[string, ContainerWatcherOptions]>) {
  test(`watcher (${mode}) reports added and removed containers within 1 s and stops cleanly`, async (t) => {
    if (!ready(t)) return;
    const { under, mk, abs } = sandbox(t);
    const existing = hex();
    mk('system.slice', `docker-${existing}.scope`);
    const w = new ContainerWatcher({ under, ...opts });
    t.after(() => w.stop());
    const { seen, errors } = record(w);
    w.start();
    assert.deepEqual(seen.map((s) => [s.event, s.c.id]), [['added', existing]], 'start() reports what is already there');

    // A pod tree made in one burst: the slices and the scope inside them
    // appear before any watch on the new slices can exist.
    const [c1, c2] = [hex(), hex()];
    let since = performance.now();
    mk(`kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID.replaceAll('-', '_')}.slice`, `cri-containerd-${c1}.scope`);
    mk('system.slice', `docker-${c2}.scope`);
    const latency = [await within1s(seen, 'added', c1, since), await within1s(seen, 'added', c2, since)];
    const added = seen.find((s) => s.c.id === c1)!.c;
    assert.deepEqual(added.pod, { uid: UID, qos: 'besteffort' });
    assert.equal(added.cgroupId, ino(abs(added.cgroupPath)));

    since = performance.now();
    rmdirSync(abs(`${under}/system.slice/docker-${c2}.scope`));
    latency.push(await within1s(seen, 'removed', c2, since));
    t.diagnostic(`${mode}: event latencies ${latency.map((l) => `${l.toFixed(0)} ms`).join(', ')}`);
    assert.deepEqual(w.containers().map((c) => c.id).sort(), [existing, c1].sort());

    w.stop();
    const before = seen.length;
    mk('system.slice', `docker-${hex()}.scope`);
    await sleep(600);
    assert.equal(seen.length, before, 'no events after stop()');
    assert.deepEqual(errors, []);
  });
}

test('watcher errors are events, never exceptions out of its timers', async (t) => {
  if (!ready(t)) return;
  const { under, mk, abs } = sandbox(t);
  const w = new ContainerWatcher({ under: `${under}/watched`, inotify: false, pollMs: 20 });
  t.after(() => w.stop());
  mk('watched');
  const { seen, errors } = record(w);
  w.on('added', () => {
    throw new Error('listener bug');
  });
  w.start();
  const id = hex();
  mk('watched', `docker-${id}.scope`);
  await within1s(seen, 'added', id, performance.now());
  assert.match(errors[0]?.message ?? '', /'added' listener threw: listener bug/);

  removeTree(abs(`${under}/watched`));
  const deadline = performance.now() + 1000;
  while (!errors.some((e) => /does not exist/.test(e.message)) && performance.now() < deadline) await sleep(10);
  assert.ok(errors.some((e) => /cgroup ".*\/watched" does not exist/.test(e.message)), 'a walk that fails is reported');
  assert.throws(() => new ContainerWatcher({ under: `${under}/watched` }).start(), /does not exist/, 'start() throws on a missing sub-root');
  assert.throws(() => new ContainerWatcher({ pollMs: 0 }), /option "pollMs" must be an integer >= 10/);
});

test('stop() from a listener ends the event stream at once', (t) => {
  if (!ready(t)) return;
  const { under, mk } = sandbox(t);
  mk('system.slice', `docker-${hex()}.scope`);
  mk('system.slice', `docker-${hex()}.scope`);
  const w = new ContainerWatcher({ under });
  t.after(() => w.stop());
  let added = 0;
  w.on('added', () => {
    added++;
    w.stop();
  });
  w.start();
  assert.equal(added, 1);
  assert.deepEqual(w.containers(), []);
});

test('a started watcher does not keep the process alive', async (t) => {
  if (!ready(t)) return;
  const { under, mk } = sandbox(t);
  mk('system.slice', `docker-${hex()}.scope`);
  const script = [
    `import { ContainerWatcher } from ${JSON.stringify(join(packageRoot, 'src/containers/index.ts'))};`,
    `const w = new ContainerWatcher({ under: ${JSON.stringify(under)} }).start();`,
    'console.log(w.containers().length);',
  ].join('\n');
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: packageRoot, timeout: 15_000,
  });
  assert.equal(stdout.trim(), '1');
});
