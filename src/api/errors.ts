// One registry of API error codes: every error body is
// { error: { code, message, field? } } with a stable code.
export const ErrorCodes = {
  BAD_REQUEST: 400,
  NOT_FOUND: 404,
  EXPORT_FAILED: 500,
  INTERNAL: 500,
} as const;
export type ErrorCode = keyof typeof ErrorCodes;

export class ApiError extends Error {
  constructor(readonly code: ErrorCode, message: string, readonly field?: string) {
    super(message);
  }
  get status(): number {
    return ErrorCodes[this.code];
  }
  toJSON(): { error: { code: ErrorCode; message: string; field?: string } } {
    return { error: { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) } };
  }
}
