// Flows as promises, for simulated agents that share one VU's event loop (population.js):
// a request is http.asyncRequest, a pause is a timer, never a blocking sleep.
import { makePicker } from './sampler.js';
import { truncatedNormal } from './generators.js';
import { compileRequest } from './request.js';

// A step function of a scope returning a promise of "the rest may run" (see flow.js).
export function compileAsyncFlow(node, ctx, options) {
  switch (node.type) {
    case 'request':
      return compileRequest(node, ctx, Object.assign({}, options, { async: true }));
    case 'journey': {
      const steps = node.steps.map((step) => compileAsyncFlow(step, ctx, options));
      const pause = node.think ? compilePause(node.think) : null;
      return async (scope) => {
        for (let i = 0; i < steps.length; i++) {
          if (pause !== null && i > 0) await pause();
          if (!(await steps[i](scope))) return false;
        }
        return true;
      };
    }
    case 'mix': {
      const branches = node.entries.map((entry) => compileAsyncFlow(entry.flow, ctx, options));
      const pick = makePicker(node.entries.map((entry) => entry.weight), node.sampling);
      return (scope) => branches[pick()](scope);
    }
    case 'think': {
      const pause = compilePause(node);
      return async () => {
        await pause();
        return true;
      };
    }
    default:
      throw new Error(`agent activities cannot hold a ${JSON.stringify(node.type)}`);
  }
}

const wait = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

function compilePause(spec) {
  switch (spec.dist) {
    case 'constant':
      return () => wait(spec.seconds);
    case 'uniform':
      return () => wait(spec.low + Math.random() * (spec.high - spec.low));
    case 'normal':
      return () => wait(truncatedNormal(spec.mean, spec.sd, spec.low, spec.high));
    default:
      throw new Error(`unknown think distribution ${JSON.stringify(spec.dist)}`);
  }
}
