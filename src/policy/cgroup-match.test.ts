import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cgroupCoveringRoot, cgroupGlobProblem, cgroupMatcher } from './cgroup-match.js';

test('"*" stays within a segment, "**" crosses segments', () => {
  const m = cgroupMatcher(['/tenants/acme/*']);
  assert.ok(m('/tenants/acme/web'));
  assert.ok(!m('/tenants/acme'));
  assert.ok(!m('/tenants/acme/web/worker'));
  assert.ok(!m('/tenants/acmeX/web'));

  const deep = cgroupMatcher(['/tenants/acme/**']);
  assert.ok(deep('/tenants/acme'), '** matches zero segments');
  assert.ok(deep('/tenants/acme/web'));
  assert.ok(deep('/tenants/acme/web/worker/1'));
  assert.ok(!deep('/tenants/acmeX'));
  assert.ok(!deep('/tenants'));

  const mid = cgroupMatcher(['/system.slice/**/docker-*.scope']);
  assert.ok(mid('/system.slice/docker-abc.scope'));
  assert.ok(mid('/system.slice/a/b/docker-abc.scope'));
  assert.ok(!mid('/system.slice/a/b/docker-abc.scopeX'));
  assert.ok(!mid('/system.slice/a/podman-abc.scope'));
});

test('globs match whole paths; literal characters are literal', () => {
  assert.ok(!cgroupMatcher(['/a'])('/a/b'));
  assert.ok(cgroupMatcher(['/a'])('/a/'), 'a trailing slash on the path is ignored');
  assert.ok(cgroupMatcher(['/a.b(c)+'])('/a.b(c)+'));
  assert.ok(!cgroupMatcher(['/a.b'])('/aXb'), '"." is not a regex wildcard');
  assert.ok(cgroupMatcher(['/pod-?'])('/pod-7'));
  assert.ok(!cgroupMatcher(['/pod-?'])('/pod-17'));
  assert.ok(cgroupMatcher(['/**'])('/'), '"/**" selects the root too');
  assert.ok(cgroupMatcher(['/'])('/'));
  assert.ok(!cgroupMatcher(['/'])('/a'));
  assert.ok(!cgroupMatcher([])('/a'), 'no globs select nothing');
  assert.ok(cgroupMatcher(['/x', '/a/*'])('/a/b'), 'any glob may match');
});

test('bad globs are refused with a reason', () => {
  assert.match(cgroupGlobProblem('tenants/acme') ?? '', /starting with "\/"/);
  assert.match(cgroupGlobProblem('/a//b') ?? '', /empty path segment/);
  assert.match(cgroupGlobProblem('/a/../b') ?? '', /"\.\." segments/);
  assert.match(cgroupGlobProblem('/a/b**') ?? '', /whole path segment/);
  assert.equal(cgroupGlobProblem('/a/**/b/*.scope'), undefined);
  assert.throws(() => cgroupMatcher(['nope']), /cgroup glob "nope"/);
});

test('property: a literal glob matches exactly its own path', () => {
  const seg = fc.stringMatching(/^[a-z0-9._-]{1,8}$/).filter((s) => s !== '.' && s !== '..');
  fc.assert(
    fc.property(fc.array(seg, { minLength: 1, maxLength: 5 }), fc.array(seg, { minLength: 1, maxLength: 5 }), (a, b) => {
      const pa = `/${a.join('/')}`;
      const pb = `/${b.join('/')}`;
      const m = cgroupMatcher([pa]);
      return m(pa) && m(pb) === (pa === pb) && cgroupMatcher([`${pa}/**`])(`${pa}/${b.join('/')}`);
    }),
  );
});

test('cgroupCoveringRoot: the deepest common literal parent of the globs', () => {
  assert.equal(cgroupCoveringRoot([]), undefined);
  assert.equal(cgroupCoveringRoot(['/tollgate-lab/tg/tenant-1', '/tollgate-lab/tg/tenant-2']), '/tollgate-lab/tg');
  assert.equal(cgroupCoveringRoot(['/tollgate-lab/tg/tenant-1']), '/tollgate-lab/tg/tenant-1');
  assert.equal(cgroupCoveringRoot(['/kubepods.slice/**/cri-containerd-*.scope', '/kubepods.slice/kubepods-besteffort.slice/x']), '/kubepods.slice');
  assert.equal(cgroupCoveringRoot(['/system.slice/docker-*.scope', '/kubepods/**']), '/');
  assert.equal(cgroupCoveringRoot(['/**']), '/');
  assert.equal(cgroupCoveringRoot(['/a/b/', '/a/b/c']), '/a/b');
  assert.equal(cgroupCoveringRoot(['/a/b?/c']), '/a');
  assert.throws(() => cgroupCoveringRoot(['relative']), /must be a path/);
});
