// Environment parsing names the variable and never prints a secret's value.
import { readEnv, targetUrl } from './lib/stressbed/env.js';
import { assertEqual, assertTrue } from './assert.js';

export const options = { vus: 1, iterations: 1 };

export function setup() {
  const problems = [];
  assertEqual(targetUrl({ TARGET_URL: 'http://127.0.0.1:8080/' }, problems), 'http://127.0.0.1:8080', 'trailing slash');
  assertEqual(targetUrl({ TARGET_URL: 'https://[::1]:9/base' }, problems), 'https://[::1]:9/base', 'path kept');
  assertEqual(problems, [], 'no problems');
  targetUrl({ TARGET_URL: 'ftp://x' }, problems);
  targetUrl({}, problems);
  assertTrue(problems[0].startsWith('TARGET_URL: got "ftp://x"'), problems[0]);
  assertTrue(problems[1].startsWith('TARGET_URL is not set'), problems[1]);
  const later = [];
  assertEqual(readEnv({ A: 'v' }, 'A', null, true, later), 'v', 'set');
  assertEqual(readEnv({}, 'B', 'dflt', false, later), 'dflt', 'default');
  readEnv({}, 'TOKEN', null, true, later);
  assertTrue(later.length === 1 && later[0].includes('TOKEN is not set'), later[0]);
}

export default function () {}
