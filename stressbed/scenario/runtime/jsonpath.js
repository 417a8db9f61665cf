// Walking a parsed JSON value along pre-parsed segments (strings are keys, numbers indices;
// a negative index counts from the end). Returns undefined when the path does not exist.

export function getPath(value, segments) {
  let current = value;
  for (let i = 0; i < segments.length; i++) {
    if (current === null || typeof current !== 'object') return undefined;
    const key = segments[i];
    if (typeof key === 'number') {
      if (!Array.isArray(current)) return undefined;
      current = current[key < 0 ? current.length + key : key];
    } else {
      if (!Object.prototype.hasOwnProperty.call(current, key)) return undefined;
      current = current[key];
    }
  }
  return current;
}

// Structural equality of two JSON values.
export function jsonEqual(a, b) {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) {
    if (!Object.prototype.hasOwnProperty.call(b, key) || !jsonEqual(a[key], b[key])) return false;
  }
  return true;
}
