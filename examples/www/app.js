// The stack's front-end: talks to the app instances through lb, no page reloads.
const $ = (id) => document.getElementById(id);
const colors = ["#4cc38a", "#58a6ff", "#f0b429", "#d2a8ff", "#ff7b72", "#79c0ff"];
const seen = [];

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return { body: await r.json(), headers: r.headers };
}

async function ask() {
  try {
    const { body } = await getJSON("/api/info");
    $("instance").textContent = body.instance;
    $("instance").classList.remove("error");
    $("instance-id").textContent = body.instance_id;
    $("client-ip").textContent = body.connecting_ip ?? "—";
    $("proxy-ip").textContent = body.proxy_ip ?? "—";
    if (!seen.includes(body.instance)) seen.push(body.instance);
    const chip = document.createElement("span");
    chip.textContent = body.instance;
    chip.style.background = colors[seen.indexOf(body.instance) % colors.length] + "33";
    $("history").prepend(chip);
    while ($("history").children.length > 12) $("history").lastChild.remove();
  } catch (e) {
    $("instance").textContent = "unavailable";
    $("instance").classList.add("error");
  }
}

async function visit() {
  try {
    const { body } = await getJSON("/api/count");
    $("count").textContent = body.count;
    $("count").classList.remove("error");
    $("count-instance").textContent = body.instance;
  } catch (e) {
    $("count").textContent = "store unavailable";
    $("count").classList.add("error");
  }
}

async function cache() {
  try {
    const r = await fetch("/cache-me", { cache: "no-store" });
    const status = r.headers.get("X-Cache-Status");
    $("cache-status").textContent = status ?? "not cached";
    $("cache-status").className = "big " + (status ?? "none");
    $("cache-body").textContent = (await r.text()).trim();
  } catch (e) {
    $("cache-status").textContent = "unavailable";
    $("cache-status").className = "big error";
  }
}

$("ask").addEventListener("click", ask);
$("visit").addEventListener("click", visit);
$("cache").addEventListener("click", cache);
ask();
visit();
cache();
setInterval(ask, 3000);
setInterval(cache, 5000);
