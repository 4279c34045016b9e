/* weirctl web: the dashboard's script. Polls /api/ once a second for the
   node shown (and node_stats of every node for the overview), keeps the
   last 5 minutes in memory for the charts and sparklines, and renders with
   DOM calls only: every string from a node goes in as text, never markup. */
'use strict';

const HISTORY = 300; /* seconds kept: 5 minutes at one poll a second */
const TOP_N = 20;
const DROWNING = 1000; /* a queue this long marks its row */
const state = {
  nodes: [], node: null, view: 'overview', attr: 'message_queue_len',
  detail: null, stats: {}, sched: {}, rates: {}, spark: {}, dhist: [],
  alarmsSeen: {}, alarms: [], crashes: [], tree: null, charts: {}, busy: false,
};

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k instanceof Node ? k : String(k));
  return e;
}
function human(v) {
  if (v == null) return '-';
  if (v < 1e5) return String(Math.round(v * 10) / 10);
  if (v < 1e7) return (v / 1e3).toFixed(1) + 'K';
  if (v < 1e10) return (v / 1e6).toFixed(1) + 'M';
  return (v / 1e9).toFixed(1) + 'G';
}
function bytes(v) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (v >= 1024 && i < 4) { v /= 1024; i++; }
  return i ? v.toFixed(1) + u[i] : v + 'B';
}
function clock(t) { return new Date(t * 1000).toLocaleTimeString(); }

/* ---- fetching ---------------------------------------------------------- */

const errors = new Map();
function showErrors() {
  const box = document.getElementById('error');
  box.replaceChildren(...[...errors.values()].map(m => el('div', {}, m)));
  box.hidden = errors.size === 0;
}
async function api(path, what) {
  let r, body;
  try {
    r = await fetch('api/' + path, { cache: 'no-store' });
    const text = await r.text();
    body = (r.headers.get('Content-Type') || '').startsWith('application/json')
      ? JSON.parse(text) : text;
  } catch (e) {
    errors.set(what, what + ': ' + (r ? 'bad reply (' + e.message + ')' : 'weirctl web is not answering'));
    return null;
  }
  if (!r.ok || (body && body.error)) {
    errors.set(what, what + ': ' + (body && body.error ? body.error : 'HTTP ' + r.status));
    return null;
  }
  errors.delete(what);
  return body;
}
const nodeApi = (cmd, q) => api('node/' + encodeURIComponent(state.node) + '/' + cmd + (q ? '?' + q : ''),
  'node ' + state.node);

/* ---- charts (Debian's Chart.js, embedded) ------------------------------ */

function lineChart(id, labels) {
  if (!window.Chart) return null;
  if (state.charts[id]) return state.charts[id];
  const colors = ['#36c', '#c33', '#4a8', '#e90'];
  state.charts[id] = new Chart(document.getElementById(id), {
    type: 'line',
    data: { labels: [], datasets: labels.map((l, i) => ({ label: l, data: [], borderColor: colors[i],
      pointRadius: 0, borderWidth: 1.5, tension: 0.2 })) },
    options: { animation: false, responsive: true, scales: { y: { beginAtZero: true } },
      plugins: { legend: { display: labels.length > 1 } } },
  });
  return state.charts[id];
}
function setChart(id, labels, times, series) {
  const c = lineChart(id, labels);
  if (!c) return;
  c.data.labels = times.map(t => clock(t));
  series.forEach((s, i) => { c.data.datasets[i].data = s; });
  c.update('none');
}
function sparkline(values) {
  const w = 120, h = 22, max = Math.max(1, ...values);
  const pts = values.map((v, i) => `${(i * w / Math.max(1, values.length - 1)).toFixed(1)},${(h - 1 - v * (h - 2) / max).toFixed(1)}`);
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('width', w); svg.setAttribute('height', h);
  const pl = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  pl.setAttribute('points', pts.join(' '));
  svg.append(pl);
  return svg;
}
function push(arr, v, max) { arr.push(v); if (arr.length > max) arr.shift(); }

/* ---- views ------------------------------------------------------------- */

