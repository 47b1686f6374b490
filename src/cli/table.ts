// Output formats: plain aligned tables for terminals (numbers right-aligned);
// CSV is src/csv.ts.
export function table(headers: string[], rows: Array<Array<string | number | bigint | null>>): string {
  const cells = rows.map((r) => r.map((c) => (c === null ? '-' : String(c))));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number' || typeof r[i] === 'bigint'));
  const width = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((c, i) => (numeric[i] ? c.padStart(width[i]) : c.padEnd(width[i]))).join('  ').trimEnd();
  return [fmt(headers), fmt(width.map((w) => '-'.repeat(w))), ...cells.map(fmt)].join('\n');
}

/** 1234567 -> "1.2 MB" (decimal units, as on invoices). */
export function humanBytes(n: bigint | number): string {
  const v = Number(n);
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let x = v;
  while (x >= 1000 && i < units.length - 1) {
    x /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${x.toFixed(1)} ${units[i]}`;
}
