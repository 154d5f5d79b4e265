// The dashboard's page, style and script (served by dashboard.ts). The script
// builds every element with textContent, never from markup: a service name or
// an instance id is user input and stays text.

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>harbor-node</title>
<link rel="stylesheet" href="/dashboard.css">
<script src="/dashboard.js" defer></script>
</head>
<body>
<header>
  <h1>harbor-node</h1>
  <p id="summary">loading…</p>
  <p id="live" class="live">connecting…</p>
  <form class="logout" method="post" action="/logout"><button type="submit">sign out</button></form>
</header>
<main id="services" aria-live="polite"></main>
</body>
</html>
`;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function loginPage(problem?: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>harbor-node: sign in</title>
<link rel="stylesheet" href="/dashboard.css">
</head>
<body>
<header><h1>harbor-node</h1></header>
<main>
<form class="login" method="post" action="/login">
  <p>This node's API has a token (HARBOR_NODE_TOKEN). Give it to see the dashboard; the browser keeps a read-only session for 12 hours.</p>
  ${problem ? `<p class="problem">${escapeHtml(problem)}</p>` : ''}
  <label>Token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
  <button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
`;
}

export const DASHBOARD_CSS = `
:root { color-scheme: light dark; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --muted: #6e7781; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; padding: 0 12px 24px; max-width: 1100px; margin-inline: auto; }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 16px; border-bottom: 1px solid var(--line); margin-bottom: 12px; }
h1 { font-size: 20px; margin: 12px 0; }
header p { margin: 0; color: var(--muted); }
form.logout { margin-left: auto; }
form.logout button { font: inherit; font-size: 13px; background: none; border: 1px solid var(--line); border-radius: 6px; padding: 2px 10px; cursor: pointer; }
.live.down { color: var(--bad); font-weight: 600; }
.service { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; margin-bottom: 12px; }
.service h2 { font-size: 17px; margin: 0 0 4px; overflow-wrap: anywhere; }
.badge { display: inline-block; font-size: 12px; border: 1px solid var(--line); border-radius: 10px; padding: 0 8px; margin-left: 6px; vertical-align: middle; }
.facts { display: flex; flex-wrap: wrap; gap: 2px 18px; margin: 4px 0; color: var(--muted); }
.facts b { color: initial; font-weight: 600; }
.conflict, .problem { color: var(--bad); font-weight: 600; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; font-size: 14px; }
th, td { text-align: left; padding: 3px 8px 3px 0; border-bottom: 1px solid var(--line); overflow-wrap: anywhere; }
.state-up { color: var(--ok); } .state-down { color: var(--bad); } .state-checking, .state-degraded { color: var(--warn); }
details pre { overflow-x: auto; font-size: 13px; }
.nodes { margin: 4px 0 0; padding-left: 18px; }
.empty { color: var(--muted); }
form.login { max-width: 420px; display: grid; gap: 10px; }
form.login input { width: 100%; font: inherit; padding: 6px; }
form.login button { font: inherit; padding: 6px 14px; justify-self: start; }
@media (max-width: 600px) { th.wide, td.wide { display: none; } }
`;

