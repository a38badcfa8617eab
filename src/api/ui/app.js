// shoal's web UI: plain JavaScript, no framework. It talks only to the node
// that served it (the node forwards what it must), with the token the user
// gave, kept in sessionStorage (gone when the tab closes).
'use strict';

const TOKEN_KEY = 'shoal.token';
// Every kind the views show, followed on one stream (/v1/watch): a browser
// holds six HTTP/1.1 connections per host, too few for a stream per kind.
const KINDS = ['nodes', 'pods', 'deployments', 'replicasets', 'statefulsets', 'daemonsets',
  'jobs', 'cronjobs', 'events', 'services', 'horizontalpodautoscalers'];
const KIND_OF = {
  nodes: 'Node', pods: 'Pod', deployments: 'Deployment', replicasets: 'ReplicaSet',
  statefulsets: 'StatefulSet', daemonsets: 'DaemonSet', jobs: 'Job', cronjobs: 'CronJob',
  events: 'Event', services: 'Service', horizontalpodautoscalers: 'HorizontalPodAutoscaler',
};
const PLURAL = Object.fromEntries(Object.entries(KIND_OF).map(([p, k]) => [k, p]));
// The log view keeps this much text; older output scrolls away.
const LOG_MAX_CHARS = 256 * 1024;
// Events rendered at most (newest first).
const EVENTS_SHOWN = 300;

const state = {
  objects: new Map(KINDS.map((p) => [KIND_OF[p], new Map()])),
  raft: null, members: null, nodeMetrics: new Map(), podMetrics: new Map(), endpoints: null,
  drafts: new Map(), live: false, epoch: 0, watchAbort: null, logAbort: null, polls: [],
};

// ---- small helpers ----

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function table(headers, rows) {
  return h('table', {},
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { class: /^(CPU|Memory|Restarts|Count)/.test(x) ? 'num' : null }, x)))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, 'none'))));
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

