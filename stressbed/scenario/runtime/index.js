// stressbed k6 runtime: interprets a scenario rendered as JSON (config.json).
// One concern per file; this barrel is the only import an entry script needs.
export { createTest } from './test.js';
export { targetUrl } from './env.js';
export { makePicker } from './sampler.js';
export { getPath } from './jsonpath.js';