function renderNodes() {
  const nav = document.getElementById('nodes');
  nav.replaceChildren(...state.nodes.map(n => el('a', {
    href: '#' + state.view, class: (n.node === state.node ? 'current ' : '') + (n.live ? '' : 'down'),
    onclick: ev => { ev.preventDefault(); selectNode(n.node); },
  }, n.node)));
  if (!state.nodes.length) nav.replaceChildren(el('span', { class: 'empty' }, 'no live node in the run dir'));
}

function renderOverview() {
  const cards = state.nodes.map(n => {
    const s = state.stats[n.node];
    if (!s || s.error) return el('div', { class: 'card down' }, el('h3', {}, n.node),
      el('p', {}, s && s.error ? s.error : 'no answer'));
    const r = state.rates[n.node] || {};
    const budget = s.mailbox_budget;
    const frac = budget ? Math.min(1, s.queued_bytes / budget) : 0;
    const up = s.uptime_s;
    return el('div', { class: 'card', 'data-node': n.node }, el('h3', {}, n.node),
      el('dl', {},
        el('dt', {}, 'uptime'), el('dd', {}, `${Math.floor(up / 3600)}h${String(Math.floor(up / 60) % 60).padStart(2, '0')}m${String(Math.floor(up) % 60).padStart(2, '0')}s`),
        el('dt', {}, 'processes'), el('dd', { class: 'procs' }, human(s.processes)),
        el('dt', {}, 'queued messages'), el('dd', {}, human(s.queued_messages)),
        el('dt', {}, 'queued bytes'), el('dd', {}, bytes(s.queued_bytes)),
        el('dt', {}, 'RSS'), el('dd', {}, bytes(s.rss_bytes)),
        el('dt', {}, 'mailbox budget'), el('dd', {}, budget ? `${(frac * 100).toFixed(0)}% of ${bytes(budget)}` : 'none'),
        budget ? el('div', { class: 'meter' }, el('span', { class: frac > 0.8 ? 'high' : '', style: `width:${frac * 100}%` })) : null,
        el('dt', {}, 'crashes/s'), el('dd', {}, (r.crashed || 0).toFixed(1)),
        el('dt', {}, 'drops/s'), el('dd', {}, (r.dropped || 0).toFixed(1)),
        el('dt', {}, 'alarms'), el('dd', {}, s.alarms_active)));
  });
  document.getElementById('cards').replaceChildren(...cards);
  const h = state.sched[state.node] || { t: [], total: [] };
  setChart('chart-sched', ['busy %'], h.t, [h.total]);
  const rh = state.rates[state.node] || { t: [], c: [], d: [] };
  setChart('chart-rates', ['crashes/s', 'drops/s'], rh.t || [], [rh.c || [], rh.d || []]);
}

function renderProcs(list) {
  const tb = document.querySelector('#procs tbody');
  document.getElementById('sort-attr').textContent = state.attr;
  document.querySelectorAll('#procs th.sortable').forEach(th =>
    th.classList.toggle('sorted', th.dataset.attr === state.attr));
  tb.replaceChildren(...list.map(p => {
    const hist = state.spark[p.pid] || [];
    return el('tr', {
      class: p.message_queue_len >= DROWNING ? 'drowning' : '', 'data-pid': p.pid,
      onclick: () => { location.hash = '#proc/' + encodeURIComponent(p.pid); },
    },
    el('td', {}, p.pid), el('td', { class: 'name' }, p.registered_name || '-'),
    el('td', {}, p.current_function),
    el('td', { class: 'num queue' }, p.message_queue_len), el('td', { class: 'num' }, bytes(p.mailbox_bytes)),
    el('td', { class: 'num' }, bytes(p.memory)), el('td', { class: 'num' }, human(p.reductions)),
    el('td', { class: 'num' }, human(p.messages_in)), el('td', { class: 'num' }, human(p.messages_out)),
    el('td', { class: 'num' }, human(p.dropped)),
    el('td', { class: 'num' }, p.in_rate.toFixed(1)), el('td', { class: 'num' }, p.out_rate.toFixed(1)),
    el('td', {}, sparkline(hist.slice(-60))));
  }));
  if (!list.length) tb.replaceChildren(el('tr', {}, el('td', { colspan: 13, class: 'empty' }, 'no processes')));
}

