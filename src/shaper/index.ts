// Bandwidth limits per container or tenant (bpf/progs/shaper.bpf.c).
export { Shaper, type ShaperOptions, type ShaperApplyResult, type GroupStats } from './shaper.js';
export { ShaperDatapath, type BwDirection, type BwStats, type BwCfg, type ShaperProgram } from './datapath.js';
export {
  compileBandwidth,
  bandwidthGroups,
  groupIdent,
  groupKey,
  limitCfg,
  BandwidthError,
  INGRESS_MIN_BURST_NS,
  MIN_RATE,
  MAX_RATE,
  MIN_BURST,
  MAX_BURST,
  type BandwidthGroup,
  type BandwidthLimit,
  type ContainerGroup,
  type TenantGroup,
  type ShaperContainer,
  type CompiledBandwidth,
  type CompiledGroup,
  type CompileOptions,
  type BandwidthScope,
} from './compile.js';
