// An invoice document as CSV (one row per line item, then subtotals and the
// total) and as a self-contained printable HTML page. Both are functions of
// the document alone, so a closed invoice renders byte-identically forever.
import { csv } from '../csv.js';
import type { InvoiceDoc } from './invoice.js';

export const INVOICE_FORMATS = ['json', 'csv', 'html'] as const;
export type InvoiceFormat = (typeof INVOICE_FORMATS)[number];

export function invoiceCsv(doc: InvoiceDoc): string {
  const head = ['tenant', 'period', 'status', 'currency', 'kind', 'class', 'description', 'quantity', 'unit', 'unit_price', 'amount'];
  const base = [doc.tenant, doc.period.id, doc.status, doc.currency];
  return csv(head, [
    ...doc.lines.map((l) => [...base, l.kind, l.class, l.description, l.quantity, l.unit, l.unitPrice, l.amount]),
    ...doc.subtotals.map((s) => [...base, 'subtotal', s.class, s.class === null ? 'plan-wide charges' : `class ${s.class}`, null, null, null, s.amount]),
    [...base, 'total', null, 'total', null, null, null, doc.total],
  ]);
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** Thousands grouping for display only; the value stays the exact decimal text. */
function grouped(amount: string): string {
  const [int, frac] = amount.replace('-', '').split('.');
  const g = int!.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${amount.startsWith('-') ? '-' : ''}${g}${frac === undefined ? '' : `.${frac}`}`;
}

export function invoiceHtml(doc: InvoiceDoc): string {
  const money = (a: string): string => `${grouped(a)} ${esc(doc.currency)}`;
  const rows = doc.lines
    .map((l) => `<tr><td>${esc(l.description)}</td><td>${esc(l.class ?? '')}</td><td class="n">${esc(l.quantity)}</td><td>${esc(l.unit)}</td><td class="n">${esc(l.unitPrice)}</td><td class="n">${money(l.amount)}</td></tr>`)
    .join('\n');
  const subtotals = doc.subtotals
    .map((s) => `<tr><td colspan="5">Subtotal ${s.class === null ? 'plan-wide charges' : `class ${esc(s.class)}`}</td><td class="n">${money(s.amount)}</td></tr>`)
    .join('\n');
  const status = doc.status === 'closed' ? 'Closed' : `Open: usage up to ${esc(doc.asOf)}, may still change`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Invoice ${esc(doc.tenant)} ${esc(doc.period.id)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #111; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { color: #555; }
table { border-collapse: collapse; width: 100%; margin-top: 1rem; }
th, td { padding: .35rem .5rem; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
th { border-bottom: 2px solid #333; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tfoot td { border-bottom: none; }
tr.total td { font-weight: bold; border-top: 2px solid #333; }
@media print { body { margin: 0; } }
</style>
</head>
<body>
<h1>Invoice: ${esc(doc.tenant)}, ${esc(doc.period.id)}</h1>
<dl>
<dt>Plan</dt><dd>${esc(doc.plan)}</dd>
<dt>Period</dt><dd>${esc(doc.period.start)} to ${esc(doc.period.end)} (${esc(doc.period.timeZone)})</dd>
<dt>Status</dt><dd>${status}</dd>
<dt>Currency</dt><dd>${esc(doc.currency)}</dd>
</dl>
<table>
<thead><tr><th>Item</th><th>Class</th><th class="n">Quantity</th><th>Unit</th><th class="n">Unit price</th><th class="n">Amount</th></tr></thead>
<tbody>
${rows}
</tbody>
<tfoot>
${subtotals}
<tr class="total"><td colspan="5">Total</td><td class="n">${money(doc.total)}</td></tr>
</tfoot>
</table>
</body>
</html>
`;
}

export function renderInvoice(doc: InvoiceDoc, json: string, format: InvoiceFormat): string {
  if (format === 'csv') return invoiceCsv(doc);
  if (format === 'html') return invoiceHtml(doc);
  return json;
}
