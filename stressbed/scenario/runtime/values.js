// Compiling value nodes (see stressbed/values.py) into functions of the iteration scope.
// Constants are marked so callers can precompute (a constant body is serialised once).
import { getPath } from './jsonpath.js';
import { compileGenerator } from './generators.js';
import { constant } from './fn.js';

export { constant };

const identity = (text) => text;

export function compileValue(node, ctx) {
  switch (node[0]) {
    case 'lit':
      return constant(node[1]);
    case 'ref':
      return compileRef(node, ctx);
    case 'tpl':
      return compileTemplate(node[1], ctx, identity);
    case 'gen':
      return compileGenerator(node[1], node[2], ctx, compileValue);
    case 'obj':
      return compileObject(node[1], ctx);
    case 'arr':
      return compileArray(node[1], ctx);
    default:
      throw new Error(`unknown value node ${JSON.stringify(node[0])}`);
  }
}

// A value that must be a string; `escape` is applied to substituted values only (literal
// parts were encoded by the renderer).
export function compileString(node, ctx, escape = identity) {
  if (node[0] === 'lit') return constant(String(node[1]));
  if (node[0] === 'tpl') return compileTemplate(node[1], ctx, escape);
  const value = compileValue(node, ctx);
  return (scope) => escape(String(value(scope)));
}

function compileRef(node, ctx) {
  const slot = ctx.slots.slot(node[1]);
  const path = node[2];
  if (path.length === 0) return (scope) => scope.get(slot);
  return (scope) => getPath(scope.get(slot), path);
}

function compileTemplate(parts, ctx, escape) {
  const fns = parts.map((part) => {
    if (typeof part === 'string') return constant(part);
    const value = compileValue(part, ctx);
    return (scope) => escape(String(value(scope)));
  });
  if (fns.every((fn) => fn.isConstant)) return constant(fns.map((fn) => fn.value).join(''));
  if (fns.length === 2) {
    const [a, b] = fns;
    return (scope) => a(scope) + b(scope);
  }
  if (fns.length === 3) {
    const [a, b, c] = fns;
    return (scope) => a(scope) + b(scope) + c(scope);
  }
  return (scope) => {
    let text = '';
    for (let i = 0; i < fns.length; i++) text += fns[i](scope);
    return text;
  };
}

// Objects are built by closures specialised on their size: on k6's JS engine an object
// literal with computed keys is markedly faster than assigning keys in a loop.
function compileObject(items, ctx) {
  const keys = items.map((item) => item[0]);
  const fns = items.map((item) => compileValue(item[1], ctx));
  const [k0, k1, k2, k3, k4, k5] = keys;
  const [f0, f1, f2, f3, f4, f5] = fns;
  switch (keys.length) {
    case 1:
      return (s) => ({ [k0]: f0(s) });
    case 2:
      return (s) => ({ [k0]: f0(s), [k1]: f1(s) });
    case 3:
      return (s) => ({ [k0]: f0(s), [k1]: f1(s), [k2]: f2(s) });
    case 4:
      return (s) => ({ [k0]: f0(s), [k1]: f1(s), [k2]: f2(s), [k3]: f3(s) });
    case 5:
      return (s) => ({ [k0]: f0(s), [k1]: f1(s), [k2]: f2(s), [k3]: f3(s), [k4]: f4(s) });
    case 6:
      return (s) => ({ [k0]: f0(s), [k1]: f1(s), [k2]: f2(s), [k3]: f3(s), [k4]: f4(s), [k5]: f5(s) });
    default: {
      const n = keys.length;
      return (s) => {
        const out = {};
        for (let i = 0; i < n; i++) out[keys[i]] = fns[i](s);
        return out;
      };
    }
  }
}

function compileArray(items, ctx) {
  const fns = items.map((item) => compileValue(item, ctx));
  const n = fns.length;
  return (scope) => {
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = fns[i](scope);
    return out;
  };
}
