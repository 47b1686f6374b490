// The shape of a doctor run, and the table the CLI prints from it.

export interface DoctorCheck {
  /** Stable identifier, e.g. "bpffs" or "prog.xdp.generic". */
  name: string;
  /** The feature is present / the probe loaded and attached. */
  ok: boolean;
  /** Whether tollgate's foundation needs it; the report's ok is the AND of these. */
  required: boolean;
  /** What was found: version, mount point, errno, verifier summary. */
  detail: string;
  /** A command or step that fixes a failed check, when there is one. */
  fix?: string;
}

export interface DoctorReport {
  ok: boolean;
  checks: DoctorCheck[];
}

export function makeReport(checks: DoctorCheck[]): DoctorReport {
  return { ok: checks.every((c) => c.ok || !c.required), checks };
}

/** Required checks say ok/FAIL; informational ones say yes/no (a "no" is not a problem). */
export function statusOf(c: DoctorCheck): string {
  if (c.required) return c.ok ? 'ok' : 'FAIL';
  return c.ok ? 'yes' : 'no';
}

/**
 * One aligned line per check (status, name, required/info, detail), then a
 * final line: either that everything required is present, or which required
 * checks failed and the fixes to run.
 */
export function formatDoctorTable(report: DoctorReport): string {
  const rows = report.checks.map((c) => [statusOf(c), c.name, c.required ? 'required' : 'info', oneLine(c.detail)]);
  const headers = ['STATUS', 'CHECK', 'KIND', 'DETAIL'];
  const width = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(width[i]))).join('  ').trimEnd();
  const lines = [fmt(headers), ...rows.map(fmt)];
  const failed = report.checks.filter((c) => c.required && !c.ok);
  if (failed.length === 0) {
    lines.push('All required checks passed: this host can run tollgate.');
  } else {
    const fixes = [...new Set(failed.map((c) => c.fix).filter((f): f is string => !!f))];
    const names = failed.map((c) => c.name).join(', ');
    lines.push(
      fixes.length > 0
        ? `${failed.length} required check(s) failed (${names}); fix with: ${fixes.join('; ')}`
        : `${failed.length} required check(s) failed (${names}); this host cannot run tollgate as is.`,
    );
  }
  return lines.join('\n');
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' | ');
}