function headers() {
  const t = token();
  return t ? { Authorization: 'Bearer ' + t } : {};
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body, signal) {
  const init = { method, headers: headers(), signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const r = await fetch(path, init);
  if (!r.ok) {
    let msg = r.statusText;
    try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
    if (r.status === 401) needLogin(msg);
    throw new ApiError(r.status, msg);
  }
  return r.json();
}

function banner(text, kind) {
  const b = document.getElementById('banner');
  if (!text) { b.hidden = true; return; }
  b.hidden = false;
  b.className = kind || '';
  b.textContent = text;
}

function needLogin(msg) {
  banner('The API refused the request (' + msg + '): enter an API token above and log in.', 'error');
  document.getElementById('token').focus();
}

const ns = (o) => o.metadata.namespace || '';
const keyOf = (o) => ns(o) + '/' + o.metadata.name;
const rv = (o) => Number(o.metadata.resourceVersion || 0);
const list = (kind) => [...state.objects.get(kind).values()]
  .sort((a, b) => keyOf(a).localeCompare(keyOf(b)));

// Kubernetes quantities: CPU in cores, memory in bytes.
function cores(q) {
  if (q === undefined || q === null) return null;
  const m = /^([0-9.]+)([num]?)$/.exec(String(q));
  if (!m) return null;
  return Number(m[1]) / ({ n: 1e9, u: 1e6, m: 1e3, '': 1 })[m[2]];
}
function bytes(q) {
  if (q === undefined || q === null) return null;
  const m = /^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
  if (!m) return null;
  const f = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * (m[2] ? f[m[2]] : 1);
}
const fmtCpu = (c) => (c === null || c === undefined ? '–' : c < 1 ? Math.round(c * 1000) + 'm' : c.toFixed(2));
function fmtMem(b) {
  if (b === null || b === undefined) return '–';
  if (b >= 1024 ** 3) return (b / 1024 ** 3).toFixed(1) + 'Gi';
  if (b >= 1024 ** 2) return Math.round(b / 1024 ** 2) + 'Mi';
  return Math.round(b / 1024) + 'Ki';
}
function bar(used, cap) {
  if (used === null || !cap) return null;
  const pct = Math.min(100, Math.round((used / cap) * 100));
  return h('span', { class: 'bar', title: pct + '%' }, h('i', { style: null, 'data-pct': pct }));
}
function age(ts) {
  if (!ts) return '';
  const s = Math.max(0, (Date.now() - Date.parse(ts)) / 1000);
  if (s < 120) return Math.round(s) + 's';
  if (s < 7200) return Math.round(s / 60) + 'm';
  if (s < 172800) return Math.round(s / 3600) + 'h';
  return Math.round(s / 86400) + 'd';
}
const cond = (o, type) => ((o.status || {}).conditions || []).find((c) => c.type === type);

// ---- the watch: list every kind, then follow one stream ----

async function listAll(epoch) {
  const lists = await Promise.all(KINDS.map((p) => api('GET', '/v1/' + p)));
  if (epoch !== state.epoch) return null;
  let from = Infinity;
  KINDS.forEach((p, i) => {
    const m = new Map();
    for (const o of lists[i].items || []) m.set(keyOf(o), o);
    state.objects.set(KIND_OF[p], m);
    from = Math.min(from, Number(lists[i].metadata.resourceVersion || 0));
  });
  return from;
}

// Lists were taken one after another, so the stream starts at the oldest
// list's revision: events replayed for a newer list are ignored by version.
function applyEvent(ev) {
  const o = ev.object;
  const m = state.objects.get(o && o.kind);
  if (!m) return;
  const k = keyOf(o);
  const have = m.get(k);
  if (ev.type === 'DELETED') {
    if (have && (!have.metadata.uid || have.metadata.uid === o.metadata.uid)) m.delete(k);
  } else if (!have || rv(o) >= rv(have)) {
    m.set(k, o);
  }
}

async function follow() {
  const epoch = ++state.epoch;
  if (state.watchAbort) state.watchAbort.abort();
  const ctl = new AbortController();
  state.watchAbort = ctl;
  try {
    const from = await listAll(epoch);
    if (from === null) return;
    render();
    const r = await fetch('/v1/watch?kinds=' + KINDS.join(',') + '&resourceVersion=' + from,
      { headers: headers(), signal: ctl.signal });
    if (r.status === 401) { needLogin('401'); return; }
    if (!r.ok) throw new Error('watch: HTTP ' + r.status);
    setLive(true);
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let nl;
      let changed = false;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.trim()) continue;
        const ev = JSON.parse(line);
        if (ev.type === 'ERROR') throw new Error(ev.error);
        applyEvent(ev);
        changed = true;
      }
      if (changed) scheduleRender();
    }
  } catch (e) {
    if (ctl.signal.aborted || epoch !== state.epoch) return;
    if (!(e instanceof ApiError && e.status === 401)) console.warn('watch ended:', e);
    if (e instanceof ApiError && e.status === 401) { setLive(false); return; }
  }
  if (epoch !== state.epoch) return;
  setLive(false);
  // List again and resume: the stream ended (node restart, fell behind).
  setTimeout(() => { if (epoch === state.epoch) follow(); }, 1000);
}

function setLive(on) {
  state.live = on;
  const el = document.getElementById('live');
  el.textContent = on ? 'live' : 'offline';
  el.className = on ? 'live on' : 'live';
}

// ---- soft state the watch does not carry: polled while a view shows it ----

async function pollCluster() {
  const [raft, members, nodes] = await Promise.allSettled([
    api('GET', '/v1/raft'), api('GET', '/v1/members'),
    api('GET', '/apis/metrics.k8s.io/v1beta1/nodes')]);
  if (raft.status === 'fulfilled') state.raft = raft.value;
  if (members.status === 'fulfilled') state.members = members.value.items || [];
  if (nodes.status === 'fulfilled') {
    state.nodeMetrics = new Map((nodes.value.items || []).map((n) => [n.metadata.name, n.usage]));
  }
  scheduleRender();
}

