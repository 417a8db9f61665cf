// Values, templates and JSON paths compiled by the runtime, checked without any HTTP.
import { compileString, compileValue } from './lib/stressbed/values.js';
import { getPath, jsonEqual } from './lib/stressbed/jsonpath.js';
import { Slots } from './lib/stressbed/scope.js';
import { assertEqual, assertTrue } from './assert.js';

export const options = { vus: 1, iterations: 1 };

export function setup() {
  const slots = new Slots();
  const ctx = { slots, env: {}, problems: [], vuIdStride: 1 };
  slots.bind('name', () => 'a/b c', false);
  slots.bind('row', () => ({ host: 'h1', tags: ['x', 'y'] }), false);
  let calls = 0;
  slots.bind('once', () => ++calls, false);
  const tpl = compileString(['tpl', ['/items/', ['ref', 'name', []], '?h=', ['ref', 'row', ['host']]]], ctx, encodeURIComponent);
  const body = compileValue(['obj', [['n', ['ref', 'once', []]], ['again', ['ref', 'once', []]],
    ['tag', ['ref', 'row', ['tags', -1]]], ['lit', ['lit', { k: [1, 2] }]]]], ctx);
  const scope = slots.newScope();
  assertEqual(tpl(scope), '/items/a%2Fb%20c?h=h1', 'template with escaped values');
  assertEqual(body(scope), { n: 1, again: 1, tag: 'y', lit: { k: [1, 2] } }, 'object value');
  scope.reset();
  assertEqual(body(scope).n, 2, 'a new iteration evaluates again');
  assertTrue(compileValue(['lit', 5], ctx).isConstant, 'literals are constants');
  assertTrue(compileString(['tpl', ['a', 'b']], ctx).isConstant, 'literal-only templates fold');

  assertEqual(getPath({ a: { b: [{ c: 1 }] } }, ['a', 'b', 0, 'c']), 1, 'nested path');
  assertEqual(getPath({ a: [1, 2, 3] }, ['a', -1]), 3, 'negative index');
  assertEqual(getPath({ a: 1 }, ['a', 'b']), undefined, 'through a scalar');
  assertEqual(getPath({}, ['toString']), undefined, 'no prototype keys');
  assertTrue(jsonEqual({ a: [1, { b: null }] }, { a: [1, { b: null }] }), 'deep equal');
  assertTrue(!jsonEqual({ a: 1 }, { a: 1, b: 2 }), 'extra key differs');
  assertTrue(!jsonEqual([1], { 0: 1 }), 'array is not object');

  let threw = '';
  const unset = new Slots();
  const read = compileValue(['ref', 'later', []], { slots: unset });
  try {
    read(unset.newScope());
  } catch (e) {
    threw = String(e);
  }
  assertTrue(threw.includes('variable later was read before any step extracted it'), threw);
}

export default function () {}
