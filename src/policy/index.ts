// The policy document: schema, loading with precise errors, compilation.
export { parsePolicy, loadPolicyFile, PolicyError, type PolicyIssue } from './load.js';
export {
  policySchema, securityRulesSchema, emptySecurity, ifnameProblem, ENFORCED_SECTIONS, RESERVED_TENANT, DEFAULT_CLASS,
  PROTOCOLS, ATTACH_MODES,
  type Policy, type PolicyInput, type MeteringSection, type MeteringInterface, type AttachMode, type Tenant,
  type TrafficClass, type Plan, type Quota, type AlertsSection, type IsolationScope, type SecuritySection, type SecurityRules, type PortRange,
} from './schema.js';
export {
  compileMetering, diffEntries, emptyClassGen, ifaceSlot, entryId, lpmKey, CompileError,
  type MeteringPlan, type MeteringContext, type MapEntry, type EntryDiff,
} from './compile-metering.js';
export { cgroupMatcher, compileCgroupGlob, cgroupGlobProblem, cgroupCoveringRoot } from './cgroup-match.js';
export { policyJsonSchema } from './json-schema.js';
export { parseCidr, normalizeCidr, formatCidr, parseAddress, formatAddress, networkOf, cidrContains, cidrOverlaps, CidrError, type Cidr, type Family } from './cidr.js';
export {
  parseDuration, parseSize, parseRate, parseDecimal, formatDuration, UnitError,
  type Millis, type Bytes, type BitsPerSecond,
} from './units.js';
