// The lab: network-namespace topologies, their services and traffic drivers.
// Used by `tollgate lab up|down|status`, the kernel/lab tests and the benchmarks.
export * from './topology.js';
export * from './lab.js';
export * from './traffic.js';
export {
  CommandError,
  run,
  ip,
  runInNetns,
  spawnInNetns,
  sysctlInNetns,
  waitExit,
  findCgroup2Mount,
  cgroupOfPid,
  pidAlive,
  httpFromNetns,
  type RunOptions,
  type RunResult,
  type SpawnOptions,
  type HttpResult,
} from './exec.js';
