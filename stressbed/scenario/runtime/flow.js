// Compiling flow nodes (see stressbed/flow.py) into step functions of the iteration scope.
// A step returns false when the rest of its journey cannot run (a failed extraction).
import { group, sleep } from 'k6';
import { makePicker } from './sampler.js';
import { truncatedNormal } from './generators.js';
import { compileRequest } from './request.js';

export function compileFlow(node, ctx) {
  switch (node.type) {
    case 'request':
      return compileRequest(node, ctx);
    case 'journey':
      return compileSteps(node.steps, node.think, ctx);
    case 'group': {
      const inner = compileSteps(node.steps, node.think, ctx);
      const name = node.name;
      return (scope) => group(name, () => inner(scope));
    }
    case 'mix':
      return compileMix(node, ctx);
    case 'think': {
      const pause = compileThink(node);
      return () => {
        pause();
        return true;
      };
    }
    default:
      throw new Error(`unknown flow node ${JSON.stringify(node.type)}`);
  }
}

function compileSteps(nodes, thinkSpec, ctx) {
  const steps = nodes.map((step) => compileFlow(step, ctx));
  const pause = thinkSpec ? compileThink(thinkSpec) : null;
  const n = steps.length;
  return (scope) => {
    for (let i = 0; i < n; i++) {
      if (pause !== null && i > 0) pause();
      if (!steps[i](scope)) return false;
    }
    return true;
  };
}

function compileMix(node, ctx) {
  const branches = node.entries.map((entry) => compileFlow(entry.flow, ctx));
  const pick = makePicker(node.entries.map((entry) => entry.weight), node.sampling);
  return (scope) => branches[pick()](scope);
}

export function compileThink(spec) {
  switch (spec.dist) {
    case 'constant': {
      const seconds = spec.seconds;
      return () => sleep(seconds);
    }
    case 'uniform': {
      const low = spec.low;
      const span = spec.high - spec.low;
      return () => sleep(low + Math.random() * span);
    }
    case 'normal':
      return () => sleep(truncatedNormal(spec.mean, spec.sd, spec.low, spec.high));
    default:
      throw new Error(`unknown think distribution ${JSON.stringify(spec.dist)}`);
  }
}
