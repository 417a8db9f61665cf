// Data generators (see stressbed/gen.py), compiled once per VU into value functions.
import exec from 'k6/execution';
import { SharedArray } from 'k6/data';
import { readEnv } from './env.js';
import { weightedIndex } from './sampler.js';
import { constant } from './fn.js';

const HEX = '0123456789abcdef';

function uuid4() {
  if (typeof crypto !== 'undefined' && crypto.randomUUID) return crypto.randomUUID();
  let out = '';
  for (let i = 0; i < 36; i++) {
    if (i === 8 || i === 13 || i === 18 || i === 23) out += '-';
    else if (i === 14) out += '4';
    else if (i === 19) out += HEX[8 + ((Math.random() * 4) | 0)];
    else out += HEX[(Math.random() * 16) | 0];
  }
  return out;
}

// A standard normal draw (Box-Muller; the second value is discarded to stay stateless).
function gaussian() {
  let u = 0;
  while (u === 0) u = Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
}

// `draw()` resampled into [low, high] (either may be null: unbounded) up to 16 times, then
// `centre` clamped into it, so the bounds always hold and the shape inside them is kept.
function truncated(draw, centre, low, high) {
  const lo = low === null || low === undefined ? -Infinity : low;
  const hi = high === null || high === undefined ? Infinity : high;
  for (let tries = 0; tries < 16; tries++) {
    const x = draw();
    if (x >= lo && x <= hi) return x;
  }
  return Math.min(hi, Math.max(lo, centre));
}

export function truncatedNormal(mean, sd, low, high) {
  return truncated(() => mean + sd * gaussian(), mean, low, high);
}

// exp(ln(median) + sigma * N(0, 1)): half the draws fall below the median, the tail is long.
function truncatedLogNormal(median, sigma, low, high) {
  const mu = Math.log(median);
  return truncated(() => Math.exp(mu + sigma * gaussian()), median, low, high);
}

const GENERATORS = {
  uuid4: () => uuid4,

  uniform_int: (p) => {
    const span = p.high - p.low + 1;
    return () => p.low + Math.floor(Math.random() * span);
  },

  uniform_float: (p) => {
    const span = p.high - p.low;
    return () => p.low + Math.random() * span;
  },

  normal: (p) =>
    p.integer
      ? () => Math.round(truncatedNormal(p.mean, p.sd, p.min, p.max))
      : () => truncatedNormal(p.mean, p.sd, p.min, p.max),

  lognormal: (p) =>
    p.integer
      ? () => Math.round(truncatedLogNormal(p.median, p.sigma, p.min, p.max))
      : () => truncatedLogNormal(p.median, p.sigma, p.min, p.max),

  choice: (p) => {
    const values = p.values;
    const n = values.length;
    if (p.weights.every((w) => w === p.weights[0])) return () => values[(Math.random() * n) | 0];
    const index = weightedIndex(p.weights);
    return () => values[index(Math.random())];
  },

  // Unique across VUs and fleet runners: exec.vu.idInTest is global under execution segments.
  counter: (p, ctx) => {
    const stride = ctx.vuIdStride;
    let n = 0;
    return () => p.start + (n++) * stride + (exec.vu.idInTest - 1);
  },

  random_string: (p) => {
    const alphabet = p.alphabet;
    const size = alphabet.length;
    const length = p.length;
    return () => {
      let out = '';
      for (let i = 0; i < length; i++) out += alphabet[(Math.random() * size) | 0];
      return out;
    };
  },

  timestamp: (p) => {
    if (p.unit === 's') return () => Date.now() / 1000;
    if (p.unit === 'iso') return () => new Date().toISOString();
    return () => Date.now();
  },

  repeat: (p, ctx, compileValue) => {
    const count = compileValue(p.count, ctx);
    const item = compileValue(p.item, ctx);
    if (count.isConstant) {
      const n = count.value;
      return (scope) => {
        const out = new Array(n);
        for (let i = 0; i < n; i++) out[i] = item(scope);
        return out;
      };
    }
    return (scope) => {
      const n = count(scope);
      const out = new Array(n);
      for (let i = 0; i < n; i++) out[i] = item(scope);
      return out;
    };
  },

  env: (p, ctx) => constant(readEnv(ctx.env, p.name, p.default, p.secret, ctx.problems)),

  rows: (p, ctx) => {
    const rows = ctx.dataFile(p.file);
    const n = rows.length;
    if (p.mode === 'random') return () => rows[(Math.random() * n) | 0];
    if (p.mode === 'unique') return () => rows[(exec.vu.idInTest - 1) % n];
    return () => rows[exec.scenario.iterationInTest % n];
  },
};

// `compileValue` is passed in (not imported) to keep values.js and this file acyclic.
export function compileGenerator(kind, params, ctx, compileValue) {
  const make = GENERATORS[kind];
  if (make === undefined) throw new Error(`unknown generator ${JSON.stringify(kind)}`);
  return make(params, ctx, compileValue);
}

// Data files are parsed once per test run and shared by all VUs (k6's SharedArray).
export function sharedRows(file, open) {
  return new SharedArray(file, () => JSON.parse(open(file)));
}
