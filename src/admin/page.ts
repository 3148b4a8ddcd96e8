/**
 * The admin page: static HTML, CSS and a browser script, served from
 * /admin. The page contains no data itself. With the admin token (kept in
 * sessionStorage for the tab) it reads /admin/api/stats once, then
 * follows the internal channel $admin:stats over the node's own SSE
 * transport, where every node's stats arrive each interval. Data is
 * written with textContent only, never as HTML.
 */

export const ADMIN_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Herald admin</title>
<link rel="stylesheet" href="/admin/admin.css">
</head>
<body>
<header>
  <h1>Herald admin</h1>
  <form id="token-form">
    <label>Admin token <input id="token" type="password" autocomplete="off" required></label>
    <button type="submit">Connect</button>
    <button type="button" id="forget">Forget token</button>
  </form>
  <p id="status" role="status">Enter the admin token to see the nodes.</p>
</header>
<main id="data" hidden>
  <section>
    <h2>Nodes</h2>
    <table id="nodes">
      <thead><tr><th>Node</th><th>State</th><th>Connections</th><th>Subscriptions</th><th>Published/s</th><th>Delivered/s</th><th>Up since</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Connections by transport</h2>
    <table id="transports">
      <thead><tr><th>Transport</th><th>Connections</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Channels</h2>
    <table id="channels">
      <thead><tr><th>Channel</th><th>Subscribers</th><th>Messages/s</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Latest publications</h2>
    <table id="latest">
      <thead><tr><th>Time</th><th>Channel</th><th>Offset</th><th>Data</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Publish a test message</h2>
    <form id="publish-form">
      <label>Channel <input id="publish-channel" required></label>
      <label>Data (JSON) <textarea id="publish-data" rows="3">{"text": "hello"}</textarea></label>
      <button type="submit">Publish</button>
      <output id="publish-result"></output>
    </form>
  </section>