function renderDetail(info) {
  document.getElementById('detail-title').textContent =
    `${info.registered_name || 'process'} ${info.pid} (${info.initial_call})`;
  const tb = document.querySelector('#detail-info tbody');
  tb.replaceChildren(...Object.entries(info).map(([k, v]) =>
    el('tr', {}, el('th', {}, k), el('td', {}, v === null ? '-' : typeof v === 'object' ? JSON.stringify(v) : v))));
  const h = state.dhist;
  setChart('chart-dq', ['queue'], h.map(x => x.t), [h.map(x => x.q)]);
  setChart('chart-drate', ['in/s', 'out/s'], h.map(x => x.t), [h.map(x => x.i), h.map(x => x.o)]);
  setChart('chart-dmem', ['memory'], h.map(x => x.t), [h.map(x => x.m)]);
}

function renderTree(tree) {
  const sups = tree.supervisors || [];
  const byPid = new Map(sups.map(s => [s.pid, s]));
  function supNode(s) {
    const gave = s.intensity_left === 0;
    const li = el('li', {}, el('span', { class: 'sup' + (gave ? ' gaveup' : ''), 'data-pid': s.pid },
      `${s.registered_name || 'supervisor'} ${s.pid}`,
      el('span', { class: 'meta' }, `${s.strategy}, restarts ${s.restarts} (${s.restarts_recent} recent), intensity left ${s.intensity_left} of ${s.max_restarts} in ${s.max_seconds}s`)));
    const ul = el('ul', {});
    for (const c of s.children || []) {
      if (c.supervisor && byPid.has(c.pid)) { ul.append(supNode(byPid.get(c.pid))); continue; }
      ul.append(el('li', {}, el('span', {
        class: 'child' + (c.restarts >= 3 ? ' flapping' : ''), 'data-pid': c.pid,
        onclick: () => { location.hash = '#proc/' + encodeURIComponent(c.pid); },
      }, `${c.registered_name || c.initial_call} ${c.pid}`,
      el('span', { class: 'meta' }, `${c.initial_call}${c.partition != null ? ', partition ' + c.partition : ''}, queue ${c.message_queue_len}, restarted ${c.restarts}×`))));
    }
    li.append(ul);
    return li;
  }
  const roots = sups.filter(s => !s.parent || !byPid.has(s.parent));
  const box = document.getElementById('tree');
  box.replaceChildren(roots.length ? el('ul', { class: 'tree' }, ...roots.map(supNode))
    : el('p', { class: 'empty' }, 'no supervisors on this node'));
}

function renderPartitions(parts) {
  const box = document.getElementById('partitions');
  if (!parts.length) { box.replaceChildren(el('p', { class: 'empty' }, 'no named partition supervisor on this node')); return; }
  box.replaceChildren(...parts.map(p => {
    const tops = p.partitions.map(w => (w.hot_keys && w.hot_keys[0]) ? w.hot_keys[0].count : 0);
    const max = Math.max(1, ...tops);
    const others = tops.slice().sort((a, b) => b - a).slice(1);
    const mean = others.length ? others.reduce((a, b) => a + b, 0) / others.length : 0;
    const hotIdx = tops.indexOf(max);
    return el('div', { class: 'part' }, el('h3', {}, `${p.name} ${p.supervisor}, ${p.count} partitions`),
      el('div', { class: 'bars', title: 'top key count per partition' }, ...tops.map((v, i) =>
        el('div', { class: i === hotIdx && v > 2 * mean && v > 0 ? 'hot' : '', style: `height:${(v / max * 100).toFixed(0)}%`,
          title: `partition ${i}: ${v}` }, el('span', {}, i)))),
      el('table', {}, el('thead', {}, el('tr', {}, ...['partition', 'pid', 'status', 'queue', 'in/s', 'out/s', 'hot keys (key:count)']
        .map(h => el('th', {}, h)))),
      el('tbody', {}, ...p.partitions.map(w => el('tr', {},
        el('td', { class: 'num' }, w.partition), el('td', {}, w.pid || '-'), el('td', {}, w.status),
        el('td', { class: 'num' }, w.message_queue_len ?? '-'), el('td', { class: 'num' }, (w.in_rate ?? 0).toFixed(1)),
        el('td', { class: 'num' }, (w.out_rate ?? 0).toFixed(1)),
        el('td', {}, (w.hot_keys || []).map(k => `${k.key}:${k.count}`).join(' ')))))));
  }));
}

