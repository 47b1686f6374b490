// Rules set through the API (PUT /v1/security/rules): they replace the
// policy's security rules (and default action, when given) until DELETE,
// across reloads and restarts, kept in a small JSON file next to the ledger
// (written whole and renamed, so a crash leaves the old file or the new).
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { emptySecurity, securityRulesSchema, type Policy, type SecurityRules } from '../policy/index.js';

export interface Overlay extends SecurityRules {
  /** When it was set (ISO). */
  at: string;
}

export class RulesOverlay {
  #current: Overlay | undefined;

  constructor(readonly path: string) {
    if (!existsSync(path)) return;
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new Error(`${path}: not a rules file (${(err as Error).message}); remove it to go back to the policy's rules`);
    }
    const { at, ...body } = raw as { at?: unknown };
    const parsed = securityRulesSchema.safeParse(body);
    if (!parsed.success) throw new Error(`${path}: ${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message}; remove it to go back to the policy's rules`);
    this.#current = { ...parsed.data, at: typeof at === 'string' ? at : new Date(0).toISOString() };
  }

  get current(): Overlay | undefined {
    return this.#current;
  }

  /** The policy as the firewall applies it: the overlay's rules in place of the document's. */
  effective(doc: Policy, overlay = this.#current): Policy {
    if (!overlay) return doc;
    const security = doc.security ?? emptySecurity();
    return { ...doc, security: { ...security, rules: overlay.rules, defaultAction: overlay.defaultAction ?? security.defaultAction } };
  }

  save(overlay: Overlay): void {
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, JSON.stringify(overlay));
    renameSync(tmp, this.path);
    this.#current = overlay;
  }

  clear(): void {
    rmSync(this.path, { force: true });
    this.#current = undefined;
  }
}
