import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseContainerCgroup, type ContainerName } from './naming.js';

const A = 'a'.repeat(40) + '0123456789abcdef01234567';
const B = 'b'.repeat(64);
const UID = '6f1e3f8c-2b7a-4c1d-9e0f-1a2b3c4d5e6f';
const UID_ = UID.replaceAll('-', '_');
const STATIC_UID = '0123456789abcdef0123456789abcdef'; // static pods: a config hash, no dashes

const POSITIVE: Array<[string, string, ContainerName]> = [
  // docker
  ['docker, systemd', `/system.slice/docker-${A}.scope`, { runtime: 'docker', id: A }],
  ['docker, cgroupfs', `/docker/${A}`, { runtime: 'docker', id: A }],
  ['docker, systemd, in a guaranteed pod', `/kubepods.slice/kubepods-pod${UID_}.slice/docker-${A}.scope`,
    { runtime: 'docker', id: A, pod: { uid: UID, qos: 'guaranteed' } }],
  // containerd
  ['containerd, systemd, burstable pod',
    `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${A}.scope`,
    { runtime: 'containerd', id: A, pod: { uid: UID, qos: 'burstable' } }],
  ['containerd, systemd, guaranteed pod', `/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${B}.scope`,
    { runtime: 'containerd', id: B, pod: { uid: UID, qos: 'guaranteed' } }],
  ['containerd, cgroupfs, besteffort pod', `/kubepods/besteffort/pod${UID}/${A}`,
    { runtime: 'containerd', id: A, pod: { uid: UID, qos: 'besteffort' } }],
  ['containerd, cgroupfs, guaranteed pod', `/kubepods/pod${UID}/${A}`,
    { runtime: 'containerd', id: A, pod: { uid: UID, qos: 'guaranteed' } }],
  ['containerd, cgroupfs, under a kubelet cgroup root', `/kubelet/kubepods/burstable/pod${UID}/${A}`,
    { runtime: 'containerd', id: A, pod: { uid: UID, qos: 'burstable' } }],
  ['containerd, kind node (kubelet slice inside a docker scope)',
    `/system.slice/docker-${B}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${UID_}.slice/cri-containerd-${A}.scope`,
    { runtime: 'containerd', id: A, pod: { uid: UID, qos: 'besteffort' } }],
  ['containerd, static pod uid', `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${STATIC_UID}.slice/cri-containerd-${A}.scope`,
    { runtime: 'containerd', id: A, pod: { uid: STATIC_UID, qos: 'besteffort' } }],
  // cri-o
  ['crio, systemd', `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/crio-${A}.scope`,
    { runtime: 'crio', id: A, pod: { uid: UID, qos: 'besteffort' } }],
  ['crio, cgroupfs', `/kubepods/burstable/pod${UID}/crio-${A}`, { runtime: 'crio', id: A, pod: { uid: UID, qos: 'burstable' } }],
  // podman
  ['podman, systemd', `/machine.slice/libpod-${A}.scope`, { runtime: 'podman', id: A }],
  ['podman, systemd, rootless', `/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${A}.scope`, { runtime: 'podman', id: A }],
  ['podman, systemd, in a podman pod', `/machine.slice/machine-libpod_pod_${B}.slice/libpod-${A}.scope`, { runtime: 'podman', id: A }],
  ['podman, cgroupfs', `/libpod_parent/libpod-${A}`, { runtime: 'podman', id: A }],
  // spelling
  ['trailing and doubled slashes', `//system.slice//docker-${A}.scope/`, { runtime: 'docker', id: A }],
  ['no leading slash', `docker/${A}`, { runtime: 'docker', id: A }],
];

for (const [name, path, want] of POSITIVE) {
  test(`container: ${name}`, () => assert.deepEqual(parseContainerCgroup(path), want));
}

const NEGATIVE: Array<[string, string]> = [
  ['the root', '/'],
  ['empty', ''],
  ['a plain service', '/system.slice/ssh.service'],
  ['the docker daemon', '/system.slice/docker.service'],
  ['a slice', '/kubepods.slice/kubepods-burstable.slice'],
  ['a pod slice itself', `/kubepods.slice/kubepods-pod${UID_}.slice`],
  ['a cgroupfs pod itself', `/kubepods/besteffort/pod${UID}`],
  ['podman conmon, systemd', `/machine.slice/libpod-conmon-${A}.scope`],
  ['podman conmon, cgroupfs (inside the container cgroup)', `/libpod_parent/libpod-${A}/conmon`],
  ['crio conmon', `/kubepods.slice/kubepods-pod${UID_}.slice/crio-conmon-${A}.scope`],
  ['a mount unit naming a container', `/system.slice/run-containerd-io.containerd.runtime.v2.task-k8s.io-${A}-rootfs.mount`],
  ['a docker mount unit', `/system.slice/var-lib-docker-containers-${A}-mounts-shm.mount`],
  ['init.scope inside a container', `/system.slice/docker-${A}.scope/init.scope`],
  ["crun's payload subgroup", `/machine.slice/libpod-${A}.scope/container`],
  ['a short id', `/system.slice/docker-${A.slice(1)}.scope`],
  ['a long id', `/system.slice/docker-${A}0.scope`],
  ['upper-case hex', `/system.slice/docker-${A.toUpperCase()}.scope`],
  ['docker scope without ".scope"', `/system.slice/docker-${A}`],
  ['a bare id anywhere else', `/default/${A}`],
  ['a bare id under a pod-like name outside kubepods', `/tenants/pod${UID}/${A}`],
  ['a bare id directly under kubepods', `/kubepods/${A}`],
  ['an unknown runtime prefix', `/system.slice/rkt-${A}.scope`],
];

for (const [name, path] of NEGATIVE) {
  test(`not a container: ${name}`, () => assert.equal(parseContainerCgroup(path), undefined));
}

const hexId = fc.stringMatching(/^[0-9a-f]{64}$/);
const unitName = fc.stringMatching(/^[a-z][a-z0-9@_-]{0,12}\.(slice|service)$/);

test('property: never throws, and whatever it returns has a 64-hex id', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.array(fc.constantFrom('/', 'docker', 'kubepods', A, `docker-${A}.scope`, 'pod1', 'x')).map((a) => a.join('/'))), (s) => {
      const c = parseContainerCgroup(s);
      return c === undefined || /^[0-9a-f]{64}$/.test(c.id);
    }),
  );
});

test('property: a docker scope under any slices round-trips its id', () => {
  fc.assert(
    fc.property(fc.array(unitName, { maxLength: 4 }), hexId, (parents, id) => {
      const c = parseContainerCgroup(`/${[...parents, `docker-${id}.scope`].join('/')}`);
      return c?.runtime === 'docker' && c.id === id && c.pod === undefined;
    }),
  );
});

test('property: a pod uid round-trips through the systemd slice spelling', () => {
  fc.assert(
    fc.property(fc.uuid(), fc.constantFrom('', 'burstable', 'besteffort'), hexId, (uid, qos, id) => {
      const u = uid.replaceAll('-', '_');
      const slice = qos === '' ? `kubepods-pod${u}.slice` : `kubepods-${qos}.slice/kubepods-${qos}-pod${u}.slice`;
      const c = parseContainerCgroup(`/kubepods.slice/${slice}/cri-containerd-${id}.scope`);
      return c?.pod?.uid === uid && c.pod.qos === (qos || 'guaranteed') && c.id === id;
    }),
  );
});
