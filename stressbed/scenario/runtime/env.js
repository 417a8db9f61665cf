// Reading k6's environment (__ENV) with errors that name the variable, never its value.
//
// A missing or bad variable does not fail the init context: `k6 inspect` and `k6 archive` run
// it without the system environment (and an archive must never capture a secret). Problems
// are collected in `problems` and raised by setup(), before any request is sent.

const BASE_URL = /^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/;

// The base URL every request path is appended to, without a trailing slash.
export function targetUrl(env, problems) {
  const raw = env.TARGET_URL;
  if (raw === undefined || raw === '') {
    problems.push('TARGET_URL is not set; expected the base URL of the service under test, ' +
      'e.g. TARGET_URL=http://127.0.0.1:8080');
    return 'http://target-url-not-set.invalid';
  }
  if (!BASE_URL.test(raw)) {
    problems.push(`TARGET_URL: got ${JSON.stringify(raw)}; expected an http(s) base URL ` +
      'like http://127.0.0.1:8080 (no query or fragment)');
    return 'http://target-url-invalid.invalid';
  }
  return raw.endsWith('/') ? raw.slice(0, -1) : raw;
}

// An environment value; a secret's value never appears in an error.
export function readEnv(env, name, fallback, secret, problems) {
  const value = env[name];
  if (value !== undefined) return value;
  if (fallback !== null && fallback !== undefined) return fallback;
  problems.push(`environment variable ${name} is not set; the scenario needs it` +
    (secret ? ' (a secret: pass it in the environment, never in the scenario)' : ''));
  return '';
}