async function pollPods() {
  try {
    const v = await api('GET', '/apis/metrics.k8s.io/v1beta1/pods');
    const m = new Map();
    for (const p of v.items || []) {
      let c = 0; let b = 0;
      for (const x of p.containers || []) { c += cores(x.usage.cpu) || 0; b += bytes(x.usage.memory) || 0; }
      m.set(p.metadata.namespace + '/' + p.metadata.name, { cpu: c, mem: b });
    }
    state.podMetrics = m;
    scheduleRender();
  } catch (_) { /* metrics not served: the columns stay empty */ }
}

async function pollEndpoints() {
  try {
    state.endpoints = (await api('GET', '/v1/endpoints')).items || [];
    scheduleRender();
  } catch (e) { state.endpoints = { error: e.message }; scheduleRender(); }
}

function every(ms, f) {
  f();
  state.polls.push(setInterval(f, ms));
}

// ---- views ----

function route() {
  const parts = (location.hash || '#/overview').slice(2).split('/');
  return { view: parts[0] || 'overview', args: parts.slice(1).map(decodeURIComponent) };
}

function enterView() {
  state.polls.forEach(clearInterval);
  state.polls = [];
  const { view } = route();
  if (view !== 'logs' && state.logAbort) { state.logAbort.abort(); state.logAbort = null; }
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('on', a.dataset.view === view);
  if (view === 'overview') every(5000, pollCluster);
  if (view === 'pods' || view === 'workloads') every(10000, pollPods);
  if (view === 'services') every(10000, pollEndpoints);
  if (view === 'logs') startLogs();
  render();
}

// A button replaced between press and release would lose the click: no
// re-render while a pointer is down on the page.
let renderTimer = null;
let held = false;
let pending = false;
function scheduleRender() {
  if (held) { pending = true; return; }
  if (renderTimer) return;
  renderTimer = setTimeout(() => { renderTimer = null; render(); }, 100);
}
let holdTimer = null;
function hold(on) {
  held = on;
  clearTimeout(holdTimer);
  // A release outside the window may never be seen: let go after a while.
  if (on) holdTimer = setTimeout(() => hold(false), 3000);
  if (!on && pending) { pending = false; scheduleRender(); }
}

function render() {
  const { view } = route();
  const main = document.getElementById('main');
  if (view === 'logs') { renderLogsHeader(); return; }
  // Keep the focused replicas field across a re-render.
  const focused = document.activeElement && document.activeElement.dataset
    ? document.activeElement.dataset.draft : null;
  const views = { overview: viewOverview, workloads: viewWorkloads, pods: viewPods, services: viewServices, events: viewEvents };
  const next = h('div', {}, (views[view] || viewOverview)());
  for (const b of next.querySelectorAll('.bar i')) b.style.width = b.dataset.pct + '%';
  // Unchanged markup is left alone (and the elements under the pointer with it).
  if (next.innerHTML !== main.innerHTML || main.dataset.view !== view) {
    main.replaceChildren(...next.childNodes);
    main.dataset.view = view;
  }
  if (focused) {
    const el = main.querySelector('[data-draft="' + CSS.escape(focused) + '"]');
    if (el) el.focus();
  }
}