export const DASHBOARD_JS = `'use strict';
// Polls the node's own API (same origin; the session cookie when the API has a token).
const REFRESH_MS = 1000;

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, String(value));
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
  return node;
}

function bytes(n) {
  if (n < 1024) return n + ' B';
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = -1;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return value.toFixed(1) + ' ' + units[unit];
}

function reachedAt(c) {
  const host = c.ext_hostname || c.ext_host || c.hostname || c.host;
  return (host.includes(':') ? '[' + host + ']' : host) + ':' + c.port;
}

function instancesTable(service) {
  if (service.instances.length === 0) return el('p', { class: 'empty' }, 'No instance registered yet.');
  const udp = service.instances.some((i) => i.udp_role);
  let queued = 0;
  const rows = service.instances.map((i) => {
    const role = i.udp_role === 'primary' ? 'primary' : i.udp_role === 'queued' ? 'queued #' + (++queued) : null;
    return el('tr', { 'data-instance': i.id },
      el('td', {}, i.id),
      el('td', {}, (i.host.includes(':') ? '[' + i.host + ']' : i.host) + ':' + i.port),
      el('td', { class: 'state-' + i.state }, i.state),
      udp ? el('td', { class: 'udp-role' }, role) : null,
      el('td', { class: 'wide' }, i.ttl === null ? 'none' : i.ttl + ' s'));
  });
  return el('table', {},
    el('thead', {}, el('tr', {}, el('th', {}, 'instance'), el('th', {}, 'address'), el('th', {}, 'state'),
      udp ? el('th', {}, 'UDP') : null, el('th', { class: 'wide' }, 'TTL'))),
    el('tbody', {}, ...rows));
}

function traffic(counters) {
  const parts = [];
  if (counters.tcp) parts.push('TCP ' + counters.tcp.connectionsOpen + ' open, ' + counters.tcp.connectionsTotal + ' total, ' + counters.tcp.connectionsFailed + ' failed');
  if (counters.udp) parts.push('UDP ' + counters.udp.sessionsOpen + ' sessions, ' + counters.udp.datagramsIn + ' datagrams in, ' + counters.udp.datagramsDropped + ' dropped');
  let inBytes = 0;
  let outBytes = 0;
  for (const c of Object.values(counters)) { inBytes += c.bytesIn; outBytes += c.bytesOut; }
  parts.push(bytes(inBytes) + ' in, ' + bytes(outBytes) + ' out');
  return parts.join(' · ');
}

function nodesList(service) {
  if (!service.nodes || service.nodes.length < 2) return null;
  return el('ul', { class: 'nodes' }, ...service.nodes.map((n) => {
    const down = Object.entries(n.instances).map(([id, state]) => id + ' ' + state);
    const what = !n.known ? 'has not synced it yet' : n.listening ? 'listening' : 'NOT listening: ' + (n.conflict || 'starting');
    return el('li', { class: n.listening ? '' : 'conflict' }, n.member + ': ' + what + (down.length ? '; sees ' + down.join(', ') : ''));
  }));
}

function serviceCard(service) {
  const c = service.credentials;
  return el('section', { class: 'service', 'data-service': service.service },
    el('h2', {}, service.service, el('span', { class: 'badge' }, service.protocol)),
    el('div', { class: 'facts' },
      el('span', {}, 'port ', el('b', {}, c.port)),
      el('span', {}, 'reached at ', el('b', { class: 'reached' }, reachedAt(c))),
      el('span', {}, 'int_port ', el('b', {}, c.int_port)),
      el('span', { class: 'traffic' }, traffic(service.counters))),
    service.listening ? null : el('p', { class: 'conflict' }, 'Not listening: ' + (service.conflict || 'starting')),
    instancesTable(service),
    nodesList(service),
    el('details', {}, el('summary', {}, 'credentials'), el('pre', {}, JSON.stringify({ [service.service]: c }, null, 2))));
}

function render(data) {
  const services = [...data.services].sort((a, b) => a.service.localeCompare(b.service));
  const store = data.store;
  const instances = services.reduce((n, s) => n + s.instances.length, 0);
  document.getElementById('summary').textContent =
    services.length + ' service(s), ' + instances + ' instance(s) · store ' + store.store +
    (store.connected ? '' : ' (unreachable: showing what this node knew ' + Math.round((store.stale_ms || 0) / 1000) + ' s ago)');
  const main = document.getElementById('services');
  const open = new Set([...main.querySelectorAll('details[open]')].map((d) => d.closest('section').dataset.service));
  const cards = services.map(serviceCard);
  for (const card of cards) if (open.has(card.dataset.service)) card.querySelector('details').open = true;
  main.replaceChildren(...(cards.length ? cards : [el('p', { class: 'empty' }, 'No services yet: harbor create-service NAME.')]));
}

async function refresh() {
  const live = document.getElementById('live');
  try {
    const response = await fetch('/v1/services', { cache: 'no-store', credentials: 'same-origin' });
    if (response.status === 401) { location.reload(); return; }
    if (!response.ok) throw new Error('the node answered ' + response.status);
    render(await response.json());
    live.textContent = 'live · updated ' + new Date().toLocaleTimeString();
    live.classList.remove('down');
  } catch (error) {
    live.textContent = 'cannot reach the node (' + error.message + '); retrying';
    live.classList.add('down');
  }
  setTimeout(refresh, REFRESH_MS);
}

refresh();
`;
