// The lab's shape, computed from { prefix, tenants } alone: every name, address
// and MAC is a pure function of its inputs, so `lab up`, `lab down` after a crash,
// tests and benchmarks all agree on what a lab called `prefix` consists of
// without reading any state.

export type NodeRole = 'host' | 'tenant' | 'internet' | 'attacker' | 'honeypot';
export type EndpointRole = Exclude<NodeRole, 'host'>;

/** The lab's router: a network namespace of its own with one veth per node. */
export interface HostNode {
  name: 'host';
  role: 'host';
  netns: string;
  hostIface: null;
  ipv4: null;
  ipv6: null;
  gatewayIpv4: null;
  gatewayIpv6: null;
  cgroup: null;
  mac: null;
  gatewayMac: null;
}

/** A node joined to the host by a veth pair: `eth0` inside `netns`, `hostIface` in the host netns. */
export interface EndpointNode {
  name: string;
  role: EndpointRole;
  netns: string;
  /** Host-side veth in the host netns (where metering attaches). */
  hostIface: string;
  /** The node's own addresses, without prefix length. */
  ipv4: string;
  ipv6: string;
  /** Host-side addresses: the node's default gateways. */
  gatewayIpv4: string;
  gatewayIpv6: string;
  prefixLenV4: 24;
  prefixLenV6: 64;
  /** Absolute cgroup v2 path the node's processes run in, or null (clients). */
  cgroup: string | null;
  /** MAC of the node's eth0. */
  mac: string;
  /** MAC of the host-side veth (the Ethernet destination of everything the node sends). */
  gatewayMac: string;
  /** 1-based tenant index for tenants, null otherwise. */
  tenant: number | null;
}

export type LabNode = HostNode | EndpointNode;

export interface Topology {
  prefix: string;
  hostNetns: string;
  /** `<cgroup2 mount>/tollgate-lab/<prefix>`. */
  cgroupRoot: string;
  /** The cgroup2 mount the paths are under. */
  cgroupMount: string;
  /** TCP port of the HTTP service on tenants and the honeypot. */
  servicePort: number;
  nodes: LabNode[];
}

export interface TopologyOptions {
  prefix?: string;
  tenants?: number;
  /** cgroup2 mount point, e.g. /sys/fs/cgroup/unified (hybrid) or /sys/fs/cgroup. */
  cgroupMount: string;
  servicePort?: number;
}

export const MAX_TENANTS = 50;
/** Prefixes covering every lab tenant's subnets (198.18.i.0/24, 2001:2:0:i::/64 for i <= MAX_TENANTS) and nothing else in the lab. */
export const LAB_TENANT_V4 = '198.18.0.0/16';
export const LAB_TENANT_V6 = '2001:2::/56';
export const DEFAULT_PREFIX = 'tg';
export const DEFAULT_TENANTS = 3;
export const DEFAULT_SERVICE_PORT = 8080;
/** Folder under the cgroup2 mount that holds every lab's cgroups. */
export const CGROUP_DIR = 'tollgate-lab';

export class LabConfigError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'LabConfigError';
  }
}

// Interface names are limited to 15 characters; the longest we build is
// `${prefix}t${50}h` = 6 + 4, which leaves room for suffixes other modules add.
const PREFIX_RE = /^[a-z][a-z0-9]{0,5}$/;

export function validatePrefix(prefix: unknown): string {
  if (typeof prefix !== 'string' || !PREFIX_RE.test(prefix)) {
    throw new LabConfigError(
      'prefix',
      `must be 1-6 characters [a-z0-9] starting with a letter, got ${JSON.stringify(prefix)}`,
    );
  }
  return prefix;
}

export function validateTenants(tenants: unknown): number {
  if (typeof tenants !== 'number' || !Number.isInteger(tenants) || tenants < 1 || tenants > MAX_TENANTS) {
    throw new LabConfigError('tenants', `must be an integer from 1 to ${MAX_TENANTS}, got ${JSON.stringify(tenants)}`);
  }
  return tenants;
}

function validatePort(port: unknown): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new LabConfigError('servicePort', `must be an integer from 1 to 65535, got ${JSON.stringify(port)}`);
  }
  return port;
}