function viewOverview() {
  const raft = state.raft;
  const members = state.members || [];
  const voters = new Map(((raft && raft.voters) || []).map(([id, info]) => [String(id), info.name]));
  const leader = raft && raft.leader !== null && raft.leader !== undefined ? voters.get(String(raft.leader)) || String(raft.leader) : '–';
  const nodeObjs = state.objects.get('Node');
  const names = new Set([...members.map((m) => m.meta && m.meta.name).filter(Boolean), ...[...nodeObjs.values()].map((n) => n.metadata.name)]);
  const rows = [...names].sort().map((name) => {
    const m = members.find((x) => x.meta && x.meta.name === name);
    const meta = (m && m.meta) || {};
    const nobj = [...nodeObjs.values()].find((n) => n.metadata.name === name);
    const cap = (nobj && nobj.status && nobj.status.capacity) || {};
    const cpuCap = meta.cpuMillis ? meta.cpuMillis / 1000 : cores(cap.cpu);
    const memCap = meta.memoryBytes || bytes(cap.memory);
    const u = state.nodeMetrics.get(name);
    const cpu = u ? cores(u.cpu) : null;
    const mem = u ? bytes(u.memory) : null;
    const gossip = m ? m.state : 'unknown';
    // As `shoal get nodes`: gossip's view, and whether it is cordoned.
    let st = gossip === 'alive' ? 'Ready' : gossip === 'suspect' ? 'Suspect' : 'NotReady';
    if (nobj && nobj.spec && nobj.spec.unschedulable) st += ',SchedulingDisabled';
    const role = name === leader ? 'leader' : (meta.raftRole || '–');
    return h('tr', { 'data-node': name },
      h('td', {}, name, m && m.isSelf ? h('span', { class: 'badge' }, 'this node') : null),
      h('td', { class: gossip === 'alive' ? 'ok' : gossip === 'suspect' ? 'warn' : 'bad' }, gossip),
      h('td', { class: 'raft-role' }, role),
      h('td', { class: 'node-status ' + (st === 'Ready' ? 'ok' : st.startsWith('Ready') ? 'warn' : 'bad') }, st),
      h('td', {}, meta.apiAddr || ''),
      h('td', { class: 'num' }, bar(cpu, cpuCap), fmtCpu(cpu), ' / ', fmtCpu(cpuCap)),
      h('td', { class: 'num' }, bar(mem, memCap), fmtMem(mem), ' / ', fmtMem(memCap)),
      h('td', {}, meta.shoalVersion || ''));
  });
  const pods = list('Pod');
  return [
    h('div', { class: 'summary' },
      h('div', {}, 'Leader', h('b', { id: 'leader' }, leader)),
      h('div', {}, 'Term', h('b', { id: 'term' }, raft ? raft.term : '–')),
      h('div', {}, 'Nodes', h('b', { id: 'node-count' }, names.size)),
      h('div', {}, 'Pods', h('b', {}, pods.length)),
      h('div', {}, 'Served by', h('b', {}, raft && raft.node ? raft.node.name : '–'))),
    h('h2', {}, 'Members'),
    table(['Node', 'Gossip', 'Raft', 'Status', 'API', 'CPU (host use / capacity)', 'Memory (host use / capacity)', 'Version'], rows),
  ];
}

function selectorMatches(sel, labels) {
  const ml = (sel && sel.matchLabels) || {};
  const keys = Object.keys(ml);
  return keys.length > 0 && keys.every((k) => (labels || {})[k] === ml[k]);
}

function podsOf(o) {
  return list('Pod').filter((p) => ns(p) === ns(o) && selectorMatches(o.spec && o.spec.selector, p.metadata.labels));
}

function hpaFor(kind, o) {
  return list('HorizontalPodAutoscaler').find((hpa) => ns(hpa) === ns(o)
    && hpa.spec && hpa.spec.scaleTargetRef && hpa.spec.scaleTargetRef.kind === kind
    && hpa.spec.scaleTargetRef.name === o.metadata.name);
}

