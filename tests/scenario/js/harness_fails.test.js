// Proves the harness can fail: this assertion is false on purpose (expected exit code 107).
import { assertEqual } from './assert.js';

export const options = { vus: 1, iterations: 1 };

export function setup() {
  assertEqual(1 + 1, 3, 'arithmetic');
}

export default function () {}