function renderTimeline() {
  const items = [];
  for (const a of state.alarms)
    items.push({ t: a.t, li: el('li', { class: 'alarm' }, el('time', {}, clock(a.t)),
      `alarm ${a.kind} on ${a.registered_name || a.pid || 'the node'}: queue ${a.queue_len}, in ${a.in_rate.toFixed(0)}/s, out ${a.out_rate.toFixed(0)}/s${a.cleared ? ' (cleared)' : ''}`) });
  for (const r of state.crashes) {
    let text;
    if (r.kind === 'supervisor')
      text = `supervisor ${r.registered_name || r.pid} gave up: more than ${r.max_restarts} restarts in ${r.max_seconds}s (child ${r.child_id || r.child})`;
    else {
      const m = r.message ? `, message in hand: tag ${r.message.tag}, ${r.message.len} bytes, head ${r.message.head}` : '';
      const act = r.action === 'restarted' ? `; ${r.supervisor_name || r.supervisor} restarted it as ${r.restarted_as} (restart ${r.restarts} of ${r.max_restarts} in ${r.max_seconds}s)`
        : r.action === 'none' ? '; no supervisor' : `; supervisor: ${r.action}`;
      text = `crash of ${r.registered_name || r.pid} (${r.behaviour}) in ${r.callback || '-'}: ${r.reason}${m}${act}`;
    }
    items.push({ t: r.time, li: el('li', { class: r.kind }, el('time', {}, clock(r.time)), text) });
  }
  items.sort((a, b) => b.t - a.t);
  const ol = document.getElementById('timeline');
  ol.replaceChildren(...items.slice(0, 200).map(x => x.li));
  if (!items.length) ol.replaceChildren(el('li', { class: 'empty' }, 'no alarms and no crashes'));
}

function renderCluster(text) {
  const box = document.getElementById('cluster');
  const lines = String(text).split('\n').filter(l => l.startsWith('weir_agg_stream_'));
  if (!lines.length) {
    box.replaceChildren(el('p', { class: 'empty' }, 'no stream module on this node (its metrics have no weir_agg_stream_* lines)'));
    return;
  }
  const rows = lines.map(l => {
    const m = l.match(/^([a-z_]+)(\{([^}]*)\})?\s+(\S+)/);
    return m ? [m[1], m[3] || '', m[4]] : [l, '', ''];
  });
  box.replaceChildren(el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'metric'), el('th', {}, 'labels (partition, owner...)'), el('th', { class: 'num' }, 'value'))),
    el('tbody', {}, ...rows.map(r => el('tr', {}, el('td', {}, r[0]), el('td', {}, r[1]), el('td', { class: 'num' }, r[2]))))));
}

/* ---- the poll ---------------------------------------------------------- */

async function pollNodes() {
  const r = await api('nodes', 'node list');
  if (r) state.nodes = r.nodes;
  if (!state.node || !state.nodes.some(n => n.node === state.node)) {
    const live = state.nodes.find(n => n.live);
    if (live && !state.node) state.node = live.node;
  }
  if (state.node && !state.nodes.some(n => n.node === state.node))
    state.nodes.push({ node: state.node, live: false });
  renderNodes();
}

async function pollStats(now) {
  await Promise.all(state.nodes.map(async n => {
    const r = await api('node/' + encodeURIComponent(n.node) + '/node_stats', 'node ' + n.node);
    const prev = state.stats[n.node];
    state.stats[n.node] = r || { error: (errors.get('node ' + n.node) || 'no answer') };
    if (r && prev && !prev.error) {
      const dt = Math.max(0.001, r.uptime_s - prev.uptime_s);
      const rh = state.rates[n.node] || (state.rates[n.node] = { t: [], c: [], d: [] });
      rh.crashed = Math.max(0, r.crashed - prev.crashed) / dt;
      rh.dropped = Math.max(0, r.dropped - prev.dropped) / dt;
      push(rh.t, now, HISTORY); push(rh.c, rh.crashed, HISTORY); push(rh.d, rh.dropped, HISTORY);
    }
  }));
}

