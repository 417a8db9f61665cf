// A minimal assertion helper for runtime tests run in real k6: a failure throws from setup(),
// so k6 exits 107 and the test runner sees it.
export function assertEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: got ${a}, expected ${e}`);
}

export function assertTrue(value, what) {
  if (!value) throw new Error(`${what}: expected true`);
}