function rollout(kind, o) {
  const s = o.status || {};
  const spec = o.spec || {};
  if (s.observedGeneration !== undefined && o.metadata.generation && s.observedGeneration < o.metadata.generation) return ['pending', 'warn'];
  if (kind === 'DaemonSet') {
    const want = s.desiredNumberScheduled || 0;
    if ((s.updatedNumberScheduled || 0) < want) return ['rolling out', 'warn'];
    return (s.numberAvailable || 0) < want ? ['waiting', 'warn'] : ['complete', 'ok'];
  }
  const want = spec.replicas === undefined ? 1 : spec.replicas;
  if (kind === 'StatefulSet' && s.updateRevision && s.currentRevision !== s.updateRevision) return ['rolling out', 'warn'];
  if ((s.replicas || 0) < want && (s.updatedReplicas || 0) >= (s.replicas || 0)) return ['scaling up', 'warn'];
  if ((s.updatedReplicas || 0) < want) return ['rolling out', 'warn'];
  if ((s.replicas || 0) > want) return ['scaling down', 'warn'];
  const avail = kind === 'StatefulSet' ? s.readyReplicas : s.availableReplicas;
  return (avail || 0) < want ? ['waiting', 'warn'] : ['complete', 'ok'];
}

function scaleControls(kind, o) {
  const id = kind + '/' + keyOf(o);
  const cur = (o.spec && o.spec.replicas !== undefined) ? o.spec.replicas : 1;
  const draft = state.drafts.has(id) ? state.drafts.get(id) : String(cur);
  const input = h('input', {
    class: 'replicas', type: 'number', min: 0, value: draft, 'data-draft': id, 'aria-label': 'replicas',
    oninput: (e) => state.drafts.set(id, e.target.value),
    onkeydown: (e) => { if (e.key === 'Enter') setFromField(kind, o, e.target.value); },
  });
  // The count is in the markup so a changed count always re-renders the
  // buttons (their handlers hold it).
  return h('div', { class: 'scale', 'data-replicas': cur },
    h('button', { class: 'scale-down', title: 'one replica less', onclick: () => scaleTo(kind, o, Math.max(0, cur - 1)) }, '−'),
    input,
    h('button', { class: 'scale-up', title: 'one replica more', onclick: () => scaleTo(kind, o, cur + 1) }, '+'),
    h('button', { class: 'scale-set', onclick: () => setFromField(kind, o, input.value) }, 'Set'));
}

function setFromField(kind, o, value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) { banner('replicas: ' + JSON.stringify(value) + ' is not a whole number ≥ 0', 'error'); return; }
  scaleTo(kind, o, n);
}

// The same read-modify-write as `shoal scale`: a conditional replace
// (the object's resourceVersion) retried on a conflict.
async function scaleTo(kind, o, n) {
  const path = '/v1/namespaces/' + encodeURIComponent(ns(o)) + '/' + PLURAL[kind] + '/' + encodeURIComponent(o.metadata.name);
  state.drafts.delete(kind + '/' + keyOf(o));
  try {
    for (let attempt = 1; ; attempt++) {
      const obj = await api('GET', path);
      obj.spec.replicas = n;
      delete obj.status;
      try { await api('PUT', path, obj); break; } catch (e) {
        if (!(e instanceof ApiError && e.status === 409) || attempt >= 5) throw e;
        await new Promise((r) => setTimeout(r, 50 * attempt));
      }
    }
    const hpa = hpaFor(kind, o);
    const what = kind.toLowerCase() + '.apps/' + o.metadata.name;
    if (hpa) {
      banner('Warning: horizontalpodautoscaler/' + hpa.metadata.name + ' manages the replicas of '
        + kind.toLowerCase() + '/' + o.metadata.name + ' and will set them back to what it decides', 'warn');
    } else {
      banner(what + ' scaled to ' + n);
    }
  } catch (e) {
    banner('scale ' + o.metadata.name + ': ' + e.message, 'error');
  }
  scheduleRender();
}

function podChips(o) {
  return h('div', { class: 'pods-of' }, podsOf(o).map((p) => h('span', { 'data-pod': keyOf(p), title: podStatus(p) }, p.metadata.name, ' ')));
}

