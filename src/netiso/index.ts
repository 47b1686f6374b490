// Network isolation of containers: connection limits and destination rules
// (bpf/progs/netiso.bpf.c). The agent drives NetIsolation.
export { NetIsolation, type NetIsolationOptions, type NetAttachment, type NetApplyResult, type GroupConnections } from './netiso.js';
export { NetIsoDatapath, NETISO_LINKS, type NetAttachResult } from './datapath.js';
export {
  compileNetIsolation, generationEntries, kernelScopeId, policyScopeIndex, destinationVerdict, compiledVerdict, netDestination, NetIsoCompileError,
  type NetContainer, type NetPlan, type CompiledScope, type CompiledGroup, type CompiledRule, type NetDestination, type NetVerdict, type NetAction,
} from './compile.js';
export { describeNetEvent, type NetEventNames } from './events.js';
