// Seeded randomness and reconnect delays (see stressbed/scenario/reconnect.py, the
// specification: the same seed gives the same numbers there and here).

// mulberry32: uniform floats in [0, 1), 32 bits each.
export function mulberry32(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// The seed of agent `index`: the same agent draws the same numbers on any runner and VU.
export function agentSeed(seed, index) {
  let h = Math.imul((seed ^ 0x9e3779b9) >>> 0, 0x85ebca6b);
  h ^= Math.imul(index + 1, 0xc2b2ae35);
  h ^= h >>> 16;
  const x = Math.imul(h, 0x7feb352d);
  return (x ^ (x >>> 15)) >>> 0;
}

// The wait before retry `attempt` (0 for the first after a failure); `previous` is the last
// wait (the base before the first).
export function reconnectDelay(policy, attempt, previous, rng) {
  if (policy.kind === 'fixed') {
    const spread = typeof policy.jitter === 'number' ? policy.jitter : 0;
    return policy.base_ms * (1 + spread * (2 * rng() - 1));
  }
  const exp = Math.min(policy.cap_ms, policy.base_ms * Math.pow(2, Math.min(attempt, 62)));
  switch (policy.jitter) {
    case 'full':
      return rng() * exp;
    case 'equal':
      return exp / 2 + (rng() * exp) / 2;
    case 'decorrelated': {
      const high = Math.max(policy.base_ms, previous * 3);
      return Math.min(policy.cap_ms, policy.base_ms + rng() * (high - policy.base_ms));
    }
    default:
      return exp;
  }
}

// An exponentially distributed wait with the given mean (a Poisson process's gaps).
export function exponential(mean, rng) {
  return -Math.log(1 - rng()) * mean;
}