function viewWorkloads() {
  const out = [];
  const scaled = (kind) => list(kind).map((o) => {
    const s = o.status || {};
    const want = (o.spec && o.spec.replicas !== undefined) ? o.spec.replicas : 1;
    const [ro, cls] = rollout(kind, o);
    const hpa = hpaFor(kind, o);
    return h('tr', { 'data-kind': kind, 'data-name': o.metadata.name, 'data-ns': ns(o) },
      h('td', {}, o.metadata.name, hpa ? h('span', { class: 'badge hpa', title: 'horizontalpodautoscaler/' + hpa.metadata.name + ' sets the replicas' }, 'HPA') : null, podChips(o)),
      h('td', {}, ns(o)),
      h('td', { class: 'ready' }, (s.readyReplicas || 0) + '/' + want),
      h('td', {}, s.updatedReplicas || 0),
      h('td', {}, kind === 'StatefulSet' ? (s.readyReplicas || 0) : (s.availableReplicas || 0)),
      h('td', { class: cls }, ro),
      h('td', {}, scaleControls(kind, o)));
  });
  out.push(h('h2', {}, 'Deployments'), table(['Name', 'Namespace', 'Ready', 'Up-to-date', 'Available', 'Rollout', 'Replicas'], scaled('Deployment')));
  out.push(h('h2', {}, 'StatefulSets'), table(['Name', 'Namespace', 'Ready', 'Up-to-date', 'Ready', 'Rollout', 'Replicas'], scaled('StatefulSet')));
  out.push(h('h2', {}, 'DaemonSets'), table(['Name', 'Namespace', 'Desired', 'Ready', 'Up-to-date', 'Available', 'Rollout'],
    list('DaemonSet').map((o) => {
      const s = o.status || {};
      const [ro, cls] = rollout('DaemonSet', o);
      return h('tr', { 'data-kind': 'DaemonSet', 'data-name': o.metadata.name },
        h('td', {}, o.metadata.name, podChips(o)), h('td', {}, ns(o)), h('td', {}, s.desiredNumberScheduled || 0),
        h('td', { class: 'ready' }, s.numberReady || 0), h('td', {}, s.updatedNumberScheduled || 0),
        h('td', {}, s.numberAvailable || 0), h('td', { class: cls }, ro));
    })));
  out.push(h('h2', {}, 'Jobs'), table(['Name', 'Namespace', 'Completions', 'Active', 'Failed', 'State', 'Age'],
    list('Job').map((o) => {
      const s = o.status || {};
      const done = cond(o, 'Complete'); const failed = cond(o, 'Failed');
      const st = done && done.status === 'True' ? ['Complete', 'ok'] : failed && failed.status === 'True' ? ['Failed', 'bad'] : ['Running', 'warn'];
      return h('tr', { 'data-kind': 'Job', 'data-name': o.metadata.name },
        h('td', {}, o.metadata.name), h('td', {}, ns(o)),
        h('td', { class: 'ready' }, (s.succeeded || 0) + '/' + ((o.spec && o.spec.completions) || 1)),
        h('td', {}, s.active || 0), h('td', {}, s.failed || 0), h('td', { class: st[1] }, st[0]),
        h('td', {}, age(o.metadata.creationTimestamp)));
    })));
  out.push(h('h2', {}, 'CronJobs'), table(['Name', 'Namespace', 'Schedule', 'Suspended', 'Active', 'Last schedule'],
    list('CronJob').map((o) => {
      const s = o.status || {};
      return h('tr', { 'data-kind': 'CronJob', 'data-name': o.metadata.name },
        h('td', {}, o.metadata.name), h('td', {}, ns(o)), h('td', {}, (o.spec && o.spec.schedule) || ''),
        h('td', {}, (o.spec && o.spec.suspend) ? 'yes' : 'no'), h('td', {}, (s.active || []).length),
        h('td', {}, s.lastScheduleTime ? age(s.lastScheduleTime) + ' ago' : '–'));
    })));
  return out;
}

