export { Billing, BillingError, invoiceJson, type BillingErrorCode, type ClosedSummary, type CloseResult, type InvoiceList, type IssuedInvoice } from './billing.js';
export { InvoiceCloser, CLOSE_CHECK_MS } from './closer.js';
export { buildInvoice, type InvoiceDoc, type InvoiceLineDoc } from './invoice.js';
export { INVOICE_FORMATS, invoiceCsv, invoiceHtml, renderInvoice, type InvoiceFormat } from './render.js';
export { rateUsage, percentile95, type InvoiceLine, type PeriodUsage } from './rating.js';
export { QuotaWatcher, alertKey, quotaClass, quotaPeriodAt, type QuotaAlert, type QuotaRound, type QuotaState } from './quotas.js';
export { QuotaEnforcer, type EnforceContext, type EnforcedQuota, type QuotaEventInfo } from './enforcer.js';
export { compileQuotas, QuotaCompileError, type QuotaPlan, type QuotaSlot } from './quota-compile.js';
export { WebhookSender, WEBHOOK_CHECK_MS, type DeliveryRound, type WebhookOptions } from './webhook.js';
