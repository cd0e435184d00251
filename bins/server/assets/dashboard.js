// The dashboard polls /api/admin/dashboard and draws its history on canvases. No library, no
// network beyond this server.
"use strict";

const PERIOD_MS = 2000;
const HISTORY = 90;
const TOKEN_KEY = "hotel-admin-token";
const history = { t: [], hitRatio: [], entries: [], rate: [], p50: [], p99: [] };
let previous = null;
let timer = null;

const $ = (id) => document.getElementById(id);

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function showLogin(message) {
  clearTimeout(timer);
  $("panels").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("status").textContent = "not connected";
}

async function fetchData() {
  const response = await fetch("/api/admin/dashboard", { headers: { Authorization: "Bearer " + token() } });
  if (response.status === 401 || response.status === 403) {
    sessionStorage.removeItem(TOKEN_KEY);
    const body = await response.json().catch(() => ({}));
    throw Object.assign(new Error((body.error && body.error.message) || "token refused"), { auth: true });
  }
  if (!response.ok) throw new Error("HTTP " + response.status);
  return response.json();
}

function push(series, value) {
  series.push(value);
  if (series.length > HISTORY) series.shift();
}

function record(data) {
  const now = Date.now() / 1000;
  let rate = 0;
  if (previous) {
    const dt = Math.max(now - previous.at, 0.001);
    rate = Math.max(data.http.requests - previous.requests, 0) / dt;
  }
  previous = { at: now, requests: data.http.requests };
  push(history.t, now);
  push(history.hitRatio, data.cache.hitRatio * 100);
  push(history.entries, data.cache.entries);
  push(history.rate, rate);
  push(history.p50, data.http.p50Ms);
  push(history.p99, data.http.p99Ms);
}

function lineChart(canvas, seriesList, colors, options) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  const pad = 34;
  ctx.clearRect(0, 0, width, height);
  const values = seriesList.flat();
  const max = Math.max(options.min || 1, ...values) * 1.1;
  ctx.strokeStyle = "#d0d5dd";
  ctx.fillStyle = "#6b7385";
  ctx.font = "11px sans-serif";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = pad / 2 + (height - pad) * (i / 4);
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(width - 4, y); ctx.stroke();
    ctx.fillText((max * (1 - i / 4)).toFixed(options.digits || 0), 2, y + 4);
  }
  seriesList.forEach((series, index) => {
    if (series.length === 0) return;
    const point = (value, i) => [
      pad + (width - pad - 4) * (series.length === 1 ? 1 : i / (series.length - 1)),
      pad / 2 + (height - pad) * (1 - value / max),
    ];
    ctx.strokeStyle = colors[index];
    ctx.fillStyle = colors[index];
    ctx.lineWidth = 2;
    ctx.beginPath();
    series.forEach((value, i) => {
      const [x, y] = point(value, i);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
    // A dot on every sample, so a single sample shows too.
    series.forEach((value, i) => {
      const [x, y] = point(value, i);
      ctx.beginPath(); ctx.arc(x, y, 3, 0, 2 * Math.PI); ctx.fill();
    });
  });
  canvas.dataset.drawn = String(Number(canvas.dataset.drawn) + 1);
  canvas.dataset.points = String(seriesList[0].length);
}

function barChart(canvas, bars) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  ctx.font = "11px sans-serif";
  const max = Math.max(0.001, ...bars.map((b) => b.value)) * 1.15;
  const rowHeight = Math.min(28, (height - 8) / Math.max(bars.length, 1));
  bars.forEach((bar, i) => {
    const y = 4 + i * rowHeight;
    const w = (width - 340) * (bar.value / max);
    ctx.fillStyle = "#3e63dd";
    ctx.fillRect(270, y, Math.max(w, 1), rowHeight - 6);
    ctx.fillStyle = "#1d2433";
    ctx.fillText(bar.label.slice(0, 42), 2, y + rowHeight / 2);
    ctx.fillText(bar.value.toFixed(3), 276 + w, y + rowHeight / 2);
  });
  canvas.dataset.drawn = String(Number(canvas.dataset.drawn) + 1);
  canvas.dataset.bars = String(bars.length);
}

function fillTable(id, rows) {
  const body = $(id).querySelector("tbody");
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i === cells.length - 1) td.className = "sql";
      tr.append(td);
    });
    return tr;
  }));
}

function render(data) {
  record(data);
  $("hit-ratio").textContent = (data.cache.hitRatio * 100).toFixed(1) + " %  (" + data.cache.hits + " hits, " + data.cache.misses + " misses)";
  $("entries").textContent = data.cache.entries + " / " + data.cache.capacity;
  $("rate").textContent = history.rate[history.rate.length - 1].toFixed(1) + " req/s  (" + data.http.requests + " in all)";
  $("latency").textContent = data.http.p50Ms.toFixed(2) + " ms / " + data.http.p99Ms.toFixed(2) + " ms";
  lineChart($("chart-hit-ratio"), [history.hitRatio], ["#12b76a"], { min: 100, digits: 0 });
  lineChart($("chart-entries"), [history.entries], ["#3e63dd"], { min: 10 });
  lineChart($("chart-rate"), [history.rate], ["#7a5af8"], { min: 1, digits: 1 });
  lineChart($("chart-latency"), [history.p50, history.p99], ["#3e63dd", "#f04438"], { min: 1, digits: 1 });
  barChart($("chart-queries"), data.queries.map((q) => ({ label: q.operation, value: q.p95Ms })));
  fillTable("slow-queries", data.slowQueries.map((q) => [q.at, q.durationMs.toFixed(1), q.statement]));
  fillTable("n-plus-one", data.nPlusOne.map((n) => [n.at, String(n.count), n.statement]));
  const b = data.backups;
  $("backups").innerHTML = "";
  const line = document.createElement("span");
  if (!b) {
    line.textContent = "no backup directory configured";
  } else {
    line.className = b.status.toLowerCase();
    line.textContent = b.status + ": " + b.summary;
  }
  $("backups").append(line);
  $("status").textContent = "live · " + new Date().toLocaleTimeString();
}

async function tick() {
  try {
    render(await fetchData());
    timer = setTimeout(tick, PERIOD_MS);
  } catch (error) {
    if (error.auth) { showLogin(error.message); return; }
    $("status").textContent = "error: " + error.message + " (retrying)";
    timer = setTimeout(tick, PERIOD_MS);
  }
}

function start() {
  $("login").hidden = true;
  $("panels").hidden = false;
  $("period").textContent = String(PERIOD_MS / 1000);
  tick();
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  start();
});

$("logout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showLogin(); });

if (token()) start(); else showLogin();
