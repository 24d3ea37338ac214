// locust-llm dashboard: polls ./live every data-poll-ms and redraws.
// Every string that came from the run (model, host, error messages, SLO text, target names)
// is written with textContent, never innerHTML: model output or a server's error body can hold
// markup, and it must stay text.
(function () {
  "use strict";
  const POLL = parseInt(document.body.dataset.pollMs || "2000", 10);
  const METRICS = [["TTFT", "ttft"], ["TPOT", "tpot"], ["ITL", "itl"], ["E2E", "e2el"]];
  const STATS = ["mean", "p50", "p90", "p95", "p99", "max"];
  // the mode bar stands vertical at the right edge, the title at the left: never one over the other
  const LAYOUT = { margin: { l: 50, r: 40, t: 34, b: 30 }, legend: { orientation: "h" },
                   xaxis: { type: "date" }, modebar: { orientation: "v" } };
  const CFG = { displaylogo: false, responsive: true };

  function fmt(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    return Number(v).toFixed(digits === undefined ? 2 : digits);
  }
  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function fillBody(id, rows, build) {
    const tbody = document.querySelector("#" + id + " tbody");
    const frag = document.createDocumentFragment();
    rows.forEach((r) => { const tr = document.createElement("tr"); build(tr, r); frag.appendChild(tr); });
    tbody.replaceChildren(frag);
  }
  function setText(id, v) { document.getElementById(id).textContent = v === null || v === undefined ? "–" : String(v); }

  function drawSummary(s) {
    const m = s.meta || {};
    setText("meta-model", m.model); setText("meta-host", m.host);
    setText("meta-state", m.state); setText("meta-users", m.users);
    const cards = [
      ["completed", s.completed, 0], ["failed", s.failed, 0], ["aborted", s.aborted, 0],
      ["cancelled", s.cancelled, 0],
      ["request_throughput", s.request_throughput, 2], ["output_throughput", s.output_throughput, 1],
      ["max_output_tokens_per_s", s.max_output_tokens_per_s, 1],
      ["total_output_tokens", s.total_output_tokens, 0], ["duration", s.duration, 1],
    ];
    if (s.request_goodput !== null && s.request_goodput !== undefined) cards.push(["request_goodput", s.request_goodput, 2]);
    // share of prompt tokens the server reported cached (usage.prompt_tokens_details), in %
    if (s.prefix_cache_hit_rate !== null && s.prefix_cache_hit_rate !== undefined) cards.push(["prefix_cache_hit_rate", s.prefix_cache_hit_rate * 100, 1]);
    const box = document.getElementById("cards");
    const frag = document.createDocumentFragment();
    cards.forEach(([k, v, d]) => {
      const div = document.createElement("div"); div.className = "card"; div.dataset.field = k;
      const val = document.createElement("div"); val.className = "v"; val.textContent = fmt(v, d);
      const key = document.createElement("div"); key.className = "k"; key.textContent = k;
      div.append(val, key); frag.appendChild(div);
    });
    box.replaceChildren(frag);
    // the live over-saturation check fired: the queue grows, higher load measures only the queue
    const sat = s.saturation || {};
    const banner = document.getElementById("saturated");
    if (banner) {
      const when = sat.at_t ? " since " + new Date(sat.at_t * 1000).toLocaleTimeString() : "";
      banner.textContent = sat.detected ? "SATURATED" + when + ": " + (sat.reason || "") : "";
      banner.classList.toggle("hidden", !sat.detected);
    }
    // nothing completed: say why, instead of cards of zeros that read as a collapse
    const nd = document.getElementById("no-data");
    if (nd) { nd.textContent = s.no_data_reason ? "No data: " + s.no_data_reason : ""; nd.classList.toggle("hidden", !s.no_data_reason); }
    fillBody("latency", METRICS, (tr, [label, key]) => {
      tr.dataset.metric = key;
      cell(tr, label);
      cell(tr, fmt(s["count_" + key], 0)).dataset.stat = "count";
      STATS.forEach((st) => { cell(tr, fmt(s[st + "_" + key + "_ms"])).dataset.stat = st; });
    });
    const slo = s.slo || [];
    document.getElementById("slo-section").classList.toggle("hidden", slo.length === 0);
    fillBody("slo", slo, (tr, r) => {
      cell(tr, r.passed ? "PASS" : "FAIL", r.passed ? "pass" : "fail");
      cell(tr, r.expr, "text");
      cell(tr, r.value === null ? (r.reason ? "no data: " + r.reason : "no data") : fmt(r.value, 3), "text");
    });
    const errs = Object.entries(s.errors || {});
    document.getElementById("errors-section").classList.toggle("hidden", errs.length === 0);
    const examples = s.error_examples || {};
    // counted by a stable key; the row shows one full message the server sent for it
    fillBody("errors", errs, (tr, [key, n]) => { cell(tr, String(n)); cell(tr, examples[key] || key, "msg"); });
  }

  function line(x, y, name) { return { x: x, y: y, name: name, type: "scatter", mode: "lines+markers", marker: { size: 3 } }; }
  function plot(id, title, traces, ytitle) {
    Plotly.react(id, traces, Object.assign({}, LAYOUT, { title: { text: title, font: { size: 13 }, x: 0.01, xanchor: "left" },
      yaxis: { title: { text: ytitle }, rangemode: "tozero" } }), CFG);
  }

  function drawIntervals(rows) {
    const x = rows.map((r) => new Date(r.t * 1000));
    const col = (k) => rows.map((r) => r[k]);
    // the first and last seconds are partial (the run covered part of them): not a rate
    const rate = (k) => rows.map((r) => (r.partial ? null : r[k]));
    // latency of a second with no finished request is "no data", not 0 ms: leave a gap
    const lat = (k) => rows.map((r) => (r.requests > 0 && r[k] !== null ? r[k] : null));
    plot("chart-tokens", "Output tokens/s, by arrival", [line(x, rate("output_tokens"), "tok/s")], "tok/s");
    plot("chart-requests", "Requests/s, by completion time",
         [line(x, rate("requests"), "completed/s"), line(x, rate("failed"), "failed/s")], "req/s");
    plot("chart-inflight", "In-flight requests (maximum in each second)", [line(x, col("in_flight"), "in flight")], "requests");
    plot("chart-ttft", "TTFT of requests finished in each second (ms)",
         [line(x, lat("ttft_p50_ms"), "p50"), line(x, lat("ttft_p95_ms"), "p95")], "ms");
    plot("chart-itl", "ITL of requests finished in each second (ms)",
         [line(x, lat("itl_p50_ms"), "p50"), line(x, lat("itl_p99_ms"), "p99")], "ms");
  }

  function drawServer(srv) {
    const targets = (srv && srv.targets) || [];
    const ups = (srv && srv.upstream_requests) || {};
    document.getElementById("server-section").classList.toggle("hidden", targets.length === 0);
    document.getElementById("chart-server").classList.toggle("hidden", targets.length === 0);
    fillBody("server", targets, (tr, t) => {
      const v = t.values || {};
      tr.dataset.target = t.name;
      cell(tr, t.name, "text");
      cell(tr, t.kind === "vllm" ? fmt(v.running, 0) : "");
      cell(tr, t.kind === "vllm" ? fmt(v.waiting, 0) : "");
      cell(tr, t.kind === "vllm" && v.kv_cache_usage !== undefined ? fmt(v.kv_cache_usage * 100, 1) + " %" : "");
      const pc = t.prefix_cache || {};
      cell(tr, t.kind === "vllm" && pc.hit_rate !== null && pc.hit_rate !== undefined ? fmt(pc.hit_rate * 100, 1) + " %" : "").dataset.stat = "prefix_cache_hit_rate";
      cell(tr, t.kind === "nginx" ? fmt(v.active, 0) : "");
      let reqs = "";
      if (t.kind === "nginx") reqs = fmt(v.requests, 0);
      else { const hp = (t.url || "").replace(/^https?:\/\//, "").split("/")[0]; if (ups[hp] !== undefined) reqs = String(ups[hp]); }
      cell(tr, reqs);
      cell(tr, t.ok ? "ok" : (t.error || "waiting"), t.ok ? "pass" : "fail");
    });
    if (targets.length) {
      const traces = [];
      targets.filter((t) => t.kind === "vllm").forEach((t) => {
        const h = t.history || [];
        const x = h.map((p) => new Date(p.t * 1000));
        traces.push(line(x, h.map((p) => p.running), t.name + " running"));
        traces.push(line(x, h.map((p) => p.waiting), t.name + " waiting"));
      });
      plot("chart-server", "Server: running / waiting per replica", traces, "requests");
    }
  }

  // GPU series grow by what is new since the last poll (./gpu?since=): O(new samples) a poll
  const GPU_FIELDS = [["util", "chart-gpu-util", "GPU utilization (%)", "%"],
                      ["mem_used_mib", "chart-gpu-mem", "GPU memory used (MiB)", "MiB"],
                      ["power_w", "chart-gpu-power", "GPU power (W)", "W"],
                      ["sm_clock_mhz", "chart-gpu-clock", "SM clock (MHz)", "MHz"]];
  const gpuSeries = {};
  let gpuLast = null;
  async function refreshGpu() {
    const r = await fetch("./gpu" + (gpuLast === null ? "" : "?since=" + gpuLast), { cache: "no-store", credentials: "same-origin" });
    if (!r.ok) return;
    const d = await r.json();
    (d.gpus || []).forEach((g) => {
      const s = gpuSeries[g.gpu] || (gpuSeries[g.gpu] = { label: "GPU " + g.gpu + (g.replica ? " (" + g.replica + ")" : ""), t: [] });
      s.t.push(...g.t);
      GPU_FIELDS.forEach(([k]) => { (s[k] || (s[k] = [])).push(...g[k]); });
    });
    if (d.last_t !== null && d.last_t !== undefined) gpuLast = d.last_t;
    const all = Object.keys(gpuSeries).sort((a, b) => a - b).map((k) => gpuSeries[k]);
    document.getElementById("gpu-section").classList.toggle("hidden", all.length === 0);
    if (!all.length) return;
    GPU_FIELDS.forEach(([k, id, title, unit]) => {
      plot(id, title, all.map((s) => line(s.t.map((t) => new Date(t * 1000)), s[k], s.label)), unit);
    });
  }

  // per-second rows: the first poll gets them all, later ones only the tail that may have
  // changed (from intervals_from on), so a poll costs the same at minute 1 and hour 6
  let rows = [];
  let since = "";
  function mergeRows(d) {
    if (d.intervals_from === null || d.intervals_from === undefined) rows = d.intervals;
    else rows = rows.filter((r) => r.t < d.intervals_from).concat(d.intervals);
    since = "?epoch=" + d.epoch + "&seq=" + d.seq;
    document.body.dataset.intervalsFrom = String(d.intervals_from);  // what the last poll sent
    return rows;
  }

  let busy = false;
  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const r = await fetch("./live" + since, { cache: "no-store", credentials: "same-origin" });
      if (r.ok) {
        const d = await r.json();
        drawSummary(d.summary); drawIntervals(mergeRows(d)); drawServer(d.server);
        await refreshGpu();
        document.body.dataset.updated = String(Date.now());
      }
    } catch (e) { /* the web UI may be going away at quit: try again next tick */ }
    finally { busy = false; }
  }
  refresh();
  setInterval(refresh, POLL);
})();
