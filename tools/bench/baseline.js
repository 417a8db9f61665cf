// The hand-written baseline for tools/bench_runtime.py: the same three weighted requests and
// generated payloads as bench/scenario.py, written the way a k6 user would write them.
// BASELINE_TUNED=1 also tells k6 to discard response bodies, as the rendered runtime does
// for requests whose checks never read the body.
import http from 'k6/http';
import { check } from 'k6';

export const options = {
  scenarios: {
    bench: {
      executor: 'constant-vus',
      vus: Number(__ENV.BENCH_VUS || 20),
      duration: __ENV.BENCH_DURATION || '10s',
      gracefulStop: '2s',
    },
  },
};

const BASE = __ENV.TARGET_URL;
const NAMES = ['cpu', 'mem', 'disk', 'net'];
const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const RESPONSE = __ENV.BASELINE_TUNED === '1' ? 'none' : 'text';
const agent = crypto.randomUUID();

function randomString(n) {
  let out = '';
  for (let i = 0; i < n; i++) out += ALPHABET[Math.floor(Math.random() * ALPHABET.length)];
  return out;
}

function send(path, name, payload) {
  const res = http.post(BASE + path, JSON.stringify(payload), {
    headers: { 'Content-Type': 'application/json' },
    tags: { name },
    responseType: RESPONSE,
  });
  check(res, { 'status is 200': (r) => r.status === 200 });
}

export default function () {
  const u = Math.random() * 100;
  if (u < 65) {
    const points = [];
    for (let i = 0; i < 5; i++) {
      points.push({ ts: Date.now(), name: NAMES[Math.floor(Math.random() * 4)], value: Math.random() * 100 });
    }
    send('/v1/report', 'report', { agent_id: agent, points });
  } else if (u < 90) {
    send('/v1/heartbeat', 'heartbeat', { agent_id: agent, status: Math.random() < 0.5 ? 'ok' : 'degraded' });
  } else {
    send('/v1/tasks', 'task', { type: 'checksum', args: { data: randomString(32) } });
  }
}
