// The status page's live part: it follows /status/events (Server-Sent
// Events; the browser reconnects by itself) and redraws the tables and
// charts from each state the node pushes. No library, no build step.
'use strict';

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';

function cell(tr, text, cls) {
  const td = tr.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function fill(tbody, rows, draw) {
  tbody.replaceChildren();
  for (const row of rows) draw(tbody.insertRow(), row);
}

function sum(obj) { return Object.values(obj || {}).reduce((a, b) => a + b, 0); }

function readiness(n) {
  if (n.ready) return 'ready';
  return 'not ready: ' + Object.entries(n.failures || {}).map(([k, v]) => `${k} (${v})`).join(', ');
}

function age(s) {
  s = Math.round(s);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${s % 60}s`;
}

// chart draws one polyline per series (arrays of numbers) into svg and
// records the newest and the largest value as data attributes.
function chart(svg, series) {
  const all = series.flatMap((s) => s.values);
  const top = Math.max(0, ...all);
  const scale = top > 0 ? top * 1.1 : 1;
  svg.replaceChildren();
  for (const s of series) {
    const n = s.values.length;
    const pts = s.values.map((v, i) => `${n > 1 ? (i / (n - 1)) * 300 : 300},${80 - (v / scale) * 78}`);
    const line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('points', pts.join(' '));
    line.setAttribute('class', s.cls);
    svg.appendChild(line);
  }
  const last = sum(Object.fromEntries(series.map((s, i) => [i, s.values.at(-1) || 0])));
  svg.dataset.last = String(last);
  svg.dataset.max = String(top);
  const label = document.querySelector(`.last[data-for="${svg.id}"]`);
  if (label) label.textContent = last.toFixed(last >= 10 ? 0 : 2);
}

function render(st) {
  const node = st.node;
  $('node-id').textContent = node.id;
  $('node-ready').textContent = node.ready ? 'ready' : 'not ready';
  $('node-ready').className = node.ready ? 'ok' : 'bad';
  $('clients-total').textContent = String(sum(node.clients));
  $('cluster-error').textContent = st.cluster_error || '';

  fill($('nodes').tBodies[0], st.nodes || [], (tr, n) => {
    tr.dataset.node = n.id;
    for (const v of [n.id, n.role, n.version]) cell(tr, v);
    cell(tr, readiness(n), n.ready ? 'ok' : 'bad');
    cell(tr, String(n.clients.websocket || 0));
    cell(tr, String(n.clients.polling || 0));
    cell(tr, String(n.rooms));
    cell(tr, `${n.bus_lag_seconds.toFixed(3)} s`);
    cell(tr, new Date(n.seen_at).toLocaleTimeString());
  });

  const h = st.history || [];
  chart($('chart-emitted'), [{ cls: 'line', values: h.map((p) => p.emitted) }]);
  chart($('chart-deliveries'), [{ cls: 'line', values: h.map((p) => p.deliveries) }]);
  chart($('chart-webhooks'), ['2xx', '4xx', '5xx'].map((c) => ({ cls: `line-${c}`, values: h.map((p) => p.webhooks[c] || 0) })));
  chart($('chart-publish'), [{ cls: 'line', values: h.map((p) => p.publish_ms) }]);

  fill($('recent').tBodies[0], st.recent || [], (tr, e) => {
    tr.dataset.job = e.job_id || '';
    for (const v of [e.source, e.event, e.job_id || '', e.status || '', e.rooms.join(', '), age(e.age_seconds)]) cell(tr, v);
  });
  fill($('rooms').tBodies[0], st.rooms || [], (tr, r) => {
    cell(tr, r.name);
    cell(tr, String(r.members));
  });
}

function follow() {
  const live = $('live');
  const es = new EventSource('/status/events');
  es.addEventListener('state', (ev) => {
    render(JSON.parse(ev.data));
    live.textContent = 'live';
    live.className = 'ok';
  });
  es.onerror = () => {
    live.textContent = 'reconnecting…';
    live.className = 'bad';
  };
}

follow();
