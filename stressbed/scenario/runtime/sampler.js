// Weighted choice in O(1) per pick: a cumulative table plus a guide table built once at init.
//
// "balanced" sampling walks the golden-ratio sequence u_k = frac(u_0 + k * 0.618...) from a
// random start: the picks look random but the share of each entry converges on its weight as
// O(1/n) (a low-discrepancy sequence), not O(1/sqrt(n)) as independent draws do.
// "random" draws u from Math.random() every time.

const GOLDEN = 0.6180339887498949;

// The tables of a weighted choice: a cumulative table and a guide table into it, so that
// mapping u in [0, 1) to an entry takes O(1) steps on average.
function tables(weights) {
  const n = weights.length;
  if (n === 0) throw new Error('a weighted choice needs at least one weight');
  let total = 0;
  for (const w of weights) {
    if (!(w > 0) || !Number.isFinite(w)) throw new Error(`weights must be finite and > 0, got ${w}`);
    total += w;
  }
  const cumulative = new Float64Array(n);
  let running = 0;
  for (let i = 0; i < n; i++) {
    running += weights[i];
    cumulative[i] = running / total;
  }
  cumulative[n - 1] = 1; // no rounding gap at the top
  const size = n * 4;
  const guide = new Int32Array(size);
  for (let j = 0, i = 0; j < size; j++) {
    while (cumulative[i] <= j / size) i++;
    guide[j] = i;
  }
  return { cumulative, guide, size };
}

// `index(u)` maps u in [0, 1) to an entry with probability proportional to its weight.
export function weightedIndex(weights) {
  const { cumulative, guide, size } = tables(weights);
  return (u) => {
    let i = guide[(u * size) | 0];
    while (cumulative[i] <= u) i++;
    return i;
  };
}

function uniform(weights) {
  return weights.every((w) => w === weights[0]);
}

// A function returning the next entry index, per `sampling` ("balanced" or "random").
export function makePicker(weights, sampling) {
  const { cumulative, guide, size } = tables(weights);
  const n = weights.length;
  if (n === 1) return () => 0;
  if (sampling === 'random') {
    if (uniform(weights)) return () => (Math.random() * n) | 0;
    return () => {
      const u = Math.random();
      let i = guide[(u * size) | 0];
      while (cumulative[i] <= u) i++;
      return i;
    };
  }
  if (sampling !== 'balanced') throw new Error(`unknown sampling ${JSON.stringify(sampling)}`);
  let u = Math.random();
  // The lookup is inlined: this runs once per iteration of every mix.
  return () => {
    u += GOLDEN;
    if (u >= 1) u -= 1;
    let i = guide[(u * size) | 0];
    while (cumulative[i] <= u) i++;
    return i;
  };
}
