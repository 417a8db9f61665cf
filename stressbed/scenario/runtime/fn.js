// A constant value function, marked so that callers can precompute with it.
export function constant(value) {
  const fn = () => value;
  fn.isConstant = true;
  fn.value = value;
  return fn;
}
