// The policy document as JSON Schema (draft 2020-12), generated from the zod
// schema, for editors and CI linters (e.g. the YAML language server). Values
// that are parsed from strings (durations, sizes, CIDRs) are described in
// their written form; cross-field rules (duplicates, references) are only
// checked by `tollgate policy check`.
import { z } from 'zod';
import { policySchema } from './schema.js';

export function policyJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(policySchema, { io: 'input', unrepresentable: 'any' }),
    title: 'tollgate policy document',
  };
}
