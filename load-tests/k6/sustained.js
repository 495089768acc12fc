// Sustained load: agent-key calls at a constant arrival rate mixed with dashboard reads, with
// thresholds on errors and p99, and a final check that the pipeline's accounting balances.
//
//   k6 run -e BASE_URL=... -e METRICS_URL=... -e AGENT_ID=... -e AGENT_KEY=... \
//     -e AIM_EMAIL=... -e AIM_PASSWORD=... [-e RATE=500] [-e DURATION=30s] sustained.js
//
// `load-tests/run sustained` provides all of these. Bounded: RATE × DURATION agent calls plus
// 5 reads a second, never more than MAX_VUS virtual users.
import http from 'k6/http';
import { check, sleep } from 'k6';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const RATE = Number(__ENV.RATE || 500);
const DURATION = __ENV.DURATION || '30s';

export const options = {
  scenarios: {
    agents: {
      executor: 'constant-arrival-rate',
      exec: 'agentCall',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 50,
      maxVUs: Number(__ENV.MAX_VUS || 200),
    },
    dashboard: {
      executor: 'constant-arrival-rate',
      exec: 'dashboardRead',
      rate: 5,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 5,
      maxVUs: 20,
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    'http_req_duration{scenario:agents}': ['p(99)<100'],
    'http_req_duration{scenario:dashboard}': ['p(99)<250'],
    checks: ['rate>0.999'],
    // The accounting check in teardown must hold exactly.
    'checks{accounting:yes}': ['rate==1'],
  },
};

export function setup() {
  const login = http.post(
    `${BASE}/api/v1/auth/login`,
    JSON.stringify({ email: __ENV.AIM_EMAIL, password: __ENV.AIM_PASSWORD }),
    { headers: { 'Content-Type': 'application/json' } },
  );
  check(login, { 'login succeeds': (r) => r.status === 200 });
  return { token: login.json('token') };
}

export function agentCall() {
  const r = http.get(`${BASE}/api/v1/agents/${__ENV.AGENT_ID}`, {
    headers: { 'X-API-Key': __ENV.AGENT_KEY },
  });
  check(r, { 'agent call 200': (res) => res.status === 200 });
}

const READS = [
  '/api/v1/analytics/usage?period=day',
  '/api/v1/analytics/dashboard',
  '/api/v1/analytics/endpoints?period=day',
  '/api/v1/analytics/timeseries?metric=api_calls&interval=hour',
  '/api/v1/analytics/agents/activity?days=1',
];

export function dashboardRead(data) {
  const path = READS[Math.floor(Math.random() * READS.length)];
  const r = http.get(`${BASE}${path}`, { headers: { Authorization: `Bearer ${data.token}` } });
  check(r, { 'dashboard read 200': (res) => res.status === 200 });
}

function counter(text, name) {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sum;
}

export function teardown() {
  if (!__ENV.METRICS_URL) return;
  sleep(2); // the last batch's flush interval
  const text = http.get(__ENV.METRICS_URL).body;
  const received = counter(text, 'aim_analytics_events_received_total');
  const written = counter(text, 'aim_analytics_events_written_total');
  const dropped = counter(text, 'aim_analytics_events_dropped_total');
  const queued = counter(text, 'aim_analytics_queue_depth');
  const inFlight = counter(text, 'aim_analytics_events_in_flight');
  const inSpool = counter(text, 'aim_analytics_events_spooled_total') - counter(text, 'aim_analytics_events_replayed_total');
  console.log(`pipeline: received=${received} written=${written} dropped=${dropped} queued=${queued} in_flight=${inFlight} in_spool=${inSpool}`);
  check(null, {
    'the accounting balances': () => received === written + dropped + queued + inFlight + inSpool,
    'nothing was dropped': () => dropped === 0,
  }, { accounting: 'yes' });
}
