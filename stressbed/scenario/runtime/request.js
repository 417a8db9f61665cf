// Compiling one request node (see stressbed/http.py) into a step function.
// Everything that does not depend on the iteration is computed here, once per VU: the URL's
// constant parts, constant headers and params, constant bodies serialised, check functions.
import http from 'k6/http';
import { check } from 'k6';
import encoding from 'k6/encoding';
import { getPath, jsonEqual } from './jsonpath.js';
import { compileString, compileValue, constant } from './values.js';
import { compileWrite } from './writes.js';

// encodeURIComponent leaves !'()* alone; RFC 3986 query and path values want them encoded.
export const encodeValue = (text) =>
  encodeURIComponent(text).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());

// `options.async`: the step returns a promise (http.asyncRequest), for agents that share a
// VU's event loop, and leaves the response in `scope.response`; `options.close` sends every
// request on a new connection (Connection: close).
export function compileRequest(node, ctx, options = {}) {
  const method = node.method;
  const url = compileUrl(node, ctx);
  const body = compileBody(node.body, ctx);
  const params = compileParams(node, ctx, body.contentType, options.close === true);
  const checks = compileChecks(node.checks);
  const extracts = compileExtracts(node.extract, ctx);
  const send = body.fn;
  const write = body.value === undefined ? null : compileWrite(node, ctx.writes);
  // The common case, a fixed URL and fixed params, skips two calls per request.
  const fixed = url.isConstant && params.isConstant;
  const fixedUrl = url.value;
  const fixedParams = params.value;

  // What a response tells the rest of the flow: false when an extraction found nothing.
  const after = (scope, value, res) => {
    if (write !== null) write(value, res);
    if (checks !== null) check(res, checks);
    for (let i = 0; i < extracts.length; i++) {
      const e = extracts[i];
      const value = e.read(res);
      if (value === undefined || value === null) {
        check(res, e.failed);
        return false;
      }
      check(res, e.passed);
      scope.set(e.slot, value);
    }
    return true;
  };

  if (options.async === true) {
    return async (scope) => {
      const value = write === null ? undefined : body.value(scope);
      const payload = write === null ? send(scope) : JSON.stringify(value);
      const res = fixed
        ? await http.asyncRequest(method, fixedUrl, payload, fixedParams)
        : await http.asyncRequest(method, url(scope), payload, params(scope));
      scope.response = res;
      return after(scope, value, res);
    };
  }
  return (scope) => {
    // The declared write keeps its body's value, to count what the response acknowledged.
    const value = write === null ? undefined : body.value(scope);
    const payload = write === null ? send(scope) : JSON.stringify(value);
    const res = fixed
      ? http.request(method, fixedUrl, payload, fixedParams)
      : http.request(method, url(scope), payload, params(scope));
    return after(scope, value, res);
  };
}

function compileUrl(node, ctx) {
  const base = constant(ctx.target);
  const path = compileString(node.path, ctx, encodeValue);
  const query = node.query.map(([key, value]) => [key, compileString(value, ctx, encodeValue)]);
  const parts = [base, path];
  query.forEach(([key, value], i) => {
    parts.push(constant((i === 0 ? '?' : '&') + key + '='), value);
  });
  if (parts.every((p) => p.isConstant)) return constant(parts.map((p) => p.value).join(''));
  // Fold neighbouring constants so each iteration concatenates as few pieces as possible.
  const folded = [];
  for (const p of parts) {
    const last = folded[folded.length - 1];
    if (p.isConstant && last && last.isConstant) folded[folded.length - 1] = constant(last.value + p.value);
    else folded.push(p);
  }
  if (folded.length === 2) {
    const [a, b] = folded;
    return (scope) => a(scope) + b(scope);
  }
  return (scope) => {
    let text = '';
    for (let i = 0; i < folded.length; i++) text += folded[i](scope);
    return text;
  };
}

