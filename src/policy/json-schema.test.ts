import { test } from 'node:test';
import assert from 'node:assert/strict';
import { policyJsonSchema } from './json-schema.js';

test('the JSON Schema covers every section and forbids unknown keys', () => {
  const s = policyJsonSchema() as { $schema: string; properties: Record<string, unknown>; required: string[]; additionalProperties: unknown };
  assert.match(s.$schema, /json-schema\.org/);
  assert.deepEqual(Object.keys(s.properties).sort(), ['alerts', 'classes', 'isolation', 'metering', 'plans', 'quotas', 'security', 'tenants', 'version']);
  assert.ok(s.required.includes('version'));
  assert.equal(s.additionalProperties, false);
});