async function tick() {
  if (state.busy) return; /* never two polls at once: at most one a second */
  state.busy = true;
  const now = Date.now() / 1000;
  try {
    await pollNodes();
    await pollStats(now);
    document.getElementById('clock').textContent = new Date().toLocaleTimeString();
    if (!state.node) { showErrors(); renderOverview(); return; }
    const v = state.view;
    const jobs = [];
    jobs.push(nodeApi('top', `attr=${state.attr}&n=${TOP_N}`).then(r => {
      if (!r) return;
      for (const p of r.processes) push(state.spark[p.pid] || (state.spark[p.pid] = []), p.message_queue_len, HISTORY);
      if (v === 'processes') renderProcs(r.processes);
    }));
    jobs.push(nodeApi('alarms').then(r => {
      if (!r) return;
      const live = new Set();
      for (const a of r.alarms) {
        const key = a.kind + ' ' + (a.pid || '');
        live.add(key);
        if (!state.alarmsSeen[key] || state.alarmsSeen[key].cleared) {
          state.alarmsSeen[key] = Object.assign({ t: now }, a);
          state.alarms.push(state.alarmsSeen[key]);
        } else Object.assign(state.alarmsSeen[key], a);
      }
      for (const [k, a] of Object.entries(state.alarmsSeen)) if (!live.has(k)) a.cleared = true;
    }));
    jobs.push(nodeApi('crashes').then(r => { if (r) state.crashes = r.reports; }));
    if (v === 'overview')
      jobs.push(nodeApi('scheduler_usage', 'ms=200').then(r => {
        if (!r) return;
        const h = state.sched[state.node] || (state.sched[state.node] = { t: [], total: [] });
        push(h.t, now, HISTORY); push(h.total, r.total * 100, HISTORY);
      }));
    if (v === 'tree' || v === 'partitions')
      jobs.push(nodeApi('tree').then(async r => {
        if (!r) return;
        state.tree = r;
        if (v === 'tree') renderTree(r);
        if (v === 'partitions') {
          const names = r.supervisors.filter(s => s.registered_name && s.children.some(c => c.partition != null))
            .map(s => s.registered_name);
          const parts = await Promise.all(names.map(nm => nodeApi('partitions', 'name=' + encodeURIComponent(nm))));
          renderPartitions(parts.filter(Boolean));
        }
      }));
    if (v === 'cluster') jobs.push(nodeApi('metrics').then(r => { if (r != null) renderCluster(r); }));
    if (v === 'detail' && state.detail)
      jobs.push(nodeApi('info', 'pid=' + encodeURIComponent(state.detail)).then(r => {
        if (!r) return;
        push(state.dhist, { t: now, q: r.message_queue_len, i: r.in_rate, o: r.out_rate, m: r.memory }, HISTORY);
        renderDetail(r);
      }));
    await Promise.all(jobs);
    if (v === 'overview') renderOverview();
    if (v === 'timeline') renderTimeline();
    showErrors();
  } finally {
    state.busy = false;
  }
}

function selectNode(name) {
  if (name === state.node) return;
  state.node = name;
  state.spark = {}; state.alarms = []; state.alarmsSeen = {}; state.crashes = []; state.dhist = [];
  renderNodes();
  tick();
}

function route() {
  const h = decodeURIComponent(location.hash.slice(1)) || 'overview';
  if (h.startsWith('proc/')) {
    const pid = h.slice(5);
    if (pid !== state.detail) state.dhist = [];
    state.detail = pid;
    state.view = 'detail';
  } else {
    state.view = ['overview', 'processes', 'tree', 'partitions', 'timeline', 'cluster'].includes(h) ? h : 'overview';
  }
  document.querySelectorAll('.view').forEach(s => s.classList.toggle('current', s.id === 'view-' + state.view));
  document.querySelectorAll('#tabs a').forEach(a => a.classList.toggle('current', a.dataset.view === state.view));
  tick();
}

document.querySelectorAll('#procs th.sortable').forEach(th => th.addEventListener('click', () => {
  state.attr = th.dataset.attr;
  tick();
}));
window.addEventListener('hashchange', route);
route();
setInterval(tick, 1000);
