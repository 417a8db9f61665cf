// Populations (see stressbed/scenario/population.py): many simulated agents on one VU's event
// loop. Each agent is a plain object and a scope of its own; its channel is a WebSocket from
// k6/experimental/websockets (or HTTP through http.asyncRequest); its check-ins, reconnects
// and churn are timers. The VU's one iteration lasts the population's timeline, then every
// channel is closed.
//
// Agent i of the population belongs to the VU whose number in the scenario
// (exec.scenario.iterationInTest: one iteration per VU, numbered across the whole fleet under
// execution segments) is floor(i / per_vu), so a fleet of runners runs each agent once.
import exec from 'k6/execution';
import { WebSocket } from 'k6/experimental/websockets';
import { Counter, Trend } from 'k6/metrics';
import { compileAsyncFlow } from './async_flow.js';
import { getPath, jsonEqual } from './jsonpath.js';
import { agentSeed, exponential, mulberry32, reconnectDelay } from './policy.js';
import { encodeValue } from './request.js';
import { compileString, compileValue } from './values.js';

// An agent's states. WANTING = CONNECTING or WAITING: it has joined and wants a connection.
const IDLE = 0; // not joined yet
const CONNECTING = 1;
const CONNECTED = 2;
const WAITING = 3; // for its next attempt, by its reconnect policy
const AWAY = 4; // left by churn
const GONE = 5; // gave up: its retry budget is spent
const ENDED = 6;

// A WebSocket's readyState while its handshake is in flight.
const CONNECTING_SOCKET = 0;

// How long the end of a population waits for its channels to close before it lets go.
const CLOSE_WAIT_MS = 5000;

let metrics = null;

// Created in the init context (createTest), once, and only when a population exists.
function populationMetrics() {
  if (metrics === null) {
    metrics = {
      joined: new Counter('agents_joined'),
      left: new Counter('agents_left'),
      attempts: new Counter('agent_connect_attempts'),
      connects: new Counter('agent_connects'),
      failures: new Counter('agent_connect_failures'),
      disconnects: new Counter('agent_disconnects'),
      reconnects: new Counter('agent_reconnects'),
      gaveUp: new Counter('agent_gave_up'),
      registrations: new Counter('agent_registrations'),
      commands: new Counter('agent_commands'),
      missed: new Counter('agent_checkins_missed'),
      connectTime: new Trend('agent_connect_time', true),
      lateness: new Trend('agent_checkin_lateness', true),
      commandRtt: new Trend('agent_command_rtt', true),
      reconnectTime: new Trend('agent_reconnect_time', true),
    };
  }
  return metrics;
}

// Why a channel failed, from k6's error text (k6 exposes no status or close code otherwise):
// no error at all is a close with 1000 or 1001 (going away), which k6 does not tell apart.
export function failureReason(text) {
  if (!text) return 'closed';
  if (text === 'timeout') return 'timeout';
  const closed = /close (\d+)/.exec(text);
  if (closed !== null) return 'closed_' + closed[1];
  if (text.indexOf('connection refused') !== -1) return 'refused';
  if (text.indexOf('bad handshake') !== -1) return 'handshake';
  if (/reset by peer|broken pipe|EOF/.test(text)) return 'reset';
  if (/timeout|deadline/i.test(text)) return 'timeout';
  return 'error';
}

function matcher(spec) {
  if (spec === null) return null;
  const fields = spec.map(([key, node]) => [key, node[1]]);
  return (msg) => {
    if (msg === null || typeof msg !== 'object') return false;
    for (let i = 0; i < fields.length; i++) {
      if (!jsonEqual(msg[fields[i][0]], fields[i][1])) return false;
    }
    return true;
  };
}

// An HTTP response that says the service was not reached or could not serve.
function httpFailure(res) {
  if (res === undefined || res === null) return 'error';
  if (res.status === 0) return failureReason(res.error);
  if (res.status >= 500 || res.status === 429) return 'status_' + res.status;
  return null;
}

