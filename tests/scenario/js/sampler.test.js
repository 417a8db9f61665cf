// The weighted sampler: exact balanced proportions, valid indices, bad weights rejected.
import { makePicker } from './lib/stressbed/sampler.js';
import { assertEqual, assertTrue } from './assert.js';

export const options = { vus: 1, iterations: 1 };

function shares(pick, n, size) {
  const counts = new Array(size).fill(0);
  for (let i = 0; i < n; i++) counts[pick()]++;
  return counts.map((c) => c / n);
}

export function setup() {
  const weights = [65, 25, 10];
  const balanced = shares(makePicker(weights, 'balanced'), 10000, 3);
  weights.forEach((w, i) => assertTrue(Math.abs(balanced[i] - w / 100) < 0.001, `balanced share ${i} = ${balanced[i]}`));
  // Even a short run is close: a low-discrepancy walk, not independent draws.
  const short = shares(makePicker(weights, 'balanced'), 100, 3);
  weights.forEach((w, i) => assertTrue(Math.abs(short[i] - w / 100) < 0.03, `short share ${i} = ${short[i]}`));
  const random = shares(makePicker(weights, 'random'), 20000, 3);
  weights.forEach((w, i) => assertTrue(Math.abs(random[i] - w / 100) < 0.02, `random share ${i}`));
  // Tiny and huge weights, many entries: every index reachable, none out of range.
  const many = Array.from({ length: 50 }, (_, i) => (i === 0 ? 1e-6 : i));
  const pick = makePicker(many, 'balanced');
  for (let i = 0; i < 5000; i++) {
    const k = pick();
    assertTrue(k >= 0 && k < 50 && Number.isInteger(k), `index ${k}`);
  }
  assertEqual(makePicker([3], 'random')(), 0, 'single entry');
  for (const bad of [[0, 1], [-1, 2], [NaN, 1], [Infinity, 1]]) {
    let threw = false;
    try {
      makePicker(bad, 'random');
    } catch (e) {
      threw = true;
    }
    assertTrue(threw, `weights ${JSON.stringify(bad)} rejected`);
  }
}

export default function () {}
