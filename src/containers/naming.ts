// Which cgroups are containers, told from the cgroup path alone. Every runtime
// names a container's cgroup after its 64-hex id; the cgroup driver decides
// the shape: systemd wraps it in a "<prefix>-<id>.scope" unit, cgroupfs uses
// the id (or "<prefix>-<id>") as a plain directory name. Kubernetes puts the
// pod's uid and QoS class in the parent cgroup. The recognised layouts are
// listed in docs/containers.md.

export type Runtime = 'docker' | 'containerd' | 'crio' | 'podman';
export type QosClass = 'guaranteed' | 'burstable' | 'besteffort';

export interface PodRef {
  /** The pod's metadata.uid, with dashes (systemd slices spell them "_"). */
  uid: string;
  qos: QosClass;
}

export interface ContainerName {
  runtime: Runtime;
  /** The runtime's full 64-hex container id. */
  id: string;
  /** Present when the container's parent cgroup is a Kubernetes pod. */
  pod?: PodRef;
}

const ID = '([0-9a-f]{64})';

/**
 * Names that alone say runtime and id. The id must be exactly 64 lowercase hex
 * digits, which is what keeps the runtimes' helper cgroups out: conmon
 * ("libpod-conmon-<id>.scope", "crio-conmon-<id>"), mount units
 * ("run-containerd-...-<id>-rootfs.mount") and anything systemd or a
 * container's own init creates inside a container ("init.scope").
 */
const SELF_NAMED: ReadonlyArray<readonly [RegExp, Runtime]> = [
  [new RegExp(`^docker-${ID}\\.scope$`), 'docker'],
  [new RegExp(`^cri-containerd-${ID}\\.scope$`), 'containerd'],
  [new RegExp(`^crio-${ID}(?:\\.scope)?$`), 'crio'],
  [new RegExp(`^libpod-${ID}(?:\\.scope)?$`), 'podman'],
];
const BARE_ID = new RegExp(`^${ID}$`);

// systemd driver: "kubepods-burstable-pod<uid>.slice", "kubepods-pod<uid>.slice"
// (guaranteed), possibly under a kubelet cgroup root ("kubelet-kubepods-...").
const SYSTEMD_POD = /^(?:[^/]+-)?kubepods-(?:(burstable|besteffort)-)?pod([0-9a-f]+(?:_[0-9a-f]+)*)\.slice$/;
// cgroupfs driver: ".../kubepods[/burstable|/besteffort]/pod<uid>".
const CGROUPFS_POD = /^pod([0-9a-f]+(?:-[0-9a-f]+)*)$/;

function podOf(segs: readonly string[], at: number): PodRef | undefined {
  const seg = segs[at];
  if (seg === undefined) return undefined;
  const sd = SYSTEMD_POD.exec(seg);
  if (sd) return { uid: sd[2].replaceAll('_', '-'), qos: (sd[1] as QosClass | undefined) ?? 'guaranteed' };
  const fs = CGROUPFS_POD.exec(seg);
  if (!fs) return undefined;
  if (segs[at - 1] === 'kubepods') return { uid: fs[1], qos: 'guaranteed' };
  const qos = segs[at - 1];
  if ((qos === 'burstable' || qos === 'besteffort') && segs[at - 2] === 'kubepods') return { uid: fs[1], qos };
  return undefined;
}

/**
 * The container a cgroup belongs to, or undefined when the cgroup is not a
 * container's own cgroup. `cgroupPath` is relative to the cgroup2 mount
 * ("/system.slice/docker-<id>.scope"); repeated and trailing slashes are
 * ignored. Never throws.
 */
export function parseContainerCgroup(cgroupPath: string): ContainerName | undefined {
  const segs = String(cgroupPath).split('/').filter((s) => s !== '');
  const leaf = segs.at(-1);
  if (leaf === undefined) return undefined;
  const pod = podOf(segs, segs.length - 2);
  const named = (runtime: Runtime, id: string): ContainerName => (pod ? { runtime, id, pod } : { runtime, id });

  for (const [re, runtime] of SELF_NAMED) {
    const m = re.exec(leaf);
    if (m) return named(runtime, m[1]);
  }
  const bare = BARE_ID.exec(leaf);
  if (!bare) return undefined;
  if (segs.at(-2) === 'docker') return named('docker', bare[1]);
  // Under a cgroupfs pod a bare id is containerd's layout: CRI-O prefixes
  // "crio-", and dockershim (the only other writer of this shape) left
  // Kubernetes in 1.24. cri-dockerd would be reported as containerd too.
  if (pod) return named('containerd', bare[1]);
  return undefined;
}
