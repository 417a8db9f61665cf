// The entry point: turns a rendered config into k6 `options` and one iteration function.
import exec from 'k6/execution';
import { targetUrl } from './env.js';
import { compileFlow } from './flow.js';
import { compilePopulation } from './population.js';
import { sharedRows } from './generators.js';
import { Slots } from './scope.js';
import { compileValue } from './values.js';

const FORMAT = 'stressbed.k6-config';
const VERSION = 1;

// `open` is the entry script's own open(), so data paths resolve next to the script.
export function createTest(config, open) {
  if (config.format !== FORMAT || config.version !== VERSION) {
    throw new Error(`config.json: got format ${JSON.stringify(config.format)} version ` +
      `${JSON.stringify(config.version)}; expected ${FORMAT} version ${VERSION} (render again)`);
  }
  const files = new Map();
  const problems = [];
  const ctx = {
    env: __ENV,
    problems,
    target: targetUrl(__ENV, problems),
    vuIdStride: config.vu_id_stride,
    writes: config.writes || null,
    slots: new Slots(),
    dataFile(file) {
      if (!files.has(file)) files.set(file, sharedRows(file, open));
      return files.get(file);
    },
  };
  for (const binding of config.variables) {
    ctx.slots.bind(binding.name, compileValue(binding.value, ctx), binding.scope === 'vu');
  }
  const flows = {};
  const populations = {};
  for (const name of Object.keys(config.workloads)) {
    const node = config.workloads[name];
    if (node.type === 'agent') populations[name] = compilePopulation(node, ctx, name);
    else flows[name] = compileFlow(node, ctx);
  }
  const names = Object.keys(flows);
  const only = names.length === 1 && Object.keys(populations).length === 0 ? flows[names[0]] : null;
  const setupFlow = config.setup ? compileFlow(config.setup, ctx) : null;
  const teardownFlow = config.teardown ? compileFlow(config.teardown, ctx) : null;
  // Values setup() extracts travel to every iteration (and every fleet runner) as its data.
  const exported = (config.setup_exports || []).map((name) => [name, ctx.slots.slot(name)]);
  const scope = ctx.slots.newScope();
  const problem = problems.length > 0 ? problems.join('; ') : null;

  const seed = (data) => {
    if (data === undefined || data === null) return;
    for (let i = 0; i < exported.length; i++) scope.set(exported[i][1], data[exported[i][0]]);
  };

  return {
    options: config.options,
    // Runs once before any iteration: a bad environment stops the test here.
    setup() {
      if (problem !== null) throw new Error(problem);
      if (setupFlow === null) return undefined;
      scope.reset();
      if (!setupFlow(scope)) throw new Error('setup: a step could not extract its value');
      const data = {};
      for (const [name, slot] of exported) data[name] = scope.get(slot);
      return data;
    },
    iteration(data) {
      if (problem !== null) exec.test.abort(problem); // setup() was skipped (--no-setup)
      const population = populations[exec.scenario.name];
      if (population !== undefined) {
        // A population's one iteration per VU: its agents, for the population's timeline.
        const given = exported.map(([name, slot]) => [slot, data ? data[name] : undefined]);
        return population(given.filter((pair) => pair[1] !== undefined));
      }
      scope.reset();
      if (exported.length > 0) seed(data);
      (only !== null ? only : flows[exec.scenario.name])(scope);
    },
    teardown(data) {
      if (teardownFlow === null || problem !== null) return;
      scope.reset();
      seed(data);
      teardownFlow(scope);
    },
  };
}
