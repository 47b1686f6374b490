// Host and boot identity. A boot id changes on every boot, so together with
// the kernel id of a counter map it names one run of monotonic counters (an
// epoch, see docs/ledger.md).

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { LedgerError } from './errors.js';

const BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The kernel's random boot id (a UUID), fresh on every boot. */
export function bootId(path: string = BOOT_ID_PATH): string {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new LedgerError('OPEN_FAILED', `cannot read the boot id from ${path}: ${(cause as Error).message}`, { cause });
  }
  const id = raw.trim().toLowerCase();
  // A malformed id would silently merge or split epochs; refuse it instead.
  if (!UUID.test(id)) throw new LedgerError('OPEN_FAILED', `${path} does not hold a UUID boot id: ${JSON.stringify(raw)}`);
  return id;
}

/**
 * The default host id: /etc/machine-id (stable across reboots and renames),
 * falling back to the hostname on systems without one.
 */
export function defaultHostId(machineIdPath = '/etc/machine-id'): string {
  try {
    const id = readFileSync(machineIdPath, 'utf8').trim();
    if (id !== '') return id;
  } catch {
    // no machine-id (minimal containers): the hostname is the best we have
  }
  const name = hostname().trim();
  if (name === '') throw new LedgerError('OPEN_FAILED', 'no host id: /etc/machine-id is missing and the hostname is empty; pass opts.hostId');
  return name;
}
