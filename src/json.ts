// JSON with exact integers: bigints are written as plain number literals
// (JSON itself has no precision limit; JSON.stringify just refuses bigints).
const MARK = '\u0000big:';

export function stringifyExact(value: unknown, space?: number): string {
  const text = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${MARK}${v.toString()}` : v), space);
  return text.replace(/"\\u0000big:(-?\d+)"/g, '$1');
}
