// Variables of one iteration. Names are resolved to slot numbers once, at init; an iteration
// holds an array of values, each computed on first use and then kept until the next iteration.
// Per-VU variables are computed once per VU and kept across its iterations. A simulated
// agent has a scope of its own, its identity kept for its life (keep()).

const UNSET = undefined;
// The stamp of a value kept for the scope's life (an agent's identity and session).
const KEPT = -1;

export class Slots {
  constructor() {
    this.index = new Map();
    this.producers = [];
  }

  // The slot of `name`, allocated on first sight.
  slot(name) {
    let i = this.index.get(name);
    if (i === undefined) {
      i = this.producers.length;
      this.index.set(name, i);
      this.producers.push(() => {
        throw new Error(`variable ${name} was read before any step extracted it`);
      });
    }
    return i;
  }

  // Bind `name` to a value function; `perVu` keeps the first value for the VU's lifetime.
  bind(name, produce, perVu) {
    const i = this.slot(name);
    if (perVu) {
      let kept = UNSET;
      this.producers[i] = (scope) => (kept !== UNSET ? kept : (kept = produce(scope)));
    } else {
      this.producers[i] = produce;
    }
  }

  newScope() {
    return new Scope(this.producers);
  }
}

// Values carry the number of the iteration that computed them, so starting an iteration is
// one increment rather than a new array.
export class Scope {
  constructor(producers) {
    this.producers = producers;
    this.values = new Array(producers.length);
    this.stamps = new Float64Array(producers.length);
    this.iteration = 1;
  }

  reset() {
    this.iteration++;
  }

  get(slot) {
    const stamp = this.stamps[slot];
    if (stamp === this.iteration || stamp === KEPT) return this.values[slot];
    const value = this.producers[slot](this);
    this.values[slot] = value;
    this.stamps[slot] = this.iteration;
    return value;
  }

  set(slot, value) {
    this.values[slot] = value;
    this.stamps[slot] = this.iteration;
  }

  // Keep `value` across iterations (reset() does not forget it).
  keep(slot, value) {
    this.values[slot] = value;
    this.stamps[slot] = KEPT;
  }
}
