// One registry of API error codes: every error body is
// { error: { code, message, field? } } with a stable code.
import type { z } from 'zod';
export const ErrorCodes = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
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

/** Validates a request's query string; the first problem becomes a 400 naming its field. */
export function parseQuery<S extends z.ZodType>(schema: S, query: unknown): z.output<S> {
  const parsed = schema.safeParse(query);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const field = issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(',') : 'query');
  throw new ApiError('BAD_REQUEST', `${field}: ${issue.message}`, field);
}
