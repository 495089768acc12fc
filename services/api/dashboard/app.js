// The AIM analytics dashboard. A client of the public API and nothing more: it signs in with
// POST /api/v1/auth/login and reads /api/v1/analytics/* with the access token in an
// Authorization header, never in a URL. The token lives in sessionStorage, so it is gone when
// the tab closes. Every figure comes from the API; nothing is made up when there is no data.
// Charts are small hand-written SVG, so the build needs no JavaScript toolchain.
"use strict";

(() => {
  const API = "/api/v1";
  const REFRESH_MS = 30_000;
  const SESSION_KEY = "aim.session";
  const SVG = "http://www.w3.org/2000/svg";

  /** What each period asks of each endpoint. Hourly charts up to a week, daily beyond. */
  const PERIODS = {
    day: { days: 1, interval: "hour", weeks: 12, months: 6 },
    week: { days: 7, interval: "hour", weeks: 12, months: 6 },
    month: { days: 30, interval: "day", weeks: 12, months: 6 },
    year: { days: 365, interval: "day", weeks: 52, months: 12 },
  };

  const COLORS = {
    calls: "#1d5bb8",
    errors: "#b3261e",
    p50: "#1e6b3a",
    p95: "#1d5bb8",
    p99: "#8a3ab9",
    score: "#1d5bb8",
    verified: "#1e6b3a",
    failed: "#b3261e",
    pending: "#b07a00",
  };

  const $ = (id) => document.getElementById(id);

  // ---- formatting -------------------------------------------------------------------------

  const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const fmt = {
    count: (v) => integer.format(v),
    percent: (v) => `${v.toFixed(2)} %`,
    ms: (v) => `${v < 10 ? v.toFixed(2) : v.toFixed(1)} ms`,
    score: (v) => v.toFixed(2),
    mib: (v) => `${v.toFixed(2)} MiB`,
  };
  const pad = (n) => String(n).padStart(2, "0");
  const hourLabel = (iso) => {
    const d = new Date(iso);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:00`;
  };
  const minuteLabel = (iso) => {
    const d = new Date(iso);
    return `${hourLabel(iso).slice(0, 11)}${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  };
  const dayLabel = (iso) => iso.slice(0, 10);
  const shortLabel = (iso, interval) => {
    const d = new Date(iso);
    return interval === "hour"
      ? `${pad(d.getUTCDate())}/${pad(d.getUTCMonth() + 1)} ${pad(d.getUTCHours())}h`
      : `${pad(d.getUTCDate())}/${pad(d.getUTCMonth() + 1)}`;
  };
  const clockTime = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;

  // ---- DOM helpers: text goes in as text, never as markup (agent names are user input) ----

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
    return el;
  }

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    setAttrs(el, attrs);
    el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
    return el;
  }

  function setAttrs(el, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else el.setAttribute(name, value === true ? "" : String(value));
    }
  }

  function fill(id, ...children) {
    const el = $(id);
    el.replaceChildren(...children.flat().filter(Boolean));
    el.removeAttribute("aria-busy");
  }

  /** A table; each column is [heading, cell(row) → text | Node, options]. */
  function table(caption, columns, rows, rowAttrs) {
    return h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        null,
        caption ? h("caption", null, caption) : null,
        h("thead", null, h("tr", null, columns.map(([head, , o]) => h("th", { scope: "col", class: o?.cls }, head)))),
        h(
          "tbody",
          null,
          rows.map((row) =>
            h(
              "tr",
              rowAttrs ? rowAttrs(row) : null,
              columns.map(([, cell, o], i) => {
                const value = cell(row);
                const attrs = { class: o?.cls, "data-col": o?.key };
                return i === 0 ? h("th", { scope: "row", ...attrs }, value) : h("td", attrs, value);
              }),
            ),
          ),
        ),
      ),
    );
  }

  // ---- session and API ---------------------------------------------------------------------

  let session = null;
  try {
    session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
  } catch {
    session = null;
  }

  function saveSession(answer) {
    session = {
      token: answer.access_token,
      refresh_token: answer.refresh_token,
      user: answer.user || session?.user,
    };
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  }

  class ApiFailure extends Error {
    constructor(status, message, retryAfter) {
      super(message);
      this.status = status;
      this.retryAfter = retryAfter;
    }
  }

  async function readError(response) {
    let message = `${response.status} ${response.statusText}`.trim();
    try {
      const body = await response.json();
      if (body?.error?.message) message = body.error.message;
    } catch {
      // Not JSON (a proxy's page): the status line says enough.
    }
    return new ApiFailure(response.status, message, response.headers.get("Retry-After"));
  }

  let refreshing = null;

  /** Swaps the refresh token for a new pair, once for all the requests that saw a 401. */
  function refreshSession() {
    if (!refreshing) {
      refreshing = (async () => {
        if (!session?.refresh_token) return false;
        const response = await fetch(`${API}/auth/refresh`, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ refresh_token: session.refresh_token }),
        });
        if (!response.ok) return false;
        saveSession(await response.json());
        return true;
      })().finally(() => {
        refreshing = null;
      });
    }
    return refreshing;
  }

  async function api(path, retried = false) {
    if (!session) throw new ApiFailure(401, "Not signed in.");
    const response = await fetch(API + path, {
      headers: { Authorization: `Bearer ${session.token}`, Accept: "application/json" },
      cache: "no-store",
    });
    if (response.status === 401 && !retried) {
      if (await refreshSession()) return api(path, true);
      signOut("Your session has ended. Sign in again.");
      throw new ApiFailure(401, "Your session has ended.");
    }
    if (!response.ok) throw await readError(response);
    return response.json();
  }

  // ---- charts ------------------------------------------------------------------------------

  // Charts are drawn at the pixel width of their container (the viewBox is that width), so
  // text keeps its size on a phone and on a wide screen; a resize redraws them.
  const H = 220;
  const M = { top: 12, right: 12, bottom: 28, left: 64 };

  /** Tick spacing of 1, 2 or 5 × 10ⁿ, whole numbers for counts, at most four steps to `v`. */
  function ticks(v, whole) {
    const raw = v > 0 ? v / 4 : 1;
    const power = 10 ** Math.floor(Math.log10(raw));
    let step = [1, 2, 5, 10].map((m) => m * power).find((candidate) => candidate >= raw);
    if (whole) step = Math.max(1, Math.round(step));
    const count = Math.max(1, Math.ceil(v / step - 1e-9));
    return { step, max: step * count, count };
  }

  function frame(width, values, format, whole, labels) {
    const { step, max, count } = ticks(Math.max(0, ...values), whole);
    const plotW = width - M.left - M.right;
    const plotH = H - M.top - M.bottom;
    const y = (v) => M.top + plotH - (v / max) * plotH;
    const parts = [];
    for (let i = 0; i <= count; i++) {
      const v = step * i;
      parts.push(s("line", { class: "grid", x1: M.left, x2: width - M.right, y1: y(v), y2: y(v) }));
      parts.push(s("text", { x: M.left - 6, y: y(v) + 4, "text-anchor": "end" }, format(v)));
    }
    parts.push(s("line", { class: "axis", x1: M.left, x2: width - M.right, y1: y(0), y2: y(0) }));
    const n = labels.length;
    const every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(plotW / 80))));
    const x = (i) => M.left + ((i + 0.5) * plotW) / n;
    for (let i = 0; i < n; i += every) {
      parts.push(s("text", { x: x(i), y: H - 8, "text-anchor": "middle" }, labels[i]));
    }
    return { parts, x, y, plotW, plotH };
  }

  function svg(width, title, description, parts) {
    const id = `c${Math.random().toString(36).slice(2, 9)}`;
    return s(
      "svg",
      { viewBox: `0 0 ${width} ${H}`, width, height: H, role: "img", "aria-labelledby": `${id}t ${id}d`, preserveAspectRatio: "xMidYMid meet" },
      s("title", { id: `${id}t` }, title),
      s("desc", { id: `${id}d` }, description),
      parts,
    );
  }

  function legend(series) {
    return h(
      "div",
      { class: "legend", "aria-hidden": "true" },
      series.map((one) => h("span", { class: `swatch-${one.key}` }, one.name)),
    );
  }

  /**
   * Bars for each series side by side per bucket. `series`: [{name, color, values}],
   * `labels`: short x labels, `full`: a full label per bucket for tooltips.
   */
  function barChart({ width, title, description, series, labels, full, format, stacked }) {
    const totals = labels.map((_, i) =>
      stacked ? series.reduce((sum, one) => sum + one.values[i], 0) : Math.max(...series.map((one) => one.values[i])),
    );
    const f = frame(width, totals, format, true, labels);
    const slot = f.plotW / labels.length;
    const groupW = Math.max(1, slot * 0.8);
    const bars = [];
    labels.forEach((_, i) => {
      let base = 0;
      series.forEach((one, k) => {
        const v = one.values[i];
        if (!(v > 0)) return;
        const w = stacked ? groupW : groupW / series.length;
        const x = M.left + i * slot + (slot - groupW) / 2 + (stacked ? 0 : k * w);
        const top = f.y(base + v);
        const height = f.y(base) - top;
        bars.push(
          s("rect", { x, y: top, width: Math.max(0.5, w - (stacked ? 0 : 0.5)), height, fill: one.color },
            s("title", null, `${full[i]}: ${one.name} ${format(v)}`)),
        );
        if (stacked) base += v;
      });
    });
    return [legend(series), svg(width, title, description, [...f.parts, ...bars])];
  }

  function lineChart({ width, title, description, series, labels, full, format }) {
    const f = frame(width, series.flatMap((one) => one.values), format, false, labels);
    const lines = series.map((one) => {
      const points = one.values.map((v, i) => `${f.x(i).toFixed(1)},${f.y(v).toFixed(1)}`);
      const dots = labels.length <= 60
        ? one.values.map((v, i) =>
            s("circle", { cx: f.x(i), cy: f.y(v), r: 3, fill: one.color },
              s("title", null, `${full[i]}: ${one.name} ${format(v)}`)))
        : [];
      return s("g", null,
        s("polyline", { points: points.join(" "), fill: "none", stroke: one.color, "stroke-width": 2, "stroke-linejoin": "round" }),
        dots);
    });
    return [legend(series), svg(width, title, description, [...f.parts, ...lines])];
  }

  const widthOf = (id) => Math.max(280, Math.floor($(id).clientWidth || 640));

  /** The numbers behind a chart, as a table a screen reader (or anyone) can read. */
  function dataTable(caption, full, series, format) {
    return h(
      "details",
      null,
      h("summary", null, "Show the data as a table"),
      table(
        caption,
        [["Time", (i) => full[i], { cls: "text" }], ...series.map((one) => [one.name, (i) => format(one.values[i])])],
        full.map((_, i) => i),
      ),
    );
  }

  // ---- the panels --------------------------------------------------------------------------

  function tile(key, label, value, text, sub) {
    return h(
      "div",
      { class: "tile" },
      h("dt", null, label),
      h("dd", { "data-tile": key, "data-value": value }, text, sub ? h("span", { class: "sub" }, sub) : null),
    );
  }

  function renderTiles(usage) {
    fill(
      "tiles",
      tile("api_calls", "Calls", usage.api_calls, fmt.count(usage.api_calls)),
      tile("error_rate", "Error rate", usage.error_rate, fmt.percent(usage.error_rate), "answered 4xx or 5xx"),
      tile("p95_response_time_ms", "p95 latency", usage.p95_response_time_ms, fmt.ms(usage.p95_response_time_ms)),
      tile("active_agents", "Active agents", usage.active_agents, fmt.count(usage.active_agents), `of ${fmt.count(usage.total_agents)} agents`),
      tile("uptime", "Uptime", usage.uptime, fmt.percent(usage.uptime), "calls not answered 5xx"),
    );
  }

  function seriesLabels(points, interval) {
    return {
      labels: points.map((p) => shortLabel(p.timestamp, interval)),
      full: points.map((p) => (interval === "hour" ? hourLabel(p.timestamp) : dayLabel(p.timestamp))),
    };
  }

  function renderCalls(calls, errors, interval) {
    const { labels, full } = seriesLabels(calls.points, interval);
    const series = [
      { name: "Calls", key: "calls", color: COLORS.calls, values: calls.points.map((p) => p.value) },
      { name: "Errors", key: "errors", color: COLORS.errors, values: errors.points.map((p) => p.value) },
    ];
    const total = series[0].values.reduce((a, b) => a + b, 0);
    const failed = series[1].values.reduce((a, b) => a + b, 0);
    const per = interval === "hour" ? "hour" : "day";
    fill(
      "calls-chart",
      barChart({
        width: widthOf("calls-chart"),
        title: `Calls and errors per ${per}`,
        description: `${fmt.count(total)} calls and ${fmt.count(failed)} errors over ${full.length} ${per}s.`,
        series, labels, full, format: fmt.count,
      }),
      h("p", { class: "summary" }, `${fmt.count(total)} calls, ${fmt.count(failed)} errors, per ${per} (UTC).`),
      dataTable(`Calls and errors per ${per} (UTC)`, full, series, fmt.count),
    );
  }

  function renderLatency(p50, p95, p99, interval) {
    const { labels, full } = seriesLabels(p95.points, interval);
    const series = [
      { name: "p50", key: "p50", color: COLORS.p50, values: p50.points.map((p) => p.value) },
      { name: "p95", key: "p95", color: COLORS.p95, values: p95.points.map((p) => p.value) },
      { name: "p99", key: "p99", color: COLORS.p99, values: p99.points.map((p) => p.value) },
    ];
    const worst = Math.max(0, ...series[2].values);
    fill(
      "latency-chart",
      lineChart({
        width: widthOf("latency-chart"),
        title: "Latency percentiles",
        description: `p50, p95 and p99 response times per ${interval}; the highest p99 is ${fmt.ms(worst)}.`,
        series, labels, full, format: fmt.ms,
      }),
      h("p", { class: "summary" }, `Response time per ${interval} (UTC); 0 where there were no calls.`),
      dataTable(`Latency percentiles per ${interval} (UTC)`, full, series, fmt.ms),
    );
  }

  function renderEndpoints(list) {
    if (list.endpoints.length === 0) {
      fill("endpoints", h("p", { class: "empty" }, "No endpoint was called in this period."));
      return;
    }
    fill(
      "endpoints",
      table(
        "Busiest first, over the selected period",
        [
          ["Endpoint", (e) => `${e.method} ${e.endpoint}`, { cls: "text wrap", key: "endpoint" }],
          ["Calls", (e) => fmt.count(e.calls), { key: "calls" }],
          ["Errors", (e) => fmt.count(e.errors), { key: "errors" }],
          ["Error rate", (e) => fmt.percent(e.error_rate), { key: "error_rate" }],
          ["p95", (e) => fmt.ms(e.p95_ms), { key: "p95_ms" }],
        ],
        list.endpoints,
        (e) => ({ "data-endpoint": `${e.method} ${e.endpoint}` }),
      ),
    );
  }

  const RULES = {
    score_below: "Score below threshold",
    score_drop: "Score dropped",
    error_rate_spike: "Error-rate spike",
    volume_anomaly: "Call-volume anomaly",
    suspended: "Suspended",
  };

  function renderAlerts(list) {
    if (list.alerts.length === 0) {
      fill("alerts", h("p", { class: "empty" }, "No open alert: no agent meets a rule of the organization's trust policy."));
      return;
    }
    const names = new Map((shown && shown.agents ? shown.agents.activities : []).map((a) => [a.agent_id, a.agent_name]));
    fill(
      "alerts",
      table(
        list.alerts.length < list.total ? `The ${list.alerts.length} newest of ${list.total} open alerts` : "Newest first",
        [
          ["Opened", (a) => minuteLabel(a.opened_at), { cls: "text" }],
          ["Agent", (a) => names.get(a.agent_id) || a.agent_id, { cls: "text" }],
          ["Rule", (a) => RULES[a.rule] || a.rule, { cls: "text", key: "rule" }],
          ["What was seen", (a) => a.message, { cls: "text" }],
        ],
        list.alerts,
        (a) => ({ "data-alert": a.id }),
      ),
    );
  }

  function renderAgents(activity) {
    if (activity.activities.length === 0) {
      fill("agents", h("p", { class: "empty" }, "This organization has no agents yet. Create one with POST /api/v1/agents."));
      return;
    }
    const listed = activity.activities.length;
    fill(
      "agents",
      table(
        listed < activity.total ? `The ${listed} busiest of ${activity.total} agents` : "Busiest first, over the selected period",
        [
          ["Agent", (a) => h("button", { type: "button", class: "link", "data-agent": a.agent_id, onclick: () => openAgent(a) }, a.agent_name), { cls: "text", key: "name" }],
          ["Status", (a) => h("span", { class: `badge ${a.status}` }, a.status), { cls: "text", key: "status" }],
          ["Trust score", (a) => fmt.score(a.trust_score), { key: "trust_score" }],
          ["Calls", (a) => fmt.count(a.api_calls), { key: "api_calls" }],
          ["Errors", (a) => fmt.count(a.errors), { key: "errors" }],
          ["p95", (a) => fmt.ms(a.p95_response_time_ms), { key: "p95" }],
          ["Last active", (a) => (a.last_active ? minuteLabel(a.last_active) : "never"), { cls: "text" }],
        ],
        activity.activities,
        (a) => ({ "data-agent-row": a.agent_id }),
      ),
    );
  }

  function renderTrust(trends) {
    if (trends.trends.length === 0) {
      fill("trust-chart", h("p", { class: "empty" }, "No trust score was recorded in these weeks."));
      return;
    }
    const full = trends.trends.map((t) => `Week of ${t.week_start}`);
    const labels = trends.trends.map((t) => t.week_start.slice(5));
    const series = [{ name: "Average score", key: "score", color: COLORS.score, values: trends.trends.map((t) => t.avg_score) }];
    const { overall_avg, trend_direction, change_percentage } = trends.summary;
    fill(
      "trust-chart",
      lineChart({
        width: widthOf("trust-chart"),
        title: "Average trust score per week",
        description: `Average ${fmt.score(overall_avg)}, trend ${trend_direction} (${change_percentage.toFixed(1)} %).`,
        series, labels, full, format: fmt.score,
      }),
      h("p", { class: "summary" }, `Average ${fmt.score(overall_avg)}; trend ${trend_direction} (${change_percentage.toFixed(1)} %).`),
      dataTable("Average trust score per week (each agent's last score that week)", full, series, fmt.score),
    );
  }

  function renderVerifications(activity) {
    const months = activity.activity;
    const full = months.map((m) => m.month_year);
    const labels = months.map((m) => m.month);
    const series = [
      { name: "Verified", key: "verified", color: COLORS.verified, values: months.map((m) => m.verified) },
      { name: "Failed", key: "failed", color: COLORS.failed, values: months.map((m) => m.failed) },
      { name: "Pending", key: "pending", color: COLORS.pending, values: months.map((m) => m.pending) },
    ];
    const total = months.reduce((sum, m) => sum + m.total, 0);
    fill(
      "verifications-chart",
      total === 0 ? h("p", { class: "empty" }, "No verification was requested in these months.") : null,
      barChart({
        width: widthOf("verifications-chart"),
        title: "Verifications per month",
        description: `${fmt.count(total)} verifications over ${months.length} months.`,
        series, labels, full, format: fmt.count, stacked: true,
      }),
      dataTable("Verifications per month", full, series, fmt.count),
    );
  }

  // ---- one agent ---------------------------------------------------------------------------

  let openAgentId = null;

  async function openAgent(agent) {
    openAgentId = agent.agent_id;
    shownAgent = null;
    $("agent-detail").hidden = false;
    $("agent-title").textContent = `${agent.agent_name}: trust and hourly activity`;
    $("agent-body").replaceChildren(h("p", { class: "loading" }, "Loading…"));
    $("agent-title").focus();
    await loadAgent();
  }

  async function loadAgent() {
    const id = openAgentId;
    if (!id) return;
    const hours = Math.min(720, PERIODS[period()].days * 24);
    try {
      const agentPath = `/agents/${encodeURIComponent(id)}`;
      const [activity, trust, history] = await Promise.all([
        api(`/analytics${agentPath}/activity?hours=${hours}`),
        api(`${agentPath}/trust-score`),
        api(`${agentPath}/trust-history?limit=10`),
      ]);
      if (openAgentId !== id) return;
      shownAgent = { activity, hours, trust, history };
      renderAgent(activity, hours, trust, history);
    } catch (error) {
      if (openAgentId === id) {
        $("agent-body").replaceChildren(h("p", { class: "notice error", role: "alert" }, `Could not load this agent: ${error.message}`));
      }
    }
  }

  let shownAgent = null;

  const FACTORS = {
    verification: "Verification outcomes",
    error_rate: "Error rate",
    volume: "Call volume",
    key_hygiene: "Key hygiene",
    activity: "Activity",
  };

  function trustParts(trust, history) {
    const a = trust.assessment;
    const total = a.factors.reduce((sum, f) => sum + f.weight, 0) || 1;
    const held = a.admin_override
      ? ` Held at ${fmt.score(a.score)} by an override (${a.admin_override.reason})${a.admin_override.expires_at ? ` until ${minuteLabel(a.admin_override.expires_at)}` : ""}; computed ${fmt.score(a.computed_score)}.`
      : "";
    return [
      h("p", { class: "summary", "data-agent-status": trust.status },
        h("span", { class: `badge ${trust.status}` }, trust.status),
        ` Trust score ${fmt.score(trust.trust_score)}; computed now ${fmt.score(a.computed_score)}.${held}`),
      table("Factors of the score (each 0–1; 1 is what a well-behaved agent earns)", [
        ["Factor", (f) => FACTORS[f.factor] || f.factor, { cls: "text" }],
        ["Value", (f) => fmt.score(f.value), { key: "value" }],
        ["Weight", (f) => `${((f.weight / total) * 100).toFixed(0)} %`, { key: "weight" }],
        ["From", (f) => f.detail, { cls: "text" }],
      ], a.factors, (f) => ({ "data-factor": f.factor })),
      history.history.length === 0 ? null : table("Score history, newest first", [
        ["When", (c) => minuteLabel(c.recorded_at), { cls: "text" }],
        ["Score", (c) => fmt.score(c.trust_score), { key: "score" }],
        ["Reason", (c) => c.change_reason, { cls: "text" }],
        ["By", (c) => (c.changed_by ? "a user" : "the service"), { cls: "text" }],
      ], history.history, (c) => ({ "data-history": c.id })),
    ].filter(Boolean);
  }

  function renderAgent(activity, hours, trust, history) {
    const full = activity.hours.map((x) => hourLabel(x.hour));
    const labels = activity.hours.map((x) => shortLabel(x.hour, "hour"));
    const series = [
      { name: "Calls", key: "calls", color: COLORS.calls, values: activity.hours.map((x) => x.api_calls) },
      { name: "Errors", key: "errors", color: COLORS.errors, values: activity.hours.map((x) => x.errors) },
    ];
    const total = series[0].values.reduce((a, b) => a + b, 0);
    $("agent-body").replaceChildren(
      ...trustParts(trust, history),
      h("p", { class: "summary", "data-agent-total": total }, `${fmt.count(total)} calls in the last ${hours} hours (UTC).`),
      ...barChart({
        width: widthOf("agent-body"),
        title: "Calls and errors per hour",
        description: `${fmt.count(total)} calls over ${hours} hours.`,
        series, labels, full, format: fmt.count,
      }),
      dataTable("Calls and errors per hour (UTC)", full, series, fmt.count),
    );
  }

  // ---- loading -----------------------------------------------------------------------------

  const period = () => $("period").value;
  let timer = null;
  let loading = false;
  /** A change of period (or a refresh) asked for while a load was running: load again after. */
  let again = false;

  async function load() {
    if (!session) return;
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    again = false;
    $("refresh").disabled = true;
    $("dashboard").setAttribute("aria-busy", "true");
    $("status").textContent = "Loading…";
    const p = PERIODS[period()];
    const to = new Date();
    const step = p.interval === "hour" ? 3_600_000 : 86_400_000;
    const from = new Date(to.getTime() - p.days * 86_400_000 + (p.interval === "day" ? step : 0));
    const range = `interval=${p.interval}&from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`;
    const series = (metric) => api(`/analytics/timeseries?metric=${metric}&${range}`);
    try {
      const [usage, calls, errors, p50, p95, p99, endpoints, agents, trust, verifications, alerts] = await Promise.all([
        api(`/analytics/usage?period=${period()}`),
        series("api_calls"),
        series("errors"),
        series("p50_latency"),
        series("p95_latency"),
        series("p99_latency"),
        api(`/analytics/endpoints?period=${period()}&limit=10`),
        api(`/analytics/agents/activity?days=${p.days}&limit=100`),
        api(`/analytics/trust-score-trends?weeks=${p.weeks}`),
        api(`/analytics/verification-activity?months=${p.months}`),
        api("/alerts?status=open&limit=20"),
      ]);
      shown = { usage, calls, errors, p50, p95, p99, endpoints, agents, trust, verifications, alerts, interval: p.interval };
      render(shown);
      const empty = $("empty");
      empty.hidden = usage.api_calls !== 0;
      empty.textContent = usage.api_calls === 0
        ? "No API calls were recorded in this period, so the figures below are zeros. Calls your agents make with their API keys (and this page's own requests) appear here within a few seconds."
        : "";
      $("problem").hidden = true;
      $("status").textContent = `Updated ${clockTime(new Date())}; refreshes every ${REFRESH_MS / 1000} s. Times are UTC.`;
      document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
      if (openAgentId) await loadAgent();
    } catch (error) {
      if (!session) return;
      const retry = error.retryAfter ? ` The server asks to retry in ${error.retryAfter} s.` : "";
      const problem = $("problem");
      problem.textContent = `Could not load the analytics: ${error.message}${error.status ? ` (HTTP ${error.status})` : ""}.${retry} The figures shown may be out of date; trying again in ${REFRESH_MS / 1000} s.`;
      problem.hidden = false;
      $("status").textContent = "Last refresh failed.";
    } finally {
      loading = false;
      $("refresh").disabled = false;
      $("dashboard").removeAttribute("aria-busy");
    }
    if (again && session) load();
  }

  /** The last answers, drawn again when the window's width changes. */
  let shown = null;

  function render(d) {
    renderTiles(d.usage);
    renderCalls(d.calls, d.errors, d.interval);
    renderLatency(d.p50, d.p95, d.p99, d.interval);
    renderEndpoints(d.endpoints);
    renderAlerts(d.alerts);
    renderAgents(d.agents);
    renderTrust(d.trust);
    renderVerifications(d.verifications);
  }

  function schedule() {
    clearInterval(timer);
    timer = setInterval(() => {
      if (document.visibilityState === "visible") load();
    }, REFRESH_MS);
  }

  // ---- signing in and out ------------------------------------------------------------------

  function showLogin(message) {
    $("dashboard").hidden = true;
    $("session").hidden = true;
    $("login").hidden = false;
    const error = $("login-error");
    error.hidden = !message;
    error.textContent = message || "";
    $("email").focus();
  }

  function showDashboard() {
    $("login").hidden = true;
    $("dashboard").hidden = false;
    $("session").hidden = false;
    const user = session.user;
    $("who").textContent = user ? `${user.email} (${user.role})` : "";
    load();
    schedule();
  }

  function signOut(message) {
    const refreshToken = session?.refresh_token;
    const token = session?.token;
    session = null;
    openAgentId = null;
    sessionStorage.removeItem(SESSION_KEY);
    clearInterval(timer);
    if (refreshToken) {
      fetch(`${API}/auth/logout`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
        body: JSON.stringify({ refresh_token: refreshToken }),
      }).catch(() => {
        // Signing out locally has already happened; the refresh token expires on its own.
      });
    }
    showLogin(message);
  }

  async function signIn(event) {
    event.preventDefault();
    const email = $("email").value.trim();
    const password = $("password").value;
    const error = $("login-error");
    if (!email || !password) {
      error.textContent = "Enter your email and password.";
      error.hidden = false;
      return;
    }
    const button = $("sign-in");
    button.disabled = true;
    try {
      const response = await fetch(`${API}/auth/login`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ email, password }),
      });
      if (!response.ok) {
        const failure = await readError(response);
        error.textContent = response.status === 401
          ? "The email or password is wrong."
          : response.status === 429
            ? `Too many sign-in attempts. Try again in ${failure.retryAfter || "a few"} seconds.`
            : `Could not sign in: ${failure.message}`;
        error.hidden = false;
        return;
      }
      saveSession(await response.json());
      $("password").value = "";
      error.hidden = true;
      showDashboard();
      $("main").focus();
    } catch (failure) {
      error.textContent = `Could not reach the server: ${failure.message}`;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", () => signOut());
    $("refresh").addEventListener("click", () => load());
    $("period").addEventListener("change", () => load());
    $("agent-close").addEventListener("click", () => {
      openAgentId = null;
      $("agent-detail").hidden = true;
      $("agents").querySelector("button")?.focus();
    });
    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => {
        if (shown && session) render(shown);
        if (shownAgent && openAgentId) renderAgent(shownAgent.activity, shownAgent.hours, shownAgent.trust, shownAgent.history);
      }, 200);
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && session) load();
    });
    if (session?.token) showDashboard();
    else showLogin();
  });
})();
