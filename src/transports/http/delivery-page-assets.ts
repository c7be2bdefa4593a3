/**
 * The ledger page's script and style (`delivery-page.ts`), as text: the page needs no
 * build step and no file beside the server. The script asks `/graphql` on its own
 * origin for `delivery(id)` and writes every value as text (never as HTML).
 */

/** The query the page sends: everything `type Delivery` has. */
const DELIVERY_QUERY = [
  'query Delivery($id: ID!) { delivery(id: $id) {',
  ' id eventsDropped',
  ' accepted { at publisher audience to push }',
  ' live { subscriptions servers byTransport { websocket sse grpc } }',
  ' devices { user device kind status attempts lastReason lastDetail at }',
  ' readBy { user at }',
  ' events { at kind publisher audience to push server subscriptions transports { websocket sse grpc } users',
  '  user device deviceKind attempt reason detail nextAttemptAt dryRun }',
  '} }',
].join('');

export const DELIVERY_PAGE_SCRIPT = `// Herald's ledger page: asks delivery(id) and shows it.
const QUERY = ${JSON.stringify(DELIVERY_QUERY)};
const $ = (id) => document.getElementById(id);
const meta = document.querySelector('meta[name="herald-service-token"]');
const params = new URLSearchParams(location.search);
$('service-token').value = params.get('token') || (meta && meta.content) || '';
$('notification-id').value = params.get('id') || '';

function cell(row, text) {
  const td = document.createElement('td');
  td.textContent = text == null ? '' : String(text);
  row.appendChild(td);
}
function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}
function counts(t) {
  return t ? 'websocket ' + t.websocket + ', sse ' + t.sse + ', grpc ' + t.grpc : '';
}
function details(event) {
  const parts = [];
  const add = (name, value) => {
    if (value !== null && value !== undefined && value !== '') parts.push(name + ': ' + value);
  };
  add('publisher', event.publisher);
  add('audience', event.audience);
  add('to', event.to);
  add('push', event.push);
  add('server', event.server);
  add('subscriptions', event.subscriptions);
  if (event.transports) parts.push(counts(event.transports));
  if (event.users) add('users', event.users.join(', '));
  add('user', event.user);
  add('device', event.device);
  add('kind', event.deviceKind);
  add('attempt', event.attempt);
  add('reason', event.reason);
  add('detail', event.detail);
  add('next attempt', event.nextAttemptAt);
  if (event.dryRun) parts.push('dry run');
  return parts.join('; ');
}
function show(delivery) {
  $('summary').hidden = false;
  $('timeline-section').hidden = false;
  const accepted = $('accepted');
  clear(accepted);
  const a = delivery.accepted;
  const rows = a
    ? [['Accepted', a.at], ['Publisher', a.publisher], ['Audience', a.audience], ['To', a.to], ['Push', a.push]]
    : [['Accepted', 'not kept']];
  for (const [name, value] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = name;
    const dd = document.createElement('dd');
    dd.textContent = value;
    accepted.append(dt, dd);
  }
  const live = delivery.live;
  $('live').textContent = live.subscriptions + ' subscription(s) on ' + live.servers + ' server(s): ' + counts(live.byTransport);
  const devices = $('devices').tBodies[0];
  clear(devices);
  for (const d of delivery.devices) {
    const row = devices.insertRow();
    for (const value of [d.user, d.device, d.kind, d.status, d.attempts, d.lastReason, d.lastDetail, d.at]) cell(row, value);
  }
  if (delivery.devices.length === 0) {
    const row = devices.insertRow();
    cell(row, 'no push recorded');
    row.cells[0].colSpan = 8;
  }
  const readBy = $('read-by');
  clear(readBy);
  for (const r of delivery.readBy) {
    const li = document.createElement('li');
    li.textContent = r.user + ' at ' + r.at;
    readBy.appendChild(li);
  }
  $('dropped').textContent = delivery.eventsDropped > 0 ? delivery.eventsDropped + ' more events not kept (LEDGER_MAX_EVENTS)' : '';
  const timeline = $('timeline').tBodies[0];
  clear(timeline);
  for (const event of delivery.events) {
    const row = timeline.insertRow();
    row.className = 'kind-' + event.kind.toLowerCase();
    cell(row, event.at);
    cell(row, event.kind);
    cell(row, details(event));
  }
}
async function ask(event) {
  if (event) event.preventDefault();
  const id = $('notification-id').value.trim();
  const token = $('service-token').value.trim();
  $('summary').hidden = true;
  $('timeline-section').hidden = true;
  $('status').textContent = 'Asking…';
  try {
    const response = await fetch('/graphql', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/graphql-response+json, application/json', Authorization: 'Bearer ' + token },
      body: JSON.stringify({ query: QUERY, variables: { id } }),
    });
    const body = await response.json();
    if (body.errors && body.errors.length > 0) {
      $('status').textContent = body.errors.map((e) => ((e.extensions && e.extensions.code) || 'ERROR') + ': ' + e.message).join('; ');
      return;
    }
    const delivery = body.data && body.data.delivery;
    if (!delivery) {
      $('status').textContent = 'No ledger for ' + id + ': unknown, another tenant\\'s, older than LEDGER_MAX_AGE_SECONDS, or the ledger is off.';
      return;
    }
    $('status').textContent = 'Ledger of ' + delivery.id + ' (' + delivery.events.length + ' events)';
    show(delivery);
  } catch (error) {
    $('status').textContent = 'The publish server did not answer: ' + error;
  }
}
$('ask').addEventListener('submit', ask);
if ($('notification-id').value) ask();
`;

export const DELIVERY_PAGE_STYLE = `body { font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; }
form { display: flex; flex-wrap: wrap; gap: 1em; align-items: end; }
label { display: flex; flex-direction: column; font-size: 0.9em; }
input { font: inherit; min-width: 22em; padding: 0.3em; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: 600; }
dd { margin: 0; }
.hint { color: #666; }
#status { font-weight: 600; }
tr.kind-push_failed td, tr.kind-push_dead_lettered td, tr.kind-device_removed td { color: #a00; }
tr.kind-push_accepted td, tr.kind-delivered_live td { color: #060; }
`;
