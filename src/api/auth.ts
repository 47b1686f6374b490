// Who is calling. The unix socket is the operator's (its file mode is the
// gate). On the loopback TCP listener, once a tokens file is configured,
// every request but /metrics and /v1/health carries `Authorization: Bearer
// <token>`; a token scoped to a tenant reaches only that tenant's invoices.
// The file holds SHA-256 digests, never the tokens themselves.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { parse } from 'yaml';
import { z } from 'zod';
import { ApiError } from './errors.js';

export interface Caller {
  name: string;
  /** Absent: the operator, who sees everything. */
  tenant?: string;
}

const OPERATOR: Caller = { name: 'operator' };

const tokensSchema = z.strictObject({
  tokens: z.array(z.strictObject({
    name: z.string().min(1).max(100),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, { message: 'must be the hex SHA-256 of the token (64 lowercase hex digits); "tollgate token" prints it' }),
    /** Scope: this tenant's invoices only. Absent: operator. */
    tenant: z.string().min(1).optional(),
  })).min(1),
});
export type Tokens = z.output<typeof tokensSchema>['tokens'];

/** Reads and checks a tokens file; an error names the file and the field. */
export function loadTokens(path: string): Tokens {
  let raw: unknown;
  try {
    raw = parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`--tokens ${path}: ${(err as Error).message}`);
  }
  const r = tokensSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new Error(`--tokens ${path}: ${i.path.join('.') || '(document)'}: ${i.message}`);
  }
  const names = new Set<string>();
  r.data.tokens.forEach((t, i) => {
    if (names.has(t.name)) throw new Error(`--tokens ${path}: tokens.${i}.name: "${t.name}" is listed twice`);
    names.add(t.name);
  });
  return r.data.tokens;
}

const digest = (token: string): Buffer => createHash('sha256').update(token).digest();

/** A new random token and the entry for the tokens file. */
export function newToken(name: string, tenant?: string): { token: string; entry: Tokens[number] } {
  const token = `tg_${randomBytes(24).toString('base64url')}`;
  return { token, entry: { name, sha256: digest(token).toString('hex'), ...(tenant ? { tenant } : {}) } };
}

const callers = new WeakMap<FastifyRequest, Caller>();

export function callerOf(req: FastifyRequest): Caller {
  return callers.get(req) ?? OPERATOR;
}

const OPEN_ROUTES = new Set(['/metrics', '/v1/health']);
const TENANT_ROUTE = /^\/v1\/invoices\/[^/?]+(\/[^/?]+)?(\?.*)?$/;

/** Requires a token on every request but the open routes; tenant tokens reach only invoices. */
export function requireTokens(app: FastifyInstance, tokens: Tokens): void {
  const known = tokens.map((t) => ({ ...t, digest: Buffer.from(t.sha256, 'hex') }));
  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0]!;
    if (OPEN_ROUTES.has(path)) return;
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    if (!m) throw new ApiError('UNAUTHORIZED', 'this listener needs "Authorization: Bearer <token>"');
    const d = digest(m[1]!);
    const t = known.find((k) => timingSafeEqual(k.digest, d));
    if (!t) throw new ApiError('UNAUTHORIZED', 'unknown token');
    if (t.tenant !== undefined && !TENANT_ROUTE.test(req.url)) {
      throw new ApiError('FORBIDDEN', `token "${t.name}" is scoped to tenant "${t.tenant}": only its invoices (/v1/invoices/${t.tenant}/...)`);
    }
    callers.set(req, { name: t.name, tenant: t.tenant });
  });
}
