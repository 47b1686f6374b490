// The kernel layer: the only code that touches libbpf. Everything other
// modules need is exported from here.
export * from './codec.js';
export { KernelError, VerifierError, errnoName } from './errors.js';
export { libbpf, libbpfVersion, numPossibleCpus, setLibbpfLogger, captureLibbpfLog, type LogLevel, type Logger } from './libbpf.js';
export { BpfObject, type OpenOptions, type AttachTypeName } from './object.js';
export { BpfProgram, AttachType, type XdpMode, type TcxDirection, type TestRunOptions, type TestRunResult } from './program.js';
export { BpfLink } from './link.js';
export { BpfMap, MapType, type UpdateFlag, type MapShape, type PackedEntries, type PackedStorage } from './map.js';
export { TypedMap, sumValues } from './typed-map.js';
export { RingBufReader, type RingBufOptions } from './ringbuf.js';
export { progInfo, progInfoById, mapInfo, linkInfo, kernelIds, LinkType, type ProgInfo, type MapInfo, type LinkInfo } from './info.js';
export { enableBpfStats } from './stats.js';
export { mkdirp, removePins, pinPath, inBpffs, PIN_ROOT } from './pins.js';
export { ensureBpffs, ensureTracefs, cgroup2Root, findMount, BPFFS, TRACEFS } from './mounts.js';
export { parseMounts, readMounts, findCgroup2, type Mount } from './proc-mounts.js';
export { ifindexOf, enterNetns, withNetns } from './netns.js';
export { datasecVars, type SectionVar } from './btf.js';
export { taiOffsetMs } from './clock.js';
export { attachCgroupLinks, loadPinned, unpinLinks, type CgroupLinksResult } from './pinned.js';
