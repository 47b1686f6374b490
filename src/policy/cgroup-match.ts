// Tenant cgroup selectors are path globs relative to the cgroup2 mount:
// "*" matches within one path segment, "?" one character of a segment, and a
// whole "**" segment matches zero or more segments. A glob matches the WHOLE
// path: "/tenants/acme" does not select "/tenants/acme/web", "/tenants/acme/**"
// selects both.

/** Why a glob is not acceptable, or undefined when it is. */
export function cgroupGlobProblem(glob: string): string | undefined {
  if (typeof glob !== 'string' || !glob.startsWith('/')) return 'must be a path relative to the cgroup2 mount starting with "/", e.g. "/tenants/acme/**"';
  if (/[\0\n\r]/.test(glob)) return 'must not contain NUL or line breaks';
  if (glob === '/') return undefined;
  const segs = glob.replace(/\/$/, '').split('/').slice(1);
  for (const seg of segs) {
    if (seg === '') return 'has an empty path segment ("//")';
    if (seg === '.' || seg === '..') return `must not contain "${seg}" segments`;
    if (seg.includes('**') && seg !== '**') return '"**" must be a whole path segment ("/a/**/b"), use "*" within a segment';
  }
  return undefined;
}

function segmentRegex(seg: string): string {
  let out = '';
  for (const ch of seg) {
    if (ch === '*') out += '[^/]*';
    else if (ch === '?') out += '[^/]';
    else out += ch.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
  }
  return out;
}

/** Compiles one glob to an anchored RegExp (throws on a bad glob). */
export function compileCgroupGlob(glob: string): RegExp {
  const problem = cgroupGlobProblem(glob);
  if (problem) throw new Error(`cgroup glob "${glob}" ${problem}`);
  const segs = glob.replace(/\/$/, '').split('/').slice(1).filter((s) => s !== '');
  let re = '';
  for (const seg of segs) {
    // "/**" may match nothing at all, so the slash belongs to the repetition.
    re += seg === '**' ? '(?:/[^/]+)*' : `/${segmentRegex(seg)}`;
  }
  return new RegExp(`^${re === '' ? '/' : re}$`);
}

function normalizePath(path: string): string {
  const p = path.replace(/\/+/g, '/');
  return p.length > 1 ? p.replace(/\/$/, '') : p;
}

/**
 * A predicate telling whether a cgroup path (relative to the cgroup2 mount,
 * e.g. "/tenants/acme/web") is selected by any of the globs.
 */
export function cgroupMatcher(globs: readonly string[]): (cgroupPath: string) => boolean {
  const res = globs.map(compileCgroupGlob);
  return (cgroupPath: string): boolean => {
    const p = normalizePath(cgroupPath);
    // "/**" is compiled to match "" for the root; the root path itself is "/".
    return res.some((r) => r.test(p) || (p === '/' && r.test('')));
  };
}

/**
 * The deepest cgroup that contains every cgroup the globs can select: where
 * cgroup_skb programs attach so that cgroups created later under it are
 * covered without the agent. A glob's literal part ends before its first
 * segment with a wildcard; "/a/b" (no wildcard) can select only itself, so
 * its own path counts. Undefined for no globs.
 */
export function cgroupCoveringRoot(globs: readonly string[]): string | undefined {
  let common: string[] | undefined;
  for (const g of globs) {
    const problem = cgroupGlobProblem(g);
    if (problem) throw new Error(`cgroup glob "${g}" ${problem}`);
    const segs = normalizePath(g).split('/').slice(1).filter((s) => s !== '');
    const wild = segs.findIndex((s) => /[*?]/.test(s));
    const literal = wild < 0 ? segs : segs.slice(0, wild);
    if (common === undefined) common = literal;
    else {
      let i = 0;
      while (i < common.length && i < literal.length && common[i] === literal[i]) i++;
      common = common.slice(0, i);
    }
  }
  return common === undefined ? undefined : `/${common.join('/')}`;
}