</main>
<script type="module" src="/admin/admin.js"></script>
</body>
</html>
`;

export const ADMIN_CSS = `body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2330; }
h1 { font-size: 1.4rem; margin: 0 0 0.5rem; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 0.5rem; }
table { border-collapse: collapse; min-width: 24rem; }
th, td { text-align: left; padding: 0.25rem 0.75rem; border-bottom: 1px solid #d8dce4; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
td.data { font-family: ui-monospace, monospace; max-width: 40rem; overflow-wrap: anywhere; }
form label { margin-right: 0.75rem; }
textarea { vertical-align: top; width: 24rem; font-family: ui-monospace, monospace; }
#status { color: #4a5568; }
`;

export const ADMIN_SCRIPT = `const TOKEN_KEY = "herald.adminToken";
const STATS_CHANNEL = "$admin:stats";
/** Latest stats by node id, with the local time they arrived. */
const nodes = new Map();
let source;

const byId = (id) => document.getElementById(id);
const token = () => sessionStorage.getItem(TOKEN_KEY) ?? "";
const setStatus = (text) => { byId("status").textContent = text; };

async function callApi(path, init = {}) {
  const headers = { ...(init.headers ?? {}), Authorization: "Bearer " + token() };
  const response = await fetch(path, { ...init, headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.error?.message ?? "HTTP " + response.status);
  }
  return body;
}

function remember(stats) {
  nodes.set(stats.node, { stats, receivedAt: Date.now() });
}

function clearData() {
  source?.close();
  source = undefined;
  nodes.clear();
  byId("data").hidden = true;
  for (const body of document.querySelectorAll("#data tbody")) {
    body.replaceChildren();
  }
}

async function connect() {
  clearData();
  if (token() === "") {
    setStatus("Enter the admin token to see the nodes.");
    return;
  }
  setStatus("Connecting…");
  try {
    const result = await callApi("/admin/api/stats");
    result.nodes.forEach(remember);
  } catch (error) {
    clearData();
    setStatus("Not connected: " + error.message);
    return;
  }
  byId("data").hidden = false;
  render();
  // EventSource cannot set headers, so the admin token goes in the query.
  // Each message is {"channel", "offset", "data"} with NodeStats as data.
  const query = new URLSearchParams({ channel: STATS_CHANNEL, token: token() });
  source = new EventSource("/sse?" + query);
  source.onopen = () => setStatus("Live");
  source.onerror = (event) => {
    // EventSource retries by itself unless the response was not a 200 stream.
    if (event.target.readyState === EventSource.CLOSED) {
      setStatus("Live feed closed; press Connect to try again.");
    } else {
      setStatus("Live feed interrupted; reconnecting…");
    }
  };
  source.onmessage = (message) => {
    remember(JSON.parse(message.data).data);
    render();
  };
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (className) {
    td.className = className;
  }
  return td;
}

function row(cells, attributes = {}) {
  const tr = document.createElement("tr");
  tr.append(...cells);
  for (const [name, value] of Object.entries(attributes)) {
    tr.setAttribute(name, value);
  }
  return tr;
}

function render() {
  const now = Date.now();
  for (const [id, entry] of nodes) {
    if (now - entry.receivedAt > 3 * entry.stats.intervalMs + 2000) {
      nodes.delete(id);
    }
  }
  const live = [...nodes.values()].map((entry) => entry.stats).sort((a, b) => a.node.localeCompare(b.node));
  const total = (counts) => Object.values(counts).reduce((sum, count) => sum + count, 0);

  byId("nodes").tBodies[0].replaceChildren(
    ...live.map((stats) =>
      row(
        [
          cell(stats.node),
          cell(stats.state),
          cell(total(stats.connections), "number"),
          cell(stats.subscriptions, "number"),
          cell(stats.publishedPerSecond, "number"),
          cell(stats.deliveredPerSecond, "number"),
          cell(new Date(stats.startedAt).toLocaleString()),
        ],
        { "data-node": stats.node },
      ),
    ),
  );

  const transports = new Map();
  for (const stats of live) {
    for (const [name, count] of Object.entries(stats.connections)) {
      transports.set(name, (transports.get(name) ?? 0) + count);
    }
  }
  byId("transports").tBodies[0].replaceChildren(
    ...[...transports].map(([name, count]) => row([cell(name), cell(count, "number connections")], { "data-transport": name })),
  );

  // Subscribers add up across nodes; every node receives a channel's full message rate, so take the largest.
  const channels = new Map();
  for (const stats of live) {
    for (const entry of stats.channels) {
      const merged = channels.get(entry.channel) ?? { subscribers: 0, perSecond: 0 };
      merged.subscribers += entry.subscribers;
      merged.perSecond = Math.max(merged.perSecond, entry.perSecond);
      channels.set(entry.channel, merged);
    }
  }
  byId("channels").tBodies[0].replaceChildren(
    ...[...channels]
      .sort((a, b) => b[1].subscribers - a[1].subscribers)
      .map(([name, entry]) =>
        row([cell(name), cell(entry.subscribers, "number subscribers"), cell(entry.perSecond, "number")], { "data-channel": name }),
      ),
  );

  const latest = live.flatMap((stats) => stats.latest).sort((a, b) => b.time - a.time).slice(0, 20);
  byId("latest").tBodies[0].replaceChildren(
    ...latest.map((entry) =>
      row(
        [cell(new Date(entry.time).toLocaleTimeString()), cell(entry.channel), cell(entry.offset, "number"), cell(entry.data, "data")],
        { "data-channel": entry.channel },
      ),
    ),
  );
}

async function publish(event) {
  event.preventDefault();
  const output = byId("publish-result");
  let data;
  try {
    data = JSON.parse(byId("publish-data").value);
  } catch {
    output.textContent = "The data is not valid JSON.";
    return;
  }
  const channel = byId("publish-channel").value;
  try {
    const result = await callApi("/admin/api/publish", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ channel, data }),
    });
    output.textContent = "Published on " + result.channel + " at offset " + result.offset + ".";
  } catch (error) {
    output.textContent = "Publish failed: " + error.message;
  }
}

byId("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, byId("token").value);
  byId("token").value = "";
  void connect();
});
byId("forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  void connect();
});
byId("publish-form").addEventListener("submit", publish);
setInterval(() => {
  if (nodes.size > 0) {
    render();
  }
}, 1000);
void connect();
`;
