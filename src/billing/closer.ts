// Closes due billing periods every minute (and once at start), so invoices
// become final without anyone asking; see Billing.closeDue.
import { PeriodicTask, type TaskEvents } from '../periodic.js';
import type { Billing, ClosedSummary } from './billing.js';

export const CLOSE_CHECK_MS = 60_000;

export class InvoiceCloser extends PeriodicTask<ClosedSummary[]> {
  constructor(private readonly billing: Billing, events: TaskEvents<ClosedSummary[]> = {}, intervalMs = CLOSE_CHECK_MS) {
    super(intervalMs, events);
  }

  protected async run(): Promise<ClosedSummary[]> {
    return this.billing.closeDue(Date.now());
  }
}
