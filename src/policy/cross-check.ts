// Checks that need the whole document: unique names, CIDRs and interfaces
// claimed by two tenants, references to tenants, plans and classes. They run
// on the raw parsed YAML (defensively, skipping what the schema rejects
// anyway) so that a document with a type error still gets every duplicate
// and dangling reference reported in the same pass.
import { formatCidr, parseCidr } from './cidr.js';
import { DEFAULT_CLASS } from './schema.js';

export interface RawIssue {
  path: (string | number)[];
  message: string;
}

type Obj = Record<string, unknown>;
const obj = (x: unknown): Obj | undefined => (x !== null && typeof x === 'object' && !Array.isArray(x) ? (x as Obj) : undefined);
const list = (x: unknown): unknown[] => (Array.isArray(x) ? x : []);
const str = (x: unknown): string | undefined => (typeof x === 'string' ? x : undefined);

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(String(seg))) out += out === '' ? String(seg) : `.${String(seg)}`;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out === '' ? '(document)' : out;
}

function known(names: Iterable<string>): string {
  const all = [...names];
  if (all.length === 0) return 'none are defined';
  const shown = all.slice(0, 10).map((n) => `"${n}"`).join(', ');
  return `defined: ${shown}${all.length > 10 ? `, ... (${all.length} in all)` : ''}`;
}

/** Reports every later item whose key() equals an earlier one's. */
function uniqueBy(
  issues: RawIssue[],
  items: unknown[],
  base: (string | number)[],
  key: (item: Obj) => string | undefined,
  field: string | undefined,
  what: (k: string, firstPath: string) => string,
): Map<string, number> {
  const seen = new Map<string, number>();
  items.forEach((raw, i) => {
    const o = obj(raw);
    const k = o && key(o);
    if (k === undefined) return;
    const first = seen.get(k);
    if (first === undefined) seen.set(k, i);
    else issues.push({ path: field ? [...base, i, field] : [...base, i], message: what(k, formatPath([...base, first])) });
  });
  return seen;
}

function canonicalCidr(x: unknown): string | undefined {
  if (typeof x !== 'string') return undefined;
  try {
    return formatCidr(parseCidr(x));
  } catch {
    return undefined; // the schema reports it
  }
}