function podStatus(p) {
  if (p.metadata.deletionTimestamp) return 'Terminating';
  const s = p.status || {};
  for (const c of s.containerStatuses || []) {
    const st = c.state || {};
    if (st.waiting && st.waiting.reason) return st.waiting.reason;
    if (st.terminated && st.terminated.reason && s.phase === 'Running') return st.terminated.reason;
  }
  return s.phase || 'Pending';
}

function viewPods() {
  const rows = list('Pod').map((p) => {
    const s = p.status || {};
    const cs = s.containerStatuses || [];
    const ready = cs.filter((c) => c.ready).length;
    const total = ((p.spec && p.spec.containers) || []).length || cs.length;
    const restarts = cs.reduce((n, c) => n + (c.restartCount || 0), 0);
    const st = podStatus(p);
    const m = state.podMetrics.get(keyOf(p));
    return h('tr', { 'data-pod': keyOf(p) },
      h('td', {}, p.metadata.name), h('td', {}, ns(p)),
      h('td', { class: 'ready' }, ready + '/' + total),
      h('td', { class: 'status ' + (st === 'Running' || st === 'Succeeded' ? 'ok' : /Err|Fail|BackOff/.test(st) ? 'bad' : 'warn') }, st),
      h('td', { class: 'num' }, restarts),
      h('td', { class: 'node' }, (p.spec && p.spec.nodeName) || '–'),
      h('td', {}, s.podIP || ''),
      h('td', { class: 'num' }, m ? fmtCpu(m.cpu) : '–'),
      h('td', { class: 'num' }, m ? fmtMem(m.mem) : '–'),
      h('td', {}, age(p.metadata.creationTimestamp)),
      h('td', {}, h('a', { class: 'logs-link', href: '#/logs/' + encodeURIComponent(ns(p)) + '/' + encodeURIComponent(p.metadata.name) }, 'logs')));
  });
  return [h('h2', {}, 'Pods'), table(['Name', 'Namespace', 'Ready', 'Status', 'Restarts', 'Node', 'IP', 'CPU', 'Memory', 'Age', ''], rows)];
}

function viewServices() {
  const eps = Array.isArray(state.endpoints) ? state.endpoints : [];
  const rows = list('Service').map((svc) => {
    const e = eps.find((x) => x.metadata.name === svc.metadata.name && x.metadata.namespace === ns(svc));
    const spec = svc.spec || {};
    const ports = (spec.ports || []).map((p) => p.port + (p.nodePort ? ':' + p.nodePort : '') + '/' + (p.protocol || 'TCP')).join(', ');
    const list2 = e ? e.ports.flatMap((p) => p.endpoints.map((x) => x.ip + ':' + x.port + (x.pod ? ' (' + x.pod + ')' : ''))) : [];
    return h('tr', { 'data-service': keyOf(svc) },
      h('td', {}, svc.metadata.name), h('td', {}, ns(svc)), h('td', {}, spec.type || 'ClusterIP'),
      h('td', {}, spec.clusterIP || (e && e.clusterIP) || ''), h('td', {}, ports),
      h('td', { class: 'endpoints' }, list2.length ? [...new Set(list2)].map((x) => h('div', {}, x)) : h('span', { class: 'muted' }, 'none ready')));
  });
  const note = state.endpoints && state.endpoints.error ? h('p', { class: 'muted' }, 'endpoints: ' + state.endpoints.error) : null;
  return [h('h2', {}, 'Services'), note, table(['Name', 'Namespace', 'Type', 'Cluster IP', 'Ports', 'Endpoints (this node\u2019s view)'], rows)];
}