function compileBody(spec, ctx) {
  if (spec === null) return { fn: constant(null), contentType: null };
  switch (spec.kind) {
    case 'json': {
      const value = compileValue(spec.value, ctx);
      const fn = value.isConstant
        ? constant(JSON.stringify(value.value))
        : (scope) => JSON.stringify(value(scope));
      return { fn, value: value.isConstant ? constant(value.value) : value, contentType: 'application/json' };
    }
    case 'form': {
      const fields = spec.fields.map(([key, value]) => [encodeValue(key), compileString(value, ctx)]);
      const fn = (scope) => fields.map(([key, value]) => key + '=' + encodeValue(value(scope))).join('&');
      const all = fields.every(([, value]) => value.isConstant);
      return {
        fn: all ? constant(fn(null)) : fn,
        contentType: 'application/x-www-form-urlencoded',
      };
    }
    case 'text':
      return { fn: compileString(spec.value, ctx), contentType: null };
    case 'bytes':
      return { fn: constant(encoding.b64decode(spec.base64, 'std')), contentType: null };
    default:
      throw new Error(`unknown body kind ${JSON.stringify(spec.kind)}`);
  }
}

function compileParams(node, ctx, contentType, close) {
  const headers = node.headers.map(([key, value]) => [key, compileString(value, ctx)]);
  const hasContentType = headers.some(([key]) => key.toLowerCase() === 'content-type');
  if (contentType !== null && !hasContentType) headers.push(['Content-Type', constant(contentType)]);
  if (close) headers.push(['Connection', constant('close')]);
  const fixed = { tags: { name: node.name }, responseType: node.response };
  if (node.timeout_ms !== null) fixed.timeout = node.timeout_ms;
  if (node.expect !== null) fixed.responseCallback = http.expectedStatuses(...node.expect);
  if (headers.every(([, value]) => value.isConstant)) {
    const params = Object.assign({}, fixed, { headers: Object.fromEntries(headers.map(([k, v]) => [k, v.value])) });
    return constant(params);
  }
  const n = headers.length;
  return (scope) => {
    const h = {};
    for (let i = 0; i < n; i++) h[headers[i][0]] = headers[i][1](scope);
    return Object.assign({ headers: h }, fixed);
  };
}

function parsedJson(res) {
  try {
    return res.json();
  } catch (e) {
    return undefined;
  }
}

const CHECKS = {
  status: (c) => {
    const codes = c.codes;
    if (codes.length === 1) {
      const code = codes[0];
      return (res) => res.status === code;
    }
    return (res) => codes.indexOf(res.status) !== -1;
  },
  json_exists: (c) => (res) => getPath(parsedJson(res), c.path) !== undefined,
  json_equals: (c) => (res) => jsonEqual(getPath(parsedJson(res), c.path), c.value),
  body_contains: (c) => (res) => typeof res.body === 'string' && res.body.indexOf(c.text) !== -1,
  duration_under: (c) => (res) => res.timings.duration < c.limit_ms,
};

function compileChecks(specs) {
  if (specs.length === 0) return null;
  const checks = {};
  for (const spec of specs) {
    const make = CHECKS[spec.kind];
    if (make === undefined) throw new Error(`unknown check ${JSON.stringify(spec.kind)}`);
    checks[spec.name] = make(spec);
  }
  return checks;
}

const EXTRACTORS = {
  json: (e) => (res) => getPath(parsedJson(res), e.path),
  header: (e) => {
    const wanted = e.name.toLowerCase();
    return (res) => {
      for (const key in res.headers) {
        if (key.toLowerCase() === wanted) return res.headers[key];
      }
      return undefined;
    };
  },
  regex: (e) => {
    const pattern = new RegExp(e.pattern);
    return (res) => {
      if (typeof res.body !== 'string') return undefined;
      const match = pattern.exec(res.body);
      if (match === null) return undefined;
      return match.length > 1 ? match[1] : match[0];
    };
  },
};

function compileExtracts(specs, ctx) {
  return specs.map(([name, spec]) => {
    const make = EXTRACTORS[spec.kind];
    if (make === undefined) throw new Error(`unknown extractor ${JSON.stringify(spec.kind)}`);
    const label = `extract ${name}`;
    return {
      slot: ctx.slots.slot(name),
      read: make(spec),
      passed: { [label]: () => true },
      failed: { [label]: () => false },
    };
  });
}
