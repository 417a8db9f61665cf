// Reading k6's environment (__ENV) with errors that name the variable, never its value.

const BASE_URL = /^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/;

// The base URL every request path is appended to, without a trailing slash.
export function targetUrl(env) {
  const raw = env.TARGET_URL;
  if (raw === undefined || raw === '') {
    throw new Error('TARGET_URL is not set; expected the base URL of the service under test, ' +
      'e.g. TARGET_URL=http://127.0.0.1:8080');
  }
  if (!BASE_URL.test(raw)) {
    throw new Error(`TARGET_URL: got ${JSON.stringify(raw)}; expected an http(s) base URL ` +
      'like http://127.0.0.1:8080 (no query or fragment)');
  }
  return raw.endsWith('/') ? raw.slice(0, -1) : raw;
}

// An environment value; a secret's value never appears in an error.
export function readEnv(env, name, fallback, secret) {
  const value = env[name];
  if (value !== undefined) return value;
  if (fallback !== null && fallback !== undefined) return fallback;
  throw new Error(`environment variable ${name} is not set; the scenario needs it` +
    (secret ? ' (a secret: pass it in the environment, never in the scenario)' : ''));
}