function viewEvents() {
  const when = (e) => e.lastTimestamp || e.eventTime || e.firstTimestamp || e.metadata.creationTimestamp || '';
  const evs = list('Event').sort((a, b) => when(b).localeCompare(when(a))).slice(0, EVENTS_SHOWN);
  const rows = evs.map((e) => {
    const io = e.involvedObject || e.regarding || {};
    return h('tr', {},
      h('td', {}, age(when(e))), h('td', { class: e.type === 'Warning' ? 'warn' : '' }, e.type || ''),
      h('td', {}, e.reason || ''), h('td', {}, (io.kind || '').toLowerCase() + '/' + (io.name || '')),
      h('td', {}, ns(e)), h('td', {}, e.message || e.note || ''), h('td', { class: 'num' }, e.count || 1));
  });
  return [h('h2', {}, 'Events'), table(['Age', 'Type', 'Reason', 'Object', 'Namespace', 'Message', 'Count'], rows)];
}

// ---- logs, followed live ----

function renderLogsHeader() {
  const main = document.getElementById('main');
  if (main.querySelector('#log')) return; // the stream owns the page
  const pods = list('Pod');
  main.replaceChildren(h('h2', {}, 'Logs'), h('p', { class: 'muted' }, 'Pick a pod:'),
    h('ul', {}, pods.map((p) => h('li', {}, h('a', { href: '#/logs/' + encodeURIComponent(ns(p)) + '/' + encodeURIComponent(p.metadata.name) }, keyOf(p))))));
}

async function startLogs() {
  const { args } = route();
  if (state.logAbort) { state.logAbort.abort(); state.logAbort = null; }
  const main = document.getElementById('main');
  if (args.length < 2) { main.replaceChildren(); renderLogsHeader(); return; }
  const [pns, pod, container] = args;
  const p = state.objects.get('Pod').get(pns + '/' + pod);
  const names = ((p && p.spec && p.spec.containers) || []).map((c) => c.name);
  const pre = h('pre', { id: 'log' });
  const status = h('span', { id: 'log-state', class: 'muted' }, 'connecting…');
  const pick = names.length > 1 ? h('select', {
    onchange: (e) => { location.hash = '#/logs/' + encodeURIComponent(pns) + '/' + encodeURIComponent(pod) + '/' + encodeURIComponent(e.target.value); },
  }, names.map((n) => h('option', { value: n, selected: n === container }, n))) : null;
  main.dataset.view = 'logs';
  main.replaceChildren(h('h2', {}, 'Logs of ', pns + '/' + pod),
    h('div', { class: 'logbar' }, pick, status), pre);
  const ctl = new AbortController();
  state.logAbort = ctl;
  let q = '?follow=true&tailLines=500';
  if (container) q += '&container=' + encodeURIComponent(container);
  try {
    const r = await fetch('/v1/namespaces/' + encodeURIComponent(pns) + '/pods/' + encodeURIComponent(pod) + '/log' + q,
      { headers: headers(), signal: ctl.signal });
    if (!r.ok) {
      let msg = 'HTTP ' + r.status;
      try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
      if (r.status === 401) needLogin(msg);
      status.textContent = msg;
      return;
    }
    status.textContent = 'following';
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let text = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
      if (text.length > LOG_MAX_CHARS) text = text.slice(text.length - LOG_MAX_CHARS);
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent = text;
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }
    status.textContent = 'ended (the container stopped)';
  } catch (e) {
    if (!ctl.signal.aborted) status.textContent = 'stream broke: ' + e.message;
  }
}

// ---- start ----

function start() {
  const form = document.getElementById('login');
  document.getElementById('token').value = '';
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const t = document.getElementById('token').value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById('token').value = '';
    banner(t ? 'Token saved for this browser tab.' : '');
    follow();
    enterView();
  });
  document.getElementById('logout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    banner('Logged out.');
    state.epoch++;
    if (state.watchAbort) state.watchAbort.abort();
    for (const m of state.objects.values()) m.clear();
    setLive(false);
    render();
  });
  window.addEventListener('hashchange', enterView);
  document.addEventListener('pointerdown', () => hold(true));
  document.addEventListener('pointerup', () => hold(false));
  document.addEventListener('pointercancel', () => hold(false));
  follow();
  enterView();
}

document.addEventListener('DOMContentLoaded', start);