export function compilePopulation(node, ctx, workload) {
  const m = populationMetrics();
  const pop = node.population;
  const total = pop.agents;
  const perVu = pop.per_vu;
  const joinMs = pop.join_ms;
  const endMs = pop.join_ms + pop.lasting_ms;
  const channel = node.channel;
  const overWs = channel.kind === 'websocket';
  const options = { close: channel.kind === 'per_request' };
  const policy = node.reconnect;
  const budget = policy.budget;
  const seed = node.seed;
  const slots = ctx.slots;
  const slotId = slots.slot('agent_id');
  const slotIndex = slots.slot('agent_index');
  const slotCommand = slots.slot('command');
  slots.bind('seq', (scope) => ++scope.agent.seq, false);
  const identity = node.identity.map(([name, value]) => [slots.slot(name), compileValue(value, ctx)]);
  const register = node.register ? compileAsyncFlow(node.register, ctx, options) : null;
  const registerSlots = node.register ? node.register.extract.map(([name]) => slots.slot(name)) : [];
  const activities = node.activities.map((item) => ({
    every: item.every_ms,
    jitter: item.jitter,
    run: item.do.type === 'send' ? compileSend(item.do.value, ctx) : compileAsyncFlow(item.do, ctx, options),
    send: item.do.type === 'send',
  }));
  const nActs = activities.length;
  const ws = overWs ? compileChannel(channel, ctx) : null;
  const prefix = workload + '-';

  return (exported) => {
    const g = exec.scenario.iterationInTest;
    const first = g * perVu;
    const last = Math.min(total, first + perVu);
    const start = Date.now();
    const endAt = start + endMs;
    const agents = [];
    const timers = new Set();
    let ended = false;
    let open = 0;
    let finish = null;

    const later = (fn, ms) => {
      const id = setTimeout(() => {
        timers.delete(id);
        fn();
      }, ms > 0 ? ms : 0);
      timers.add(id);
      return id;
    };
    const cancel = (id) => {
      if (id !== null) {
        clearTimeout(id);
        timers.delete(id);
      }
    };

    function makeAgent(i) {
      const scope = slots.newScope();
      const a = {
        i,
        scope,
        rng: mulberry32(agentSeed(seed, i)),
        state: IDLE,
        socket: null,
        error: '',
        attempt: 0,
        previous: policy.base_ms,
        downSince: -1,
        t0: 0,
        timer: null,
        acts: nActs > 0 ? new Array(nActs).fill(null) : null,
        due: nActs > 0 ? new Array(nActs).fill(0) : null,
        registered: register === null,
        pending: null,
        seq: 0,
        gen: 0,
      };
      scope.agent = a;
      scope.keep(slotIndex, i);
      scope.keep(slotId, prefix + i);
      for (let k = 0; k < exported.length; k++) scope.keep(exported[k][0], exported[k][1]);
      for (let k = 0; k < identity.length; k++) scope.keep(identity[k][0], identity[k][1](scope));
      return a;
    }

    // -- joining, connecting, losing the connection ------------------------------------

    function join(a) {
      m.joined.add(1);
      if (a.due !== null) {
        const now = Date.now();
        for (let k = 0; k < nActs; k++) {
          a.due[k] = now + a.rng() * activities[k].every;
          schedule(a, k);
        }
      }
      attempt(a);
    }

    function attempt(a) {
      a.state = CONNECTING;
      a.t0 = Date.now();
      a.error = '';
      m.attempts.add(1);
      if (!a.registered) registerAgent(a);
      else if (overWs) openChannel(a);
      else probe(a);
    }

    function registerAgent(a) {
      a.scope.reset();
      register(a.scope).then(
        (ok) => {
          const res = taken(a.scope);
          if (a.state !== CONNECTING) return;
          const failed = httpFailure(res);
          if (failed !== null || !ok) return failure(a, failed || 'status_' + res.status);
          for (let k = 0; k < registerSlots.length; k++) {
            a.scope.keep(registerSlots[k], a.scope.get(registerSlots[k]));
          }
          a.registered = true;
          m.registrations.add(1);
          if (overWs) openChannel(a);
          else established(a);
        },
        (e) => {
          if (a.state === CONNECTING) failure(a, failureReason(String(e)));
        },
      );
    }

    // An HTTP agent's way back: its first activity, until one reaches the service.
    function probe(a) {
      a.scope.reset();
      activities[0].run(a.scope).then(
        () => {
          const res = taken(a.scope);
          if (a.state !== CONNECTING) return;
          const failed = httpFailure(res);
          if (failed !== null) failure(a, failed);
          else established(a);
        },
        (e) => {
          if (a.state === CONNECTING) failure(a, failureReason(String(e)));
        },
      );
    }

    function openChannel(a) {
      a.scope.reset();
      let socket;
      try {
        socket = new WebSocket(ws.url(a.scope), null, ws.params(a.scope));
      } catch (e) {
        return failure(a, failureReason(String(e)));
      }
      // The handlers are the VU's, shared by its agents: each socket says whose it is, and
      // which of that agent's sockets (a closed one's late events are ignored).
      a.socket = socket;
      socket.agent = a;
      socket.gen = ++a.gen;
      open++;
      a.timer = later(() => {
        a.timer = null;
        if (a.socket !== socket || a.state !== CONNECTING) return;
        a.error = 'timeout';
        if (socket.readyState !== CONNECTING_SOCKET) return closeQuietly(socket);
        // Still in its handshake: the attempt has failed; the socket closes when it opens.
        a.socket = null;
        release(socket);
        failure(a, 'timeout');
      }, ws.timeoutMs);
      socket.onopen = onOpen;
      socket.onmessage = onMessage;
      socket.onerror = onError;
      socket.onclose = onClose;
    }

    // The agent whose current socket an event is from, or null (an older socket's).
    function owner(event) {
      const target = event.target;
      const a = target.agent;
      return a !== undefined && a.socket !== null && a.gen === target.gen ? a : null;
    }

    function onOpen(event) {
      const a = owner(event);
      if (a === null) return closeQuietly(event.target); // released in its handshake
      if (ws.hello !== null) a.socket.send(JSON.stringify(ws.hello(a.scope)));
      if (ws.welcome === null) established(a);
    }

    function onMessage(event) {
      const a = owner(event);
      if (a !== null) message(a, a.socket, event.data);
    }

    function onError(event) {
      const a = owner(event);
      if (a !== null && a.error === '') a.error = String(event.error || 'error');
    }

    function onClose(event) {
      open--;
      const a = owner(event);
      if (a !== null) {
        a.socket = null;
        lost(a);
      }
      if (ended && open === 0 && finish !== null) finish();
    }

    function message(a, socket, text) {
      let msg;
      try {
        msg = JSON.parse(text);
      } catch (e) {
        return;
      }
      if (a.state === CONNECTING) {
        if (ws.welcome !== null && ws.welcome(msg)) {
          for (let k = 0; k < ws.extracts.length; k++) {
            const value = getPath(msg, ws.extracts[k][1]);
            if (value !== undefined) a.scope.keep(ws.extracts[k][0], value);
          }
          established(a);
        }
        return;
      }
      const cmd = ws.commands;
      if (a.state !== CONNECTED || cmd === null) return;
      if (cmd.match(msg)) {
        m.commands.add(1);
        if (cmd.confirm !== null) {
          const id = getPath(msg, cmd.id);
          if (id !== undefined) {
            if (a.pending === null) a.pending = new Map();
            if (a.pending.size < 1000) a.pending.set(String(id), Date.now());
          }
        }
        a.scope.reset();
        a.scope.set(slotCommand, msg);
        socket.send(JSON.stringify(cmd.answer(a.scope)));
      } else if (cmd.confirm !== null && a.pending !== null && cmd.confirm(msg)) {
        const key = String(getPath(msg, cmd.id));
        const t = a.pending.get(key);
        if (t !== undefined) {
          a.pending.delete(key);
          m.commandRtt.add(Date.now() - t);
        }
      }
    }

    function established(a) {
      cancel(a.timer);
      a.timer = null;
      const now = Date.now();
      m.connectTime.add(now - a.t0);
      m.connects.add(1);
      if (a.downSince >= 0) {
        m.reconnects.add(1);
        m.reconnectTime.add(now - a.downSince);
        a.downSince = -1;
      }
      a.attempt = 0;
      a.previous = policy.base_ms;
      a.state = CONNECTED;
    }

    // The channel closed, or an HTTP request failed: a failed attempt, or a lost connection.
    function lost(a, reason) {
      cancel(a.timer);
      a.timer = null;
      a.pending = null;
      if (a.state === CONNECTED) {
        m.disconnects.add(1, { reason: reason || failureReason(a.error) });
        a.downSince = Date.now();
        retry(a);
      } else if (a.state === CONNECTING) {
        failure(a, reason || failureReason(a.error));
      }
    }

    function failure(a, reason) {
      cancel(a.timer);
      a.timer = null;
      m.failures.add(1, { reason });
      retry(a);
    }

    function retry(a) {
      if (ended) return;
      if (policy.kind === 'none' || (budget !== null && a.attempt >= budget)) {
        a.state = GONE;
        m.gaveUp.add(1);
        return;
      }
      const wait = reconnectDelay(policy, a.attempt, a.previous, a.rng);
      a.previous = wait;
      a.attempt++;
      a.state = WAITING;
      a.timer = later(() => {
        a.timer = null;
        if (a.state === WAITING) attempt(a);
      }, wait);
    }

    // -- check-ins ----------------------------------------------------------------------

    function schedule(a, k) {
      a.acts[k] = later(() => fire(a, k), a.due[k] - Date.now());
    }

    function fire(a, k) {
      a.acts[k] = null;
      if (ended || a.state === GONE) return;
      const now = Date.now();
      if (a.state === CONNECTED) {
        m.lateness.add(now - a.due[k] > 0 ? now - a.due[k] : 0);
        run(a, k);
      } else if (a.state !== AWAY) {
        m.missed.add(1);
      }
      const item = activities[k];
      a.due[k] += item.every * (1 + item.jitter * (2 * a.rng() - 1));
      if (a.due[k] < endAt) schedule(a, k);
    }

    function run(a, k) {
      a.scope.reset();
      const item = activities[k];
      if (item.send) {
        if (a.socket !== null) item.run(a);
        return;
      }
      item.run(a.scope).then(
        () => {
          const res = taken(a.scope);
          if (overWs || a.state !== CONNECTED) return;
          const failed = httpFailure(res);
          if (failed !== null) lost(a, failed);
        },
        (e) => {
          if (!overWs && a.state === CONNECTED) lost(a, failureReason(String(e)));
        },
      );
    }

    // -- churn and the end --------------------------------------------------------------

    function churn(spec, rng) {
      const rate = (spec.rate_per_s * agents.length) / total;
      if (rate <= 0) return;
      const next = () => {
        later(() => {
          const present = agents.filter((a) => a.state >= CONNECTING && a.state <= WAITING);
          if (present.length > 0) leave(present[Math.floor(rng() * present.length)], spec, rng);
          next();
        }, exponential(1000 / rate, rng));
      };
      next();
    }

    function leave(a, spec, rng) {
      m.left.add(1);
      if (a.state === CONNECTED) m.disconnects.add(1, { reason: 'churn' });
      a.state = AWAY;
      cancel(a.timer);
      a.timer = null;
      if (a.socket !== null) {
        const socket = a.socket;
        a.socket = null;
        release(socket);
      }
      if (rng() < spec.never_back) return;
      later(() => {
        if (ended || a.state !== AWAY) return;
        a.downSince = -1;
        m.joined.add(1);
        attempt(a);
      }, exponential(spec.away_ms, rng));
    }

    function stop(resolve) {
      ended = true;
      for (const id of timers) clearTimeout(id);
      timers.clear();
      for (const a of agents) {
        if (a.state === IDLE || a.state === AWAY || a.state === ENDED) continue;
        m.left.add(1);
        if (a.state === CONNECTED) m.disconnects.add(1, { reason: 'end' });
        a.state = ENDED;
        if (a.socket !== null) release(a.socket);
      }
      if (open === 0) return resolve();
      // A socket that never answers its close lets go after a while; k6 closes it at exit.
      const fallback = setTimeout(() => finish(), CLOSE_WAIT_MS);
      finish = () => {
        finish = null;
        clearTimeout(fallback);
        resolve();
      };
    }

    return new Promise((resolve) => {
      for (let i = first; i < last; i++) agents.push(makeAgent(i));
      // Agents join in index order, evenly over the join time of the whole population.
      let next = 0;
      const joinNext = () => {
        const now = Date.now();
        while (next < agents.length && start + (joinMs * agents[next].i) / total <= now) {
          join(agents[next++]);
        }
        if (next < agents.length) later(joinNext, start + (joinMs * agents[next].i) / total - now);
      };
      joinNext();
      if (node.churn !== null) churn(node.churn, mulberry32(agentSeed(seed ^ 0x5bd1e995, g)));
      setTimeout(() => stop(resolve), endAt - Date.now());
    });
  };
}