function validateMount(mount: unknown): string {
  if (typeof mount !== 'string' || !mount.startsWith('/') || mount.includes('\0')) {
    throw new LabConfigError('cgroupMount', `must be an absolute path, got ${JSON.stringify(mount)}`);
  }
  return mount.length > 1 ? mount.replace(/\/+$/, '') : mount;
}

// Locally administered unicast MACs: 02:74:67 ("tg") : role : index : side.
// Labs with different prefixes never share an L2 segment, so reuse across labs is harmless.
const ROLE_CODE: Record<EndpointRole, number> = { tenant: 1, internet: 2, attacker: 3, honeypot: 4 };
function mac(role: EndpointRole, index: number, side: 'node' | 'host'): string {
  const b = [0x02, 0x74, 0x67, ROLE_CODE[role], index, side === 'host' ? 1 : 2];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export function hostNetnsName(prefix: string): string {
  return `${prefix}-host`;
}

/**
 * Every netns name a lab with this prefix may own. Used by `labDown` to find
 * leftovers without a state file; deliberately exact so it never matches a
 * namespace that merely starts with the same letters.
 */
export function isLabNetns(prefix: string, name: string): boolean {
  if (!name.startsWith(`${prefix}-`)) return false;
  const rest = name.slice(prefix.length + 1);
  if (rest === 'host' || rest === 'inet' || rest === 'atk' || rest === 'hp') return true;
  const m = /^t([1-9][0-9]?)$/.exec(rest);
  return m !== null && Number(m[1]) <= MAX_TENANTS;
}

export function computeTopology(opts: TopologyOptions): Topology {
  const prefix = validatePrefix(opts.prefix ?? DEFAULT_PREFIX);
  const tenants = validateTenants(opts.tenants ?? DEFAULT_TENANTS);
  const cgroupMount = validateMount(opts.cgroupMount);
  const servicePort = validatePort(opts.servicePort ?? DEFAULT_SERVICE_PORT);
  const cgroupRoot = `${cgroupMount === '/' ? '' : cgroupMount}/${CGROUP_DIR}/${prefix}`;

  const host: HostNode = {
    name: 'host',
    role: 'host',
    netns: hostNetnsName(prefix),
    hostIface: null,
    ipv4: null,
    ipv6: null,
    gatewayIpv4: null,
    gatewayIpv6: null,
    cgroup: null,
    mac: null,
    gatewayMac: null,
  };
  const nodes: LabNode[] = [host];

  const endpoint = (
    name: string,
    role: EndpointRole,
    index: number,
    netnsSuffix: string,
    ifaceTag: string,
    v4Net: string,
    v6Net: string,
    cgroup: string | null,
  ): EndpointNode => ({
    name,
    role,
    netns: `${prefix}-${netnsSuffix}`,
    hostIface: `${prefix}${ifaceTag}h`,
    ipv4: `${v4Net}.2`,
    ipv6: `${v6Net}::2`,
    gatewayIpv4: `${v4Net}.1`,
    gatewayIpv6: `${v6Net}::1`,
    prefixLenV4: 24,
    prefixLenV6: 64,
    cgroup,
    mac: mac(role, index, 'node'),
    gatewayMac: mac(role, index, 'host'),
    tenant: role === 'tenant' ? index : null,
  });

  for (let i = 1; i <= tenants; i++) {
    nodes.push(
      endpoint(`tenant-${i}`, 'tenant', i, `t${i}`, `t${i}`, `198.18.${i}`, `2001:2:0:${i}`, `${cgroupRoot}/tenant-${i}`),
    );
  }
  nodes.push(endpoint('internet', 'internet', 0, 'inet', 'in', '198.19.0', '2001:2:0:100', null));
  nodes.push(endpoint('attacker', 'attacker', 0, 'atk', 'at', '198.19.1', '2001:2:0:101', null));
  nodes.push(endpoint('honeypot', 'honeypot', 0, 'hp', 'hp', '198.19.2', '2001:2:0:102', `${cgroupRoot}/honeypot`));

  return { prefix, hostNetns: host.netns, cgroupRoot, cgroupMount, servicePort, nodes };
}

export function endpoints(topology: Topology): EndpointNode[] {
  return topology.nodes.filter((n): n is EndpointNode => n.role !== 'host');
}

export function tenantNodes(topology: Topology): EndpointNode[] {
  return endpoints(topology).filter((n) => n.role === 'tenant');
}

/** The endpoint called `name` (e.g. 'tenant-1', 'internet'); throws when absent. */
export function findNode(topology: Topology, name: string): EndpointNode {
  const n = endpoints(topology).find((x) => x.name === name);
  if (!n) {
    const known = endpoints(topology).map((x) => x.name).join(', ');
    throw new LabConfigError('node', `no endpoint node ${JSON.stringify(name)} in lab ${topology.prefix} (have ${known})`);
  }
  return n;
}

/** The endpoint owning an address (v4 or v6, exact match), or undefined. */
export function nodeByAddress(topology: Topology, address: string): EndpointNode | undefined {
  const a = address.toLowerCase();
  return endpoints(topology).find((n) => n.ipv4 === a || n.ipv6 === a);
}

/** Cgroup path relative to the cgroup2 mount, as policies name it. */
export function relativeCgroup(topology: Topology, cgroup: string): string {
  const base = topology.cgroupMount === '/' ? '' : topology.cgroupMount;
  if (!cgroup.startsWith(`${base}/`)) {
    throw new LabConfigError('cgroup', `${cgroup} is not under the cgroup2 mount ${topology.cgroupMount}`);
  }
  return cgroup.slice(base.length);
}

function yamlString(s: string): string {
  // Double-quoted YAML is a superset of JSON strings.
  return JSON.stringify(s);
}

/**
 * The example policy the demo applies: one tenant per lab tenant, selected by
 * its host-side veth, its v4/v6 subnets and its cgroup; metering on every
 * tenant's host-side veth (tc, ingress + egress) with flow analytics; three traffic classes: SSH
 * and DNS with the internet node (standing in for the provider's bastion and
 * resolver) are free management traffic, tenant-to-tenant traffic is free
 * internal traffic, everything else is billable internet traffic.
 */
export function examplePolicyYaml(topology: Topology): string {
  const tenants = tenantNodes(topology);
  const internet = findNode(topology, 'internet');
  const lines: string[] = [
    `# Example policy for lab ${topology.prefix} (generated by lab/topology.ts).`,
    'version: 1',
    'metering:',
    '  interval: 10s',
    '  interfaces:',
    ...tenants.map((t) => `    - { name: ${t.hostIface}, mode: tc }`),
    '  flows: { enabled: true, maxFlows: 65536, interval: 5s, retention: 1h }',
    'classes:',
    '  - name: management',
    '    billable: false',
    `    match: { cidrs: [${internet.ipv4}/32, ${yamlString(`${internet.ipv6}/128`)}], protocols: [tcp, udp], ports: [22, 53] }`,
    '  - name: internal',
    '    billable: false',
    `    match: { cidrs: [${LAB_TENANT_V4}, ${yamlString(LAB_TENANT_V6)}] }`,
    '  - name: internet',
    '    billable: true',
    'plans:',
    '  - name: lab',
    '    currency: EUR',
    '    rates:',
    '      - { class: internet, direction: both, free: 1MB, pricePerGB: "25" }',
    '    hourly:',
    '      - { name: active hours, basis: active, pricePerHour: "0.01" }',
    '    flatFees:',
    '      - { name: base fee, amount: "10" }',
    'tenants:',
  ];
  for (const t of tenants) {
    const v4 = t.ipv4.replace(/\.2$/, '.0');
    const v6 = t.ipv6.replace(/::2$/, '::');
    lines.push(
      `  - name: ${t.name}`,
      '    plan: lab',
      '    selectors:',
      `      interfaces: [${t.hostIface}]`,
      `      cidrs: [${v4}/${t.prefixLenV4}, ${yamlString(`${v6}/${t.prefixLenV6}`)}]`,
      `      cgroups: [${yamlString(relativeCgroup(topology, t.cgroup!))}]`,
    );
  }
  return lines.join('\n') + '\n';
}
