// Containers from the cgroup v2 tree: which cgroups are containers, their
// cgroup ids, a watcher for containers coming and going, and cgroups to
// tenants by the policy's globs. File system only, no libbpf.
export { parseContainerCgroup, type ContainerName, type PodRef, type QosClass, type Runtime } from './naming.js';
export {
  discoverContainers, listCgroups, resolveCgroupWalk, DEFAULT_MAX_DEPTH,
  type Cgroup, type CgroupWalk, type CgroupWalkOptions, type Container,
} from './discovery.js';
export { ContainerWatcher, type ContainerWatcherEvents, type ContainerWatcherOptions } from './watcher.js';
export { tenantsByCgroup, type TenantCgroups } from './tenant-map.js';
