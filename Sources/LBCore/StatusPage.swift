/// The self-contained status page (no external assets): it fetches the JSON every two seconds
/// and renders upstreams first, so a down peer is the first thing one sees.
enum StatusPage {
    static let html: [UInt8] = Array(#"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lb status</title>
<style>
  :root { --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --muted: #656d76; --line: #d0d7de; --bg: #f6f8fa; }
  * { box-sizing: border-box; }
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1f2328; background: #fff; }
  header { display: flex; align-items: baseline; gap: 16px; padding: 14px 24px; border-bottom: 1px solid var(--line); background: var(--bg); }
  header h1 { font-size: 18px; margin: 0; }
  header .meta { color: var(--muted); }
  main { padding: 16px 24px; max-width: 1200px; }
  #banner { display: none; margin-bottom: 16px; padding: 12px 16px; border-radius: 6px; font-weight: 600; }
  #banner.bad { display: block; background: #ffebe9; color: var(--bad); border: 1px solid #ff8182; }
  #banner.ok { display: block; background: #dafbe1; color: var(--ok); border: 1px solid #4ac26b; }
  section { margin-bottom: 24px; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  h2 small { color: var(--muted); font-weight: normal; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
  td.num, th.num { text-align: right; }
  .chip { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; color: #fff; }
  .chip.up { background: var(--ok); } .chip.down { background: var(--bad); } .chip.unavailable { background: var(--bad); }
  .chip.checking { background: var(--warn); } .chip.backup { background: var(--muted); } .chip.draining { background: var(--warn); }
  tr.down td { background: #fff5f5; }
  .checks span { display: inline-block; width: 8px; height: 14px; margin-right: 2px; border-radius: 2px; background: var(--ok); vertical-align: middle; }
  .checks span.fail { background: var(--bad); }
  .why { color: var(--bad); max-width: 320px; white-space: normal; overflow-wrap: anywhere; }
  .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 24px; }
  #error { color: var(--bad); }
</style>
</head>
<body>
<header><h1>lb status</h1><span class="meta" id="meta">loading…</span><span id="error"></span></header>
<main>
  <div id="banner"></div>
  <div id="upstreams"></div>
  <div class="grid">
    <section><h2>Server blocks <small>requests by status class</small></h2><table id="servers"></table></section>
    <section><h2>Cache zones</h2><table id="caches"></table></section>
    <section><h2>Workers</h2><table id="workers"></table></section>
  </div>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
const ms = (v) => v == null ? "–" : (v < 10 ? v.toFixed(1) : Math.round(v)) + " ms";
const bytes = (n) => n == null ? "–" : n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB";
const ago = (t, now) => t == null ? "" : Math.max(0, now - t) + " s ago";
function render(s) {
  $("meta").textContent = `${s.version} · ${s.hostname} · up ${s.uptime_s} s · config generation ${s.generation}`;
  const down = [];
  let html = "";
  for (const u of s.upstreams) {
    const hc = u.health_check ? `health check ${esc(u.health_check.uri)} every ${u.health_check.interval_ms} ms` : "passive checks only";
    html += `<section><h2>upstream ${esc(u.name)} <small>${esc(u.policy)} · ${hc}</small></h2><table><tr><th>peer</th><th>state</th>` +
      `<th class="num">weight</th><th class="num">active</th><th class="num">requests</th><th class="num">failures</th>` +
      `<th class="num">p50</th><th class="num">p90</th><th class="num">p99</th><th>checks</th><th>last failure</th></tr>`;
    for (const p of u.peers) {
      const bad = p.state === "down" || p.state === "unavailable";
      if (bad) down.push(`${u.name} ${p.address}`);
      const checks = p.health_checks.map((c) => `<span class="${c.ok ? "" : "fail"}" title="${esc(c.detail)}"></span>`).join("");
      html += `<tr class="${bad ? "down" : ""}"><td>${esc(p.address)}</td><td><span class="chip ${esc(p.state)}">${esc(p.state)}</span></td>` +
        `<td class="num">${p.weight}</td><td class="num">${p.active}</td><td class="num">${p.requests}</td><td class="num">${p.failures}</td>` +
        `<td class="num">${ms(p.response_ms.p50)}</td><td class="num">${ms(p.response_ms.p90)}</td><td class="num">${ms(p.response_ms.p99)}</td>` +
        `<td class="checks">${checks}</td><td class="why" title="${esc(p.last_failure ?? "")}">${p.last_failure ? esc(p.last_failure) + " · " + ago(p.last_failure_at, s.time) : ""}</td></tr>`;
    }
    html += "</table></section>";
  }
  $("upstreams").innerHTML = html || "<p>No upstreams.</p>";
  const b = $("banner");
  if (down.length) { b.className = "bad"; b.textContent = `${down.length} peer${down.length > 1 ? "s" : ""} down: ${down.join(", ")}`; }
  else { b.className = "ok"; b.textContent = "All peers up."; }
  $("servers").innerHTML = "<tr><th>server</th><th class='num'>1xx</th><th class='num'>2xx</th><th class='num'>3xx</th><th class='num'>4xx</th><th class='num'>5xx</th></tr>" +
    s.servers.map((v) => `<tr><td>${esc(v.names.join(" ") || "#" + v.index)}</td>` + ["1xx", "2xx", "3xx", "4xx", "5xx"].map((k) => `<td class="num">${v.requests[k]}</td>`).join("") + "</tr>").join("");
  $("caches").innerHTML = s.caches.length ? "<tr><th>zone</th><th class='num'>entries</th><th class='num'>size</th><th class='num'>hits</th><th class='num'>misses</th><th class='num'>stale</th></tr>" +
    s.caches.map((c) => `<tr><td>${esc(c.zone)}</td><td class="num">${c.entries}</td><td class="num">${bytes(c.size)}</td><td class="num">${c.hits}</td><td class="num">${c.misses}</td><td class="num">${c.stale + c.updating}</td></tr>`).join("") : "<tr><td>No cache zones.</td></tr>";
  $("workers").innerHTML = "<tr><th>worker</th><th class='num'>connections</th><th class='num'>accepted</th><th class='num'>requests</th></tr>" +
    s.workers.map((w) => `<tr><td>${w.index}</td><td class="num">${w.connections}</td><td class="num">${w.accepted}</td><td class="num">${w.requests}</td></tr>`).join("");
}
async function refresh() {
  try {
    const r = await fetch(location.pathname + "?format=json", { cache: "no-store" });
    render(await r.json());
    $("error").textContent = "";
  } catch (e) {
    $("error").textContent = "· status unavailable: " + e;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"""#.utf8)
}