// A flow's last response, let go of: an agent keeps nothing of a response it has read.
function taken(scope) {
  const res = scope.response;
  scope.response = null;
  return res;
}

// Lets go of a socket: its events are nobody's from now on. One still in its handshake is
// closed when it opens (by onOpen), or closes by itself when the handshake fails: k6 1.1's
// close() of a CONNECTING socket waits for a writer that only an open socket starts, so a
// handshake that then fails would block the VU for good, past SIGTERM.
function release(socket) {
  socket.agent = undefined;
  if (socket.readyState !== CONNECTING_SOCKET) closeQuietly(socket);
}

function closeQuietly(socket) {
  try {
    socket.close();
  } catch (e) {
    // already closing
  }
}

function compileSend(value, ctx) {
  const build = compileValue(value, ctx);
  return (a) => a.socket.send(JSON.stringify(build(a.scope)));
}

function compileChannel(channel, ctx) {
  const base = ctx.target.replace(/^http/, 'ws');
  const path = compileString(channel.path, ctx, encodeValue);
  const headers = channel.headers.map(([key, value]) => [key, compileString(value, ctx)]);
  const tags = { name: channel.path[0] === 'lit' ? channel.path[1] : 'channel' };
  const cmd = channel.commands;
  return {
    url: (scope) => base + path(scope),
    params: (scope) => {
      const h = {};
      for (let i = 0; i < headers.length; i++) h[headers[i][0]] = headers[i][1](scope);
      return { headers: h, tags };
    },
    hello: channel.hello !== null ? compileValue(channel.hello, ctx) : null,
    welcome: matcher(channel.welcome),
    extracts: channel.welcome_extract.map(([name, path]) => [ctx.slots.slot(name), path]),
    timeoutMs: channel.connect_timeout_ms,
    commands:
      cmd === null
        ? null
        : {
            match: matcher(cmd.match),
            confirm: matcher(cmd.confirm),
            answer: compileValue(cmd.answer, ctx),
            id: cmd.id,
          },
  };
}
