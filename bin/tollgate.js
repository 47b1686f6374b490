#!/usr/bin/env node
// The package's bin: runs the compiled CLI (npm run build produces dist/).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist', 'src', 'cli', 'main.js');
if (!existsSync(entry)) {
  process.stderr.write(`tollgate: ${entry} is missing; run "npm run build" in ${root} first\n`);
  process.exit(2);
}
await import(pathToFileURL(entry).href);
