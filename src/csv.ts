// CSV for spreadsheets and scripts: the CLI's usage tables and invoices.
/**
 * CSV as RFC 4180 has it: a header line, CRLF line ends, and a field that
 * holds a comma, a double quote or a line break quoted, with quotes doubled.
 * null is the empty field.
 */
export function csv(headers: string[], rows: Array<Array<string | number | bigint | boolean | null>>): string {
  const field = (v: string | number | bigint | boolean | null): string => {
    const text = v === null ? '' : String(v);
    return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  return [headers, ...rows].map((r) => `${r.map(field).join(',')}\r\n`).join('');
}