export function crossCheck(doc: unknown): RawIssue[] {
  const issues: RawIssue[] = [];
  const root = obj(doc);
  if (!root) return issues;

  // metering
  const metering = obj(root.metering);
  uniqueBy(issues, list(metering?.interfaces), ['metering', 'interfaces'], (o) => str(o.name), 'name',
    (k, first) => `interface "${k}" is listed twice (first at ${first})`);

  // tenants
  const tenants = list(root.tenants);
  const tenantNames = uniqueBy(issues, tenants, ['tenants'], (o) => str(o.name), 'name',
    (k, first) => `duplicate tenant name "${k}" (first defined at ${first})`);

  const cidrOwner = new Map<string, { tenant: number; path: string }>();
  const ifaceOwner = new Map<string, { tenant: number; path: string }>();
  const cgroupOwner = new Map<string, { tenant: number; path: string }>();
  const claim = (
    owners: Map<string, { tenant: number; path: string }>,
    key: string | undefined,
    tenant: number,
    path: (string | number)[],
    what: string,
  ): void => {
    if (key === undefined) return;
    const prev = owners.get(key);
    if (!prev) {
      owners.set(key, { tenant, path: formatPath(path) });
    } else if (prev.tenant === tenant) {
      issues.push({ path, message: `${what} ${key} is listed twice in this tenant (first at ${prev.path})` });
    } else {
      const owner = str(obj(tenants[prev.tenant])?.name) ?? `tenants[${prev.tenant}]`;
      issues.push({ path, message: `${what} ${key} is already claimed by tenant "${owner}" (${prev.path}); a ${what} belongs to one tenant` });
    }
  };
  tenants.forEach((raw, i) => {
    const sel = obj(obj(raw)?.selectors);
    if (!sel) return;
    list(sel.cidrs).forEach((c, j) => claim(cidrOwner, canonicalCidr(c), i, ['tenants', i, 'selectors', 'cidrs', j], 'CIDR'));
    list(sel.interfaces).forEach((n, j) => claim(ifaceOwner, str(n), i, ['tenants', i, 'selectors', 'interfaces', j], 'interface'));
    list(sel.cgroups).forEach((g, j) => claim(cgroupOwner, str(g), i, ['tenants', i, 'selectors', 'cgroups', j], 'cgroup glob'));
  });

  // classes and plans: names first, so references can be checked
  const classes = list(root.classes);
  const classNames = uniqueBy(issues, classes, ['classes'], (o) => str(o.name), 'name',
    (k, first) => `duplicate class name "${k}" (first defined at ${first})`);
  const classKnown = new Set([...classNames.keys(), DEFAULT_CLASS]);
  const checkClass = (x: unknown, path: (string | number)[]): void => {
    const c = str(x);
    if (c !== undefined && !classKnown.has(c)) issues.push({ path, message: `unknown class "${c}"; ${known(classKnown)}` });
  };
  /** A free class's traffic is never charged: a price or budget on it is a mistake. */
  const checkBillable = (x: unknown, path: (string | number)[], what: string): void => {
    const c = str(x);
    const i = c === undefined ? undefined : classNames.get(c);
    if (i !== undefined && obj(classes[i])?.billable === false) {
      issues.push({ path, message: `class "${c}" is not billable (classes[${i}].billable is false); ${what}` });
    }
  };
  const checkTenant = (x: unknown, path: (string | number)[]): void => {
    const t = str(x);
    if (t !== undefined && !tenantNames.has(t)) issues.push({ path, message: `unknown tenant "${t}"; ${known(tenantNames.keys())}` });
  };
  classes.forEach((raw, i) => {
    const m = obj(obj(raw)?.match);
    list(m?.cidrs).forEach((c, j) => {
      const k = canonicalCidr(c);
      const first = list(m?.cidrs).findIndex((x) => canonicalCidr(x) === k);
      if (k !== undefined && first < j) issues.push({ path: ['classes', i, 'match', 'cidrs', j], message: `CIDR ${k} is listed twice (first at classes[${i}].match.cidrs[${first}])` });
    });
  });

  const plans = list(root.plans);
  const planNames = uniqueBy(issues, plans, ['plans'], (o) => str(o.name), 'name',
    (k, first) => `duplicate plan name "${k}" (first defined at ${first})`);
  plans.forEach((raw, i) => {
    const p = obj(raw);
    if (!p) return;
    const priced = new Map<string, number>();
    list(p.rates).forEach((r, j) => {
      const rate = obj(r);
      if (!rate) return;
      checkClass(rate.class, ['plans', i, 'rates', j, 'class']);
      checkBillable(rate.class, ['plans', i, 'rates', j, 'class'], 'a plan cannot price it');
      const c = str(rate.class);
      const d = str(rate.direction);
      if (c === undefined || d === undefined) return;
      for (const dir of d === 'both' ? ['ingress', 'egress'] : [d]) {
        const k = `${c}/${dir}`;
        const first = priced.get(k);
        if (first !== undefined) {
          issues.push({ path: ['plans', i, 'rates', j], message: `class "${c}" ${dir} is already priced by plans[${i}].rates[${first}]` });
          break;
        }
        priced.set(k, j);
      }
    });
    const p95 = obj(p.percentile95);
    if (p95) {
      checkClass(p95.class, ['plans', i, 'percentile95', 'class']);
      checkBillable(p95.class, ['plans', i, 'percentile95', 'class'], 'a plan cannot price it');
    }
  });

  tenants.forEach((raw, i) => {
    const plan = str(obj(raw)?.plan);
    if (plan === undefined) return;
    if (!planNames.has(plan)) {
      issues.push({
        path: ['tenants', i, 'plan'],
        message: root.plans === undefined ? `plan "${plan}" is not defined: the document has no plans section` : `unknown plan "${plan}"; ${known(planNames.keys())}`,
      });
    }
  });

  // quotas
  const quotaKeys = new Map<string, number>();
  list(root.quotas).forEach((raw, i) => {
    const q = obj(raw);
    if (!q) return;
    checkTenant(q.tenant, ['quotas', i, 'tenant']);
    checkClass(q.class, ['quotas', i, 'class']);
    checkBillable(q.class, ['quotas', i, 'class'], 'its traffic is never counted against a quota');
    const k = JSON.stringify([q.tenant, q.class ?? '*', q.direction ?? 'both', q.period ?? 'month']);
    const first = quotaKeys.get(k);
    if (first !== undefined) issues.push({ path: ['quotas', i], message: `same tenant, class, direction and period as quotas[${first}]` });
    else quotaKeys.set(k, i);
  });

  // isolation
  const scopes = new Map<string, number>();
  list(root.isolation).forEach((raw, i) => {
    const s = obj(raw);
    if (!s) return;
    checkTenant(s.tenant, ['isolation', i, 'tenant']);
    const k = JSON.stringify([s.tenant, s.containers ?? null]);
    const first = scopes.get(k);
    if (first !== undefined) issues.push({ path: ['isolation', i], message: `same tenant and containers as isolation[${first}]; merge them` });
    else scopes.set(k, i);
  });

  // security
  const sec = obj(root.security);
  if (sec) {
    const rules = list(sec.rules);
    uniqueBy(issues, rules, ['security', 'rules'], (o) => str(o.name), 'name', (k, first) => `duplicate rule name "${k}" (first defined at ${first})`);
    rules.forEach((r, i) => checkTenant(obj(r)?.tenant, ['security', 'rules', i, 'tenant']));
    const limits = list(sec.rateLimits);
    uniqueBy(issues, limits, ['security', 'rateLimits'], (o) => str(o.name), 'name', (k, first) => `duplicate rate limit name "${k}" (first defined at ${first})`);
    limits.forEach((r, i) => checkTenant(obj(r)?.tenant, ['security', 'rateLimits', i, 'tenant']));
    const sigs = list(obj(sec.l7)?.signatures);
    uniqueBy(issues, sigs, ['security', 'l7', 'signatures'], (o) => str(o.name), 'name', (k, first) => `duplicate signature name "${k}" (first defined at ${first})`);
  }
  return issues;
}
