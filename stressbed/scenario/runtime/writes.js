// Counting acknowledged writes (see stressbed/scenario/writes.py): each response of the
// declared request that acknowledges it adds its body's item count to a k6 counter tagged
// with the writer the body names. stressbed reads the target back after the load and
// compares.
import { Counter } from 'k6/metrics';
import { getPath } from './jsonpath.js';

let counter = null; // created at init, once per VU, only when a scenario declares writes

function acknowledges(expect) {
  if (expect === null) return (status) => status >= 200 && status < 300;
  return (status) => expect.some((e) => (typeof e === 'number' ? status === e : status >= e.min && status <= e.max));
}

// A function (body value, response) -> void for the request `node`, or null when it is not
// the declared write.
export function compileWrite(node, spec) {
  if (spec === null || spec === undefined || spec.request !== node.name) return null;
  if (counter === null) counter = new Counter(spec.metric);
  const acked = acknowledges(node.expect);
  const tag = spec.tag;
  const writer = spec.writer;
  const items = spec.items;
  return (value, res) => {
    if (!acked(res.status)) return;
    const who = getPath(value, writer);
    if (who === undefined || who === null) return;
    let n = 1;
    if (items !== null) {
      const found = getPath(value, items);
      n = Array.isArray(found) ? found.length : found === undefined ? 0 : 1;
    }
    if (n > 0) counter.add(n, { [tag]: String(who) });
  };
}
