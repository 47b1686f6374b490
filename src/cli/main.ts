// The `tollgate` command.
import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import pino from 'pino';
import { defaults } from '../paths.js';
import { stringifyExact } from '../json.js';
import { callAgent } from '../api/client.js';
import { table, humanBytes } from './table.js';

const program = new Command();
program
  .name('tollgate')
  .description('eBPF node agent: per-tenant traffic metering for billing, isolation and security policy')
  .option('--socket <path>', "the agent's API socket", defaults.socket)
  .showHelpAfterError();

function positiveInt(name: string, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < 1 || n > max) throw new InvalidArgumentError(`${name} must be an integer from 1 to ${max}`);
    return n;
  };
}

const socket = (): string => program.opts<{ socket: string }>().socket;
const print = (v: unknown): void => {
  process.stdout.write(`${stringifyExact(v, 2)}\n`);
};

program
  .command('agent')
  .description('run the node agent: attach metering, export to the ledger, serve the API')
  .requiredOption('-c, --config <file>', 'policy document (YAML)')
  .option('--db <file>', 'SQLite ledger', defaults.db)
  .option('--pin-root <dir>', 'bpffs directory for pinned maps and links', defaults.pinRoot)
  .option('--interval <duration>', 'export interval (overrides metering.interval), at least 1s')
  .option("--netns <name>", "attach to interfaces of this network namespace (e.g. the lab host); the API stays in the agent's own")
  .option('--listen <host:port>', 'also serve the API and /metrics on this loopback TCP address')
  .option('--max-tenants <n>', 'size of the tenant counter array', positiveInt('--max-tenants', 1 << 20))
  .addOption(new Option('--log-level <level>', 'log level').choices(['debug', 'info', 'warn', 'error']).default('info'))
  .action(async (o: { config: string; db: string; pinRoot: string; interval?: string; netns?: string; listen?: string; maxTenants?: number; logLevel: string }) => {
    const { startAgent } = await import('../daemon/agent.js');
    const logger = pino({ name: 'tollgate', level: o.logLevel });
    const agent = await startAgent({ ...o, socket: socket(), logger });
    const shutdown = (sig: string) => {
      logger.info({ sig }, 'stopping: final export, pins stay');
      agent.stop().catch((err: unknown) => logger.error({ err }, 'stop failed'));
    };
    process.once('SIGINT', () => shutdown('SIGINT'));
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGHUP', () => {
      agent.reload().catch((err: unknown) => logger.error({ err: (err as Error).message }, 'policy not applied, nothing changed'));
    });
    await agent.done;
  });

program
  .command('flush')
  .description('make the agent export its counters to the ledger now')
  .option('--json', 'machine-readable output')
  .action(async (o: { json?: boolean }) => {
    const r = await callAgent<{ at: string; rows: number; packets: number; bytes: number; durationMs: number }>(socket(), 'POST', '/v1/flush');
    if (o.json) print(r);
    else console.log(`exported ${r.rows} rows (${r.packets} packets, ${humanBytes(r.bytes)}) in ${r.durationMs.toFixed(1)} ms`);
  });

program
  .command('usage')
  .description('metered usage per tenant and direction (seen from the tenant), from the ledger')
  .option('--tenant <name>', 'only this tenant')
  .option('--since <time>', 'ISO time or age (15m, 2h, 7d)')
  .option('--until <time>', 'ISO time or age')
  .option('--json', 'machine-readable output')
  .action(async (o: { tenant?: string; since?: string; until?: string; json?: boolean }) => {
    const q = new URLSearchParams();
    if (o.tenant) q.set('tenant', o.tenant);
    if (o.since) q.set('since', o.since);
    if (o.until) q.set('until', o.until);
    const r = await callAgent<{ rows: Array<{ tenant: string; direction: string; packets: number; bytes: number; first: string | null; last: string | null }> }>(
      socket(), 'GET', `/v1/usage${q.size ? `?${q}` : ''}`);
    if (o.json) return print(r.rows);
    console.log(table(['TENANT', 'DIRECTION', 'PACKETS', 'BYTES', '', 'LAST'],
      r.rows.map((x) => [x.tenant, x.direction, x.packets, x.bytes, humanBytes(x.bytes), x.last])));
  });

program
  .command('reload')
  .description('make the agent re-read and apply its policy file (same as SIGHUP); a bad policy changes nothing')
  .action(async () => print(await callAgent(socket(), 'POST', '/v1/reload')));

program
  .command('status')
  .description("the agent's attachments, generation and last export")
  .action(async () => print(await callAgent(socket(), 'GET', '/v1/status')));

program
  .command('doctor')
  .description('check that this host supports everything tollgate needs')
  .option('--json', 'machine-readable output')
  .action(async (o: { json?: boolean }) => {
    const { runDoctor, formatDoctorTable } = await import('../doctor/index.js');
    const report = await runDoctor();
    if (o.json) print(report);
    else console.log(formatDoctorTable(report));
    if (!report.ok) process.exitCode = 1;
  });

const policyCmd = program.command('policy').description('policy documents');
policyCmd
  .command('check <file>')
  .description('validate a policy document; errors name the field and line')
  .action(async (file: string) => {
    const { loadPolicyFile } = await import('../policy/index.js');
    const p = loadPolicyFile(file);
    console.log(`${file}: ok (${p.tenants.length} tenants)`);
  });
policyCmd
  .command('schema')
  .description('print the policy document as JSON Schema (for editors and linters)')
  .action(async () => {
    const { policyJsonSchema } = await import('../policy/index.js');
    print(policyJsonSchema());
  });

const lab = program.command('lab').description('a network-namespace lab: a host, tenants, internet, attacker, honeypot');
lab
  .command('up')
  .option('--prefix <p>', 'name prefix (1-6 chars) so several labs coexist', 'tg')
  .option('--tenants <n>', 'number of tenant containers', positiveInt('--tenants', 50), 3)
  .option('--write-policy <file>', 'write the example policy for this lab')
  .option('--json', 'print the topology as JSON')
  .action(async (o: { prefix: string; tenants: number; writePolicy?: string; json?: boolean }) => {
    const { labUp, examplePolicyYaml } = await import('../../lab/index.js');
    const topo = await labUp({ prefix: o.prefix, tenants: o.tenants });
    if (o.writePolicy) writeFileSync(o.writePolicy, examplePolicyYaml(topo));
    if (o.json) return print(topo);
    console.log(table(['NODE', 'ROLE', 'NETNS', 'HOST IFACE', 'IPV4', 'IPV6', 'CGROUP'],
      topo.nodes.map((n) => [n.name, n.role, n.netns, n.hostIface, n.ipv4, n.ipv6, n.cgroup])));
  });
lab
  .command('down')
  .option('--prefix <p>', 'name prefix', 'tg')
  .action(async (o: { prefix: string }) => {
    const { labDown } = await import('../../lab/index.js');
    await labDown(o.prefix);
  });
lab
  .command('status')
  .option('--prefix <p>', 'name prefix', 'tg')
  .option('--json', 'machine-readable output')
  .action(async (o: { prefix: string; json?: boolean }) => {
    const { labStatus } = await import('../../lab/index.js');
    print(await labStatus(o.prefix));
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  const e = err as Error & { issues?: unknown };
  process.stderr.write(`tollgate: ${e.message}\n`);
  process.exitCode = process.exitCode || 1;
});
