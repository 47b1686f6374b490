// npm run bench -- <name> [options]: side-by-side benchmarks that print ratios.
const benches: Record<string, () => Promise<{ main(argv: string[]): Promise<void> }>> = {
  metering: () => import('./metering.js'),
  pmacct: () => import('./pmacct.js'),
  flows: () => import('./flows.js'),
  security: () => import('./security.js'),
  events: () => import('./events.js'),
  isolation: () => import('./isolation.js'),
};

const [name, ...rest] = process.argv.slice(2);
if (!name || !(name in benches)) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(benches).join('|')}> [options]\n`);
  process.exit(2);
}
const mod = await benches[name]();
await mod.main(rest);
