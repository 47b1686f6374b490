// Closes due billing periods every minute (and once at start), so invoices
// become final without anyone asking; see Billing.closeDue.
import { PeriodicTask, type TaskEvents } from '../periodic.js';
import type { Billing, CloseResult } from './billing.js';

export const CLOSE_CHECK_MS = 60_000;

export class InvoiceCloser extends PeriodicTask<CloseResult> {
  constructor(private readonly billing: Billing, events: TaskEvents<CloseResult> = {}, intervalMs = CLOSE_CHECK_MS) {
    super(intervalMs, events);
  }

  protected async run(): Promise<CloseResult> {
    return this.billing.closeDue(Date.now());
  }
}
