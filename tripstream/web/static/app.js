// The tripstream dashboard. Everything from the server is data: it is put on the page
// with textContent (never innerHTML), so a region named <img onerror=...> shows as text.
// Updates arrive as Server-Sent Events; on every (re)connection and whenever the database
// comes back, the page takes a fresh snapshot (the catch-up). There is no polling timer.
"use strict";

const files = new Map(); // file_id (text) -> file
const inFlight = new Set(); // per snapshot in flight: the file updates pushed meanwhile
const $ = (id) => document.getElementById(id);
const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));
let answersTimer = null;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// -- files and totals ---------------------------------------------------------------
function upsertFile(f) {
  const known = files.get(f.file_id) || {};
  files.set(f.file_id, { ...known, ...f });
}

// A pushed update is also kept by every snapshot in flight: the snapshot may have been
// read before that change, so the update is applied again on top of it, in arrival order.
function pushedFile(f) {
  inFlight.forEach((arrived) => arrived.push(f));
  upsertFile(f);
}

function renderFiles() {
  const body = $("files").querySelector("tbody");
  const rows = [...files.values()].sort((a, b) =>
    String(b.updated_at || "").localeCompare(String(a.updated_at || "")));
  body.replaceChildren(...rows.map((f) => {
    const tr = el("tr");
    tr.dataset.fileId = f.file_id;
    tr.dataset.state = f.state;
    tr.append(el("td", f.name, "name"), el("td", f.state, "state " + f.state));
    const bar = el("progress");
    bar.max = Math.max(Number(f.rows_valid) || 0, 1);
    bar.value = Number(f.rows_committed) || 0;
    const pct = f.rows_valid ? Math.floor((100 * f.rows_committed) / f.rows_valid) : 0;
    const cell = el("td");
    cell.append(bar, el("span", pct + "%", "pct"));
    tr.append(cell, el("td", fmt(f.rows_committed) + " / " + fmt(f.rows_valid)));
    tr.append(el("td", fmt(f.rows_rejected)), el("td", f.error || "", "error"));
    return tr;
  }));
  const all = [...files.values()];
  const sum = (key) => all.reduce((acc, f) => acc + (Number(f[key]) || 0), 0);
  $("t-files").textContent = fmt(all.length);
  $("t-committed").textContent = fmt(all.filter((f) => f.state === "committed").length);
  $("t-flight").textContent = fmt(all.filter((f) =>
    ["seen", "publishing", "published"].includes(f.state)).length);
  $("t-rows").textContent = fmt(sum("rows_committed"));
  $("t-rejected").textContent = fmt(sum("rows_rejected"));
}

// -- the batch chart ----------------------------------------------------------------
const MAX_POINTS = 300;
function batchChart(points) {
  const x = points.map((p) => p.at), rate = points.map((p) => p.rate), lag = points.map((p) => p.lag);
  Plotly.react($("batch-chart"), [
    { x, y: rate, name: "rows/s (per batch)", mode: "lines+markers", type: "scatter" },
    { x, y: lag, name: "lag s", mode: "lines+markers", type: "scatter", yaxis: "y2" },
  ], {
    margin: { t: 10, r: 60, b: 40, l: 70 }, height: 260, legend: { orientation: "h" },
    yaxis: { title: { text: "rows/s" }, rangemode: "tozero" },
    yaxis2: { title: { text: "lag s" }, overlaying: "y", side: "right", rangemode: "tozero" },
  }, { displayModeBar: false, responsive: true });
}
const batchPoints = [];
function addBatch(point) {
  batchPoints.push(point);
  if (batchPoints.length > MAX_POINTS) batchPoints.shift();
  batchChart(batchPoints);
}

// -- the answers --------------------------------------------------------------------
function renderTable(table, rows) {
  const head = table.querySelector("thead"), body = table.querySelector("tbody");
  const columns = rows.length ? Object.keys(rows[0]) : [];
  const tr = el("tr");
  tr.append(...columns.map((c) => el("th", c)));
  head.replaceChildren(tr);
  body.replaceChildren(...rows.map((r) => {
    const row = el("tr");
    row.append(...columns.map((c) => el("td", typeof r[c] === "number" ? fmt(r[c]) : r[c])));
    return row;
  }));
}

async function showWeekly(params) {
  $("weekly-error").textContent = "";
  try {
    const body = await getJSON("/api/weekly-average?" + new URLSearchParams(params));
    const row = body.rows[0];
    $("weekly").textContent = row
      ? Object.entries(row).map(([k, v]) => k + ": " + (typeof v === "number" ? fmt(v) : v)).join(", ")
      : "no trips yet";
  } catch (e) {
    $("weekly").textContent = "";
    $("weekly-error").textContent = e.message;
  }
}

