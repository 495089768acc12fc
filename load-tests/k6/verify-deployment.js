// The deployment check an operator runs after a release:
//
//   AIM_EMAIL=admin@example.com AIM_PASSWORD=... k6 run -e BASE_URL=http://127.0.0.1:8080 \
//     load-tests/k6/verify-deployment.js
//
// (or `load-tests/run verify-deployment`, which starts a service of its own). The run fails
// unless: the status is operational with a healthy database; the admin logs in; an agent and a
// key exist (created when missing); 10 agent-key calls succeed; analytics/usage?period=day then
// shows api_calls risen by exactly the number of authenticated calls this script made since it
// first read it; and trust-score-trends, verification-activity and agents/activity answer with
// this agent's real data. One iteration, about 30 requests; loopback unless BASE_URL says
// otherwise.
import http from 'k6/http';
import { check, fail, sleep } from 'k6';

export const options = {
  vus: 1,
  iterations: 1,
  thresholds: { checks: ['rate==1.0'] },
};

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const AGENT_NAME = __ENV.AGENT_NAME || 'deployment-check';
const CALLS = 10;

function must(ok, what) {
  if (!ok) fail(what);
}

export default function () {
  const status = http.get(`${BASE}/api/v1/status`);
  must(
    check(status, {
      'status is operational': (r) => r.status === 200 && r.json('status') === 'operational',
      'database is healthy': (r) => r.json('services.database') === 'healthy',
    }),
    `status: ${status.body}`,
  );

  const login = http.post(
    `${BASE}/api/v1/auth/login`,
    JSON.stringify({ email: __ENV.AIM_EMAIL, password: __ENV.AIM_PASSWORD }),
    { headers: { 'Content-Type': 'application/json' } },
  );
  must(check(login, { 'login succeeds': (r) => r.status === 200 }), `login: ${login.status}`);
  const user = { headers: { Authorization: `Bearer ${login.json('token')}`, 'Content-Type': 'application/json' } };

  // Authenticated calls are counted from the first usage read on: that read itself is recorded
  // after it answered, so it counts towards the next one.
  let counted = 0;
  const authed = (fn) => {
    counted += 1;
    return fn();
  };
  const before = authed(() => http.get(`${BASE}/api/v1/analytics/usage?period=day`, user));
  must(check(before, { 'usage answers': (r) => r.status === 200 }), `usage: ${before.body}`);
  const start = before.json('api_calls');

  const list = authed(() => http.get(`${BASE}/api/v1/agents?limit=100`, user));
  must(check(list, { 'agents list answers': (r) => r.status === 200 }), `agents: ${list.body}`);
  let agent = (list.json('agents') || list.json('data') || []).find((a) => a.name === AGENT_NAME);
  if (!agent) {
    const created = authed(() => http.post(`${BASE}/api/v1/agents`, JSON.stringify({ name: AGENT_NAME }), user));
    must(check(created, { 'agent created': (r) => r.status === 201 }), `create agent: ${created.body}`);
    agent = created.json();
  }
  // A key's secret is shown once, at creation: each run makes its own and revokes it at the end.
  const key = authed(() => http.post(`${BASE}/api/v1/agents/${agent.id}/api-keys`, '{}', user));
  must(check(key, { 'key created': (r) => r.status === 201 }), `create key: ${key.body}`);
  const asAgent = { headers: { 'X-API-Key': key.json('api_key'), 'Content-Type': 'application/json' } };
  // The trust score written now, so this week's trend has a point.
  const trust = authed(() =>
    http.put(`${BASE}/api/v1/agents/${agent.id}/trust-score`, JSON.stringify({ trust_score: agent.trust_score ?? 0.5, reason: 'deployment check' }), user));
  check(trust, { 'trust score recorded': (r) => r.status === 200 });

  for (let i = 0; i < CALLS; i += 1) {
    const call = authed(() => http.get(`${BASE}/api/v1/agents/${agent.id}`, asAgent));
    check(call, { 'agent call succeeds': (r) => r.status === 200 });
  }
  const verification = authed(() =>
    http.post(`${BASE}/api/v1/agents/${agent.id}/verify-action`, JSON.stringify({ action: 'read:deployment-check' }), asAgent));
  check(verification, { 'verification answered': (r) => r.status === 200 });

  // The pipeline flushes within AIM_ANALYTICS_FLUSH_MS; poll for up to 10 s.
  let usage;
  let expected;
  for (let attempt = 0; attempt < 50; attempt += 1) {
    expected = start + counted;
    usage = authed(() => http.get(`${BASE}/api/v1/analytics/usage?period=day`, user));
    if (usage.status === 200 && usage.json('api_calls') === expected) break;
    sleep(0.2);
  }
  check(usage, {
    [`usage shows exactly the script's calls (>= ${CALLS})`]: (r) =>
      r.status === 200 && r.json('api_calls') === expected && expected - start >= CALLS,
  });
  console.log(`usage api_calls: ${start} -> ${usage.json('api_calls')} (expected ${expected}, script calls ${expected - start})`);

  const trends = authed(() => http.get(`${BASE}/api/v1/analytics/trust-score-trends?weeks=4`, user));
  check(trends, {
    'trust-score-trends has this week': (r) => r.status === 200 && r.json('trends').length > 0 && r.json('trends.0.agent_count') > 0,
  });
  const activity = authed(() => http.get(`${BASE}/api/v1/analytics/verification-activity?months=1`, user));
  check(activity, {
    'verification-activity counts the verification': (r) => r.status === 200 && r.json('activity.0.total') >= 1,
  });
  const agents = authed(() => http.get(`${BASE}/api/v1/analytics/agents/activity?days=1&limit=100`, user));
  check(agents, {
    "agents/activity shows the agent's calls": (r) =>
      r.status === 200 && (r.json('activities') || []).some((a) => a.agent_id === agent.id && a.api_calls >= CALLS),
  });

  const revoked = http.del(`${BASE}/api/v1/agents/${agent.id}/api-keys/${key.json('id')}`, null, user);
  check(revoked, { "the run's key is revoked": (r) => r.status === 204 || r.status === 200 });
}