async function refreshAnswers() {
  try {
    const latest = await getJSON("/api/latest-datasource");
    $("latest").textContent = latest.rows.length
      ? Object.values(latest.rows[0]).join(" · ") : "no trips yet";
    renderTable($("similar"), (await getJSON("/api/similar?limit=10")).rows);
    const ds = $("datasource").value.trim();
    if (ds) await showRegions(ds);
    await drawCells();
  } catch (e) {
    $("latest").textContent = e.message;
  }
}
function answersSoon() { // after a batch: at most once every two seconds
  if (answersTimer === null) answersTimer = setTimeout(() => { answersTimer = null; refreshAnswers(); }, 2000);
}

async function showRegions(datasource) {
  const body = await getJSON("/api/regions?" + new URLSearchParams({ datasource }));
  $("regions").textContent = body.rows.length
    ? body.rows.map((r) => Object.values(r)[0]).join(", ") : "none";
}

async function drawCells() {
  const body = await getJSON("/api/cells");
  const per = body.per_degree;
  const x = body.cells.map((c) => (c.cx + 0.5) / per), y = body.cells.map((c) => (c.cy + 0.5) / per);
  const size = body.cells.map((c) => 4 + 3 * Math.log10(1 + c.trips));
  Plotly.react($("cells-chart"), [{
    x, y, mode: "markers", type: "scatter", text: body.cells.map((c) => fmt(c.trips) + " trips"),
    hoverinfo: "text", marker: { size, opacity: 0.6 },
  }], {
    margin: { t: 10, r: 10, b: 40, l: 60 }, height: 420, dragmode: "select",
    xaxis: { title: { text: "longitude" } }, yaxis: { title: { text: "latitude" }, scaleanchor: "x" },
  }, { displayModeBar: true, responsive: true });
  const chart = $("cells-chart");
  if (!chart.dataset.bound) {
    chart.dataset.bound = "1";
    chart.on("plotly_selected", (event) => {
      if (!event || !event.range) return;
      const [x0, x1] = event.range.x, [y0, y1] = event.range.y;
      const box = [x0, y0, x1, y1].map((v) => v.toFixed(4)).join(",");
      $("bbox").value = box;
      $("region").value = "";
      showWeekly({ bbox: box });
    });
  }
}

// -- the snapshot and the stream ----------------------------------------------------
async function snapshot() {
  const arrived = [];
  inFlight.add(arrived);
  try {
    const [f, b] = await Promise.all([getJSON("/api/files"), getJSON("/api/batches")]);
    files.clear();
    f.files.forEach(upsertFile);
    arrived.forEach(upsertFile);
    inFlight.delete(arrived);
    renderFiles();
    batchPoints.length = 0;
    b.batches.forEach((r) => batchPoints.push({
      at: r.committed_at, rate: r.duration_ms ? Math.round((1000 * r.rows_new) / r.duration_ms) : null, lag: null,
    }));
    batchChart(batchPoints);
    setDb(true);
    await refreshAnswers();
  } catch (e) {
    inFlight.delete(arrived);
    setDb(false, e.message);
  }
}

function setDb(up, error) {
  $("db-down").hidden = up;
  $("db-error").textContent = error || "";
  document.body.dataset.db = up ? "up" : "down";
}

function connect() {
  const source = new EventSource("/events");
  source.onopen = () => { $("connection").textContent = "live"; };
  source.onerror = () => { $("connection").textContent = "reconnecting…"; };
  source.addEventListener("db", (e) => {
    const state = JSON.parse(e.data);
    if (state.up) snapshot(); else setDb(false, state.error);
  });
  source.addEventListener("file", (e) => {
    pushedFile(JSON.parse(e.data));
    renderFiles();
  });
  source.addEventListener("batch", (e) => {
    const note = JSON.parse(e.data);
    (note.files || []).forEach(pushedFile);
    renderFiles();
    addBatch({
      at: new Date().toISOString(),
      rate: note.duration_ms ? Math.round((1000 * note.rows) / note.duration_ms) : null,
      lag: note.lag_ms === null || note.lag_ms === undefined ? null : note.lag_ms / 1000,
    });
    answersSoon();
  });
}

window.addEventListener("DOMContentLoaded", () => {
  $("regions-form").addEventListener("submit", (e) => {
    e.preventDefault();
    showRegions($("datasource").value.trim()).catch((err) => { $("regions").textContent = err.message; });
  });
  $("weekly-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const region = $("region").value.trim(), box = $("bbox").value.trim();
    showWeekly(box ? { bbox: box } : { region });
  });
  connect();
});
