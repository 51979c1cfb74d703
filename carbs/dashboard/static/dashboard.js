// carbs dashboard: builds the pages from the JSON API and keeps them current by polling it.
// Only rows changed since the version the page holds are fetched, so a refresh of a big
// study costs what changed, not the whole study.
"use strict";

(function () {
  const root = document.getElementById("app");
  const POLL_MS = parseFloat(root.dataset.poll || "1.5") * 1000;
  const PAGE_SIZE = 50;
  const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
  // Many points draw much faster with WebGL; plain SVG where the browser has none.
  const HAS_GL = !/[?&]gl=0/.test(location.search) && (() => { try { return !!document.createElement("canvas").getContext("webgl"); } catch (e) { return false; } })();
  const scatterType = (n) => (HAS_GL && n > 1500 ? "scattergl" : "scatter");
  const DOTS_MAX = 1500;
  const COLORS = { front: "#c0392b", fit: "#1f3b73", fail: "#d35400", dots: "#b5bcc6" };

  // plotly.js loads asynchronously (see the page's <head>): data and tables do not wait for it.
  const plotlyReady = new Promise((resolve, reject) => {
    const script = document.getElementById("plotly-js");
    if (window.Plotly || !script) { resolve(); return; }
    script.addEventListener("load", () => resolve());
    script.addEventListener("error", () => reject(new Error("plotly.js did not load")));
  });

  // ---------------------------------------------------------------- helpers
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return node;
  }
  function fmt(v, digits) {
    if (v === null || v === undefined) return "—";
    if (typeof v === "number") {
      if (!isFinite(v)) return "—";
      if (Number.isInteger(v) && Math.abs(v) < 1e7) return String(v);
      return Number(v.toPrecision(digits || 4)).toString();
    }
    return String(v);
  }
  function fmtInterval(iv) {
    return iv ? `[${fmt(iv[0])}, ${fmt(iv[1])}]` : "—";
  }
  function fmtTime(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    return d.toLocaleString();
  }
  function ago(iso) {
    if (!iso) return "—";
    const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 90) return `${Math.round(s)} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    if (s < 172800) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }
  function seconds(s) {
    if (s === null || s === undefined) return "—";
    if (s < 60) return `${s.toFixed(1)} s`;
    if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
    return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  }
  async function api(path) {
    const r = await fetch(path, { credentials: "same-origin", cache: "no-store" });
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) {
      const err = new Error((body && body.error) || `${r.status} ${r.statusText}`);
      err.status = r.status;
      throw err;
    }
    return body;
  }
  const enc = encodeURIComponent;
  const studyUrl = (name) => `/studies/${enc(name)}`;
  const trialUrl = (name, n) => `/studies/${enc(name)}/trials/${n}`;
  function header(crumbs) {
    const live = el("span", { class: "live", id: "live", text: "connecting…" });
    const parts = [el("h1", {}, el("a", { href: "/" }, "carbs dashboard"))];
    for (const [label, href] of crumbs) {
      parts.push(el("span", {}, "›"));
      parts.push(href ? el("a", { href }, label) : el("span", {}, label));
    }
    return el("header", {}, parts, live);
  }
  function setLive(ok, text) {
    const node = document.getElementById("live");
    if (!node) return;
    node.textContent = text;
    node.classList.toggle("down", !ok);
  }
  function card(key, value, id) {
    return el("div", { class: "card" }, el("div", { class: "v", id: id || null }, value), el("div", { class: "k" }, key));
  }
  function table(headers, rows, leftCols) {
    leftCols = leftCols || 1;
    return el("div", { class: "scroll" }, el("table", {},
      el("thead", {}, el("tr", {}, headers.map((h, i) => el("th", { class: i < leftCols ? "l" : null }, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c, i) => el("td", { class: i < leftCols ? "l" : null }, c)))))));
  }
  function paramText(params) {
    return Object.entries(params).map(([k, v]) => `${k}=${typeof v === "number" ? fmt(v) : v}`).join("<br>");
  }
  function poll(fn) {
    // Runs fn now and again POLL_MS after each run ends; failures show in the header and retry.
    const loop = async () => {
      try {
        await fn();
      } catch (e) {
        if (e.status === 404) {
          // No such study or trial: say so once, there is nothing to poll for.
          document.querySelector("main").replaceChildren(el("div", { class: "error", id: "not-found" }, e.message));
          setLive(false, "not found");
          return;
        }
        setLive(false, `disconnected: ${e.message}`);
      }
      setTimeout(loop, POLL_MS);
    };
    loop();
  }

  // ---------------------------------------------------------------- studies page
  function studiesPage() {
    document.title = "carbs dashboard";
    const body = el("main", {}, el("section", {}, el("h2", {}, "Studies"), el("div", { id: "studies" }, "loading…")));
    root.append(header([]), body);
    poll(async () => {
      const data = await api("/api/studies");
      const rows = data.studies.map((s) => [
        el("a", { href: s.url }, s.name),
        s.metric, s.direction,
        fmt(s.n_trials),
        el("span", { class: "state-RUNNING" }, fmt(s.states.RUNNING || 0)),
        el("span", { class: "state-COMPLETE" }, fmt(s.states.COMPLETE || 0)),
        el("span", { class: "state-FAILED" }, fmt(s.states.FAILED || 0)),
        fmt(s.cost_spent),
        s.best ? fmt(s.best.output) : "—",
        ago(s.last_activity),
      ]);
      const box = document.getElementById("studies");
      box.replaceChildren(rows.length
        ? table(["study", "metric", "goal", "trials", "running", "complete", "failed", "cost spent", "best", "last activity"], rows, 3)
        : el("p", { class: "note" }, `No studies in ${data.storage} yet.`));
      setLive(true, `live · ${data.storage} · ${new Date().toLocaleTimeString()}`);
    });
  }

  // ---------------------------------------------------------------- study page
  function studyPage() {
    const name = root.dataset.study;
    const S = {
      trials: new Map(), version: 0, params: [], kinds: {}, direction: -1,
      analysisVersion: 0, summary: null, targetCost: null, typedCost: false,
      curves: new Map(), curveVersion: 0, curvesAvailable: true,
      sortKey: "number", sortDir: -1, page: 0, filter: "", stateFilter: "", dirty: true, lastDraw: 0,
    };
    window.carbsDashboard = S; // for the browser tests and the curious
    const main = el("main", {},
      el("div", { class: "cards", id: "progress" }),
      el("section", {}, el("div", { class: "grid2" },
        el("div", {}, el("h2", {}, "Pareto front"), el("div", { id: "pareto", class: "plot" }),
          el("p", { class: "note" }, "Every finished trial (colour: trial number; crosses: failures at their cost). The red staircase is the Pareto front; the dashed line the fitted front with its interval. Hover for parameters, click for the trial.")),
        el("div", {}, el("h2", {}, "Best against cumulative cost"), el("div", { id: "best", class: "plot" }),
          el("p", { class: "note" }, "Best output so far against the total cost spent, failures included, in the order trials finished.")))),
      el("section", {}, el("h2", {}, "Parameters against cost"),
        el("p", { class: "note" }, "Grey: every completed trial; red: the Pareto front; dashed: the fitted scaling law over the Pareto set with its bootstrap interval; dotted: the target cost."),
        el("div", { id: "param-plots", class: "params" })),
      el("section", {}, el("h2", {}, "Scaling laws and extrapolation"), el("div", { id: "laws" }, "waiting for the analysis…"),
        el("h3", {}, "Extrapolate to a cost"),
        el("div", { class: "controls" },
          el("label", { for: "target-cost" }, "target cost"),
          el("input", { id: "target-cost", type: "number", min: "0", step: "any", onkeydown: (e) => { if (e.key === "Enter") extrapolate(); } }),
          el("button", { id: "extrapolate", onclick: () => extrapolate() }, "Extrapolate")),
        el("div", { id: "extrapolation" })),
      el("section", {}, el("h2", {}, "Failures by region"), el("div", { id: "failures", class: "plot" }),
        el("p", { class: "note" }, "Share of finished trials that failed, each parameter's observed range cut into bins (log-spaced for log parameters). Hover for the counts.")),
      el("section", { id: "curves-section", class: "hidden" }, el("h2", {}, "Intermediate curves"),
        el("div", { class: "controls" }, el("label", { for: "curve-x" }, "against"),
          el("select", { id: "curve-x", onchange: () => drawCurves() }, el("option", { value: "step" }, "step"), el("option", { value: "cost" }, "cost so far"))),
        el("div", { id: "curves", class: "plot" }),
        el("p", { class: "note", id: "curves-note" })),
      el("section", {}, el("h2", {}, "Trials"),
        el("div", { class: "controls" },
          el("input", { id: "filter", type: "search", placeholder: "filter: state, worker, error, lr=…", size: "34",
            oninput: (e) => { S.filter = e.target.value.toLowerCase(); S.page = 0; drawTable(); } }),
          el("select", { id: "state-filter", onchange: (e) => { S.stateFilter = e.target.value; S.page = 0; drawTable(); } },
            el("option", { value: "" }, "all states")),
          el("button", { id: "prev", onclick: () => { S.page = Math.max(0, S.page - 1); drawTable(); } }, "‹ prev"),
          el("button", { id: "next", onclick: () => { S.page += 1; drawTable(); } }, "next ›"),
          el("span", { id: "table-info", class: "note" })),
        el("div", { id: "trials-table" })));
    root.append(header([[name, null]]), main);

    const finished = () => [...S.trials.values()].filter((t) => t.state !== "RUNNING" && t.cost !== null);
    const completed = () => [...S.trials.values()].filter((t) => t.state === "COMPLETE" && t.output !== null && t.cost !== null);
    const better = (a, b) => S.direction * (a - b) > 0;

    function paretoFront(rows) {
      // Cheapest first, each point better than every cheaper one.
      const sorted = rows.slice().sort((a, b) => a.cost - b.cost || S.direction * (b.output - a.output));
      const front = [];
      for (const r of sorted) {
        if (!front.length || better(r.output, front[front.length - 1].output)) front.push(r);
      }
      return front;
    }
    function robustRange(core, others) {
      const vals = core.slice();
      if (others.length) {
        const s = others.slice().sort((a, b) => a - b);
        vals.push(s[Math.floor(0.05 * (s.length - 1))], s[Math.ceil(0.95 * (s.length - 1))]);
      }
      if (!vals.length) return undefined;
      let lo = Math.min(...vals), hi = Math.max(...vals);
      const span = hi > lo ? hi - lo : Math.max(Math.abs(hi), 1) * 0.1;
      return [lo - 0.08 * span, hi + 0.08 * span];
    }
    function onClickTrial(div) {
      if (div.dataset.clickBound) return;
      div.dataset.clickBound = "1";
      div.on("plotly_click", (ev) => {
        const p = ev.points && ev.points[0];
        if (p && p.customdata !== undefined && p.customdata !== null) window.location.href = trialUrl(name, p.customdata);
      });
    }
    function bandTraces(x, curve, label, color, yaxis) {
      return [
        { x, y: curve.high, mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false, yaxis, name: label + " high" },
        { x, y: curve.low, mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: "rgba(31,59,115,0.15)", hoverinfo: "skip", showlegend: false, yaxis, name: label + " low" },
        { x, y: curve.value, mode: "lines", line: { color, dash: "dash", width: 1.8 }, name: label, yaxis, hoverinfo: "x+y" },
      ];
    }

    function drawProgress(progress) {
      const st = progress.states;
      const others = Object.entries(st).filter(([k]) => !["RUNNING", "COMPLETE", "FAILED"].includes(k));
      const front = paretoFront(completed());
      document.getElementById("progress").replaceChildren(
        card("trials", fmt(progress.n_trials), "n-trials"),
        card("running", el("span", { class: "state-RUNNING" }, fmt(st.RUNNING || 0))),
        card("complete", el("span", { class: "state-COMPLETE" }, fmt(st.COMPLETE || 0))),
        card("failed", el("span", { class: "state-FAILED" }, fmt(st.FAILED || 0))),
        ...others.map(([k, v]) => card(k.toLowerCase(), fmt(v))),
        card("cost spent", fmt(progress.cost_spent)),
        card(`best ${progress.metric} (${progress.direction === "maximize" ? "max" : "min"})`,
          progress.best ? el("a", { href: trialUrl(name, progress.best.number) }, fmt(progress.best.output)) : "—"),
        card("on the Pareto front", fmt(front.length)),
        card("last activity", ago(progress.last_activity)));
    }

    function drawPareto() {
      const done = completed();
      const failed = finished().filter((t) => t.state === "FAILED" || (t.state !== "COMPLETE" && t.output === null));
      // Trials stopped early (PRUNED) report their last value at the cost they spent.
      const stopped = finished().filter((t) => t.state !== "COMPLETE" && t.state !== "FAILED" && t.output !== null);
      const front = paretoFront(done);
      const traces = [
        { type: scatterType(done.length), mode: "markers", name: "trials", x: done.map((t) => t.cost), y: done.map((t) => t.output),
          customdata: done.map((t) => t.number),
          text: done.map((t) => `trial ${t.number}<br>${paramText(t.params)}`),
          hovertemplate: "%{text}<br>cost %{x:.4g}<br>output %{y:.4g}<extra></extra>",
          marker: { size: 6, color: done.map((t) => t.number), colorscale: "Viridis", opacity: 0.8,
            colorbar: { title: { text: "trial" }, thickness: 10 } } },
        { type: "scatter", mode: "lines+markers", name: "Pareto front", x: front.map((t) => t.cost), y: front.map((t) => t.output),
          customdata: front.map((t) => t.number), line: { shape: "hv", color: COLORS.front, width: 1.4 },
          marker: { size: 10, color: "rgba(0,0,0,0)", line: { color: COLORS.front, width: 1.8 } },
          text: front.map((t) => `Pareto: trial ${t.number}<br>${paramText(t.params)}`),
          hovertemplate: "%{text}<br>cost %{x:.4g}<br>output %{y:.4g}<extra></extra>" },
        { type: "scatter", mode: "markers", name: `failed (${failed.length})`, x: failed.map((t) => t.cost),
          y: failed.map(() => (S.direction > 0 ? 0.03 : 0.97)), yaxis: "y2", customdata: failed.map((t) => t.number),
          text: failed.map((t) => `trial ${t.number} ${t.fail_kind || "failed"}<br>${t.error ? t.error.slice(0, 120) : ""}<br>${paramText(t.params)}`),
          hovertemplate: "%{text}<br>cost %{x:.4g}<extra></extra>",
          marker: { symbol: "x", size: 7, color: COLORS.fail } },
      ];
      if (stopped.length) {
        traces.push({ type: scatterType(stopped.length), mode: "markers", name: `stopped early (${stopped.length})`,
          x: stopped.map((t) => t.cost), y: stopped.map((t) => t.output), customdata: stopped.map((t) => t.number),
          text: stopped.map((t) => `trial ${t.number} ${t.state.toLowerCase()}<br>${paramText(t.params)}`),
          hovertemplate: "%{text}<br>cost %{x:.4g}<br>last value %{y:.4g}<extra></extra>",
          marker: { symbol: "triangle-down", size: 7, color: "rgba(120,120,120,0.6)" } });
      }
      const c = S.summary && S.summary.curves;
      if (c && c.front) traces.push(...bandTraces(c.cost, c.front, S.summary.front.formula, COLORS.fit));
      const layout = {
        height: 420, margin: { l: 60, r: 10, t: 10, b: 45 }, hovermode: "closest", uirevision: "keep",
        xaxis: { type: "log", title: { text: "cost" } },
        yaxis: { title: { text: "output" }, range: robustRange(front.map((t) => t.output), done.map((t) => t.output)) },
        yaxis2: { overlaying: "y", range: [0, 1], visible: false, fixedrange: true },
        legend: { orientation: "h", y: -0.18 },
      };
      const div = document.getElementById("pareto");
      const drawn = Plotly.react(div, traces, layout, PLOT_CONFIG);
      onClickTrial(div);
      return drawn;
    }

    function drawBest() {
      const rows = finished().slice().sort((a, b) => (a.finished_at || "").localeCompare(b.finished_at || "") || a.number - b.number);
      let cum = 0, best = null;
      const x = [], yBest = [], dotsX = [], dotsY = [], dotsN = [];
      for (const t of rows) {
        cum += t.cost;
        if (t.state === "COMPLETE" && t.output !== null) {
          if (best === null || better(t.output, best)) best = t.output;
          dotsX.push(cum); dotsY.push(t.output); dotsN.push(t.number);
        }
        x.push(cum); yBest.push(best);
      }
      // Above DOTS_MAX trials the dots are a grey blob that costs a WebGL plot of its own to draw
      // (the slowest part of a first view): the line alone then, the outputs being on the front plot.
      const dots = dotsX.length <= DOTS_MAX;
      const traces = [
        { type: "scatter", mode: "markers", name: dots ? "trial output" : `trial outputs: see the Pareto front (${dotsX.length})`,
          x: dots ? dotsX : [], y: dots ? dotsY : [], customdata: dots ? dotsN : [],
          marker: { size: 5, color: COLORS.dots }, hovertemplate: "trial %{customdata}<br>cumulative cost %{x:.4g}<br>output %{y:.4g}<extra></extra>" },
        { type: "scatter", mode: "lines", name: "best so far", x, y: yBest, line: { shape: "hv", color: COLORS.front, width: 2 } },
      ];
      const layout = {
        height: 420, margin: { l: 60, r: 10, t: 10, b: 45 }, hovermode: "closest", uirevision: "keep",
        xaxis: { type: "log", title: { text: "cumulative cost" } },
        yaxis: { title: { text: "output" }, range: robustRange(yBest.filter((v) => v !== null), dots ? dotsY : []) },
        legend: { orientation: "h", y: -0.18 },
      };
      const div = document.getElementById("best");
      const drawn = Plotly.react(div, traces, layout, PLOT_CONFIG);
      onClickTrial(div);
      return drawn;
    }

    function numericParams() {
      return S.params.filter((p) => S.kinds[p.name] !== "choice");
    }

    function drawParams() {
      const box = document.getElementById("param-plots");
      const done = completed();
      const front = paretoFront(done);
      const target = S.targetCost;
      for (const p of numericParams()) {
        const id = `param-${p.name}`;
        let div = document.getElementById(id);
        if (!div) { div = el("div", { id, class: "plot" }); box.appendChild(div); }
        const traces = [
          { type: scatterType(done.length), mode: "markers", name: "trials", x: done.map((t) => t.cost), y: done.map((t) => t.params[p.name]),
            customdata: done.map((t) => t.number), marker: { size: 4, color: COLORS.dots },
            hovertemplate: `trial %{customdata}<br>cost %{x:.4g}<br>${p.name} %{y:.4g}<extra></extra>` },
          { type: "scatter", mode: "markers", name: "Pareto front", x: front.map((t) => t.cost), y: front.map((t) => t.params[p.name]),
            customdata: front.map((t) => t.number), marker: { size: 7, color: COLORS.front },
            hovertemplate: `Pareto: trial %{customdata}<br>cost %{x:.4g}<br>${p.name} %{y:.4g}<extra></extra>` },
        ];
        const sum = S.summary;
        let title = p.name;
        if (sum && sum.curves && sum.curves.laws[p.name]) {
          const law = sum.laws[p.name];
          traces.push(...bandTraces(sum.curves.cost, sum.curves.laws[p.name], "law", COLORS.fit));
          const iv = law.exponent_interval;
          title = `${law.formula}  (e ∈ [${fmt(iv[0], 3)}, ${fmt(iv[1], 3)}])`;
        } else if (sum && sum.skipped && sum.skipped[p.name]) {
          title = `${p.name}: no law (${sum.skipped[p.name].slice(0, 60)})`;
        }
        const layout = {
          height: 300, margin: { l: 55, r: 10, t: 30, b: 40 }, hovermode: "closest", uirevision: "keep", showlegend: false,
          title: { text: title, font: { size: 12 } },
          xaxis: { type: "log", title: { text: "cost" } },
          yaxis: { type: S.kinds[p.name] === "log" ? "log" : "linear", title: { text: p.name } },
          shapes: target ? [{ type: "line", xref: "x", yref: "paper", x0: target, x1: target, y0: 0, y1: 1, line: { dash: "dot", color: "#666", width: 1 } }] : [],
        };
        Plotly.react(div, traces, layout, PLOT_CONFIG);
        onClickTrial(div);
      }
    }

    function drawFailures() {
      const rows = finished().filter((t) => t.informative);
      const params = S.params;
      const nb = 8;
      const z = [], text = [], ylab = [];
      for (const p of params) {
        const kind = S.kinds[p.name];
        const vals = rows.map((t) => t.params[p.name]);
        const zr = new Array(nb).fill(null), tr = new Array(nb).fill("no trials");
        if (kind === "choice") {
          const choices = [...new Set(vals.map(String))].sort().slice(0, nb);
          choices.forEach((ch, i) => {
            const here = rows.filter((t) => String(t.params[p.name]) === ch);
            const nf = here.filter((t) => t.state === "FAILED").length;
            zr[i] = here.length ? nf / here.length : null;
            tr[i] = `${p.name} = ${ch}<br>${nf} of ${here.length} failed`;
          });
        } else {
          const num = vals.filter((v) => typeof v === "number" && (kind !== "log" || v > 0));
          if (num.length) {
            const tf = kind === "log" ? Math.log10 : (v) => v;
            const inv = kind === "log" ? (v) => Math.pow(10, v) : (v) => v;
            const lo = Math.min(...num.map(tf)), hi = Math.max(...num.map(tf));
            const width = hi > lo ? (hi - lo) / nb : 1;
            const tot = new Array(nb).fill(0), bad = new Array(nb).fill(0);
            for (const t of rows) {
              const v = t.params[p.name];
              if (typeof v !== "number" || (kind === "log" && v <= 0)) continue;
              const b = Math.min(nb - 1, Math.floor((tf(v) - lo) / width));
              tot[b] += 1;
              if (t.state === "FAILED") bad[b] += 1;
            }
            for (let b = 0; b < nb; b++) {
              zr[b] = tot[b] ? bad[b] / tot[b] : null;
              tr[b] = `${p.name} in [${fmt(inv(lo + b * width), 3)}, ${fmt(inv(lo + (b + 1) * width), 3)}]<br>${bad[b]} of ${tot[b]} failed`;
            }
          }
        }
        z.push(zr); text.push(tr); ylab.push(p.name);
      }
      const trace = { type: "heatmap", z, text, x: [...Array(nb).keys()].map((i) => `bin ${i + 1}`), y: ylab,
        hovertemplate: "%{text}<extra></extra>", zmin: 0, zmax: 1, hoverongaps: false,
        colorscale: [[0, "#f4f6f8"], [1, "#c0392b"]], colorbar: { title: { text: "failed" }, thickness: 10 } };
      const layout = { height: 60 + 34 * Math.max(1, params.length), margin: { l: 110, r: 10, t: 10, b: 30 },
        xaxis: { title: { text: "" }, side: "bottom" } };
      Plotly.react(document.getElementById("failures"), [trace], layout, PLOT_CONFIG);
    }

    function drawLaws() {
      const box = document.getElementById("laws");
      const sum = S.summary;
      if (!sum) return;
      const conf = `${Math.round(100 * sum.confidence)}%`;
      const rows = Object.values(sum.laws).map((l) => [l.param, el("code", {}, l.formula), fmt(l.exponent), fmtInterval(l.exponent_interval), fmt(l.r_squared, 3), fmt(l.n_points)]);
      const parts = [];
      parts.push(rows.length ? table(["parameter", "law", "exponent e", `${conf} interval`, "R²", "points"], rows, 2)
        : el("p", { class: "note" }, "No parameter has a scaling law yet."));
      const skipped = Object.entries(sum.skipped || {});
      if (skipped.length) parts.push(el("p", { class: "note" }, "Without a law: " + skipped.map(([k, v]) => `${k} (${v})`).join("; ")));
      parts.push(sum.front
        ? el("p", {}, "Pareto front: ", el("code", {}, sum.front.formula), `, α ${conf} ${fmtInterval(sum.front.alpha_interval)}, R² ${fmt(sum.front.r_squared, 3)}`)
        : el("p", { class: "note" }, `Pareto front not fitted: ${sum.front_skipped || ""}`));
      parts.push(el("p", { class: "note" }, `Fitted on ${sum.n_trials} finished trials, ${sum.pareto_set.length} Pareto points, ${sum.n_bootstrap} bootstrap replicates` +
        (sum.n_bootstrap === 0 ? " (intervals follow when the bootstrap finishes)." : ".")));
      box.replaceChildren(...parts);
    }

    function drawExtrapolation(ext) {
      const box = document.getElementById("extrapolation");
      if (!ext) { box.replaceChildren(el("p", { class: "note" }, S.summary ? (S.summary.extrapolation_skipped || "") : "")); return; }
      const rows = Object.entries(ext.suggestion).map(([k, v]) => {
        const p = ext.parameters[k];
        return p ? [k, fmt(p.value), fmtInterval(p.interval), fmt(p.suggested), p.is_clipped ? "clipped to bounds" : "scaling law"]
          : [k, "—", "—", fmt(v), "costliest Pareto point"];
      });
      box.replaceChildren(
        el("p", {}, `At cost ${fmt(ext.target_cost)} (${fmt(ext.cost_ratio, 3)}× the costliest trial):`),
        ...ext.warnings.map((w) => el("div", { class: "warn" }, w)),
        table(["parameter", "predicted", "interval", "suggested", "source"], rows),
        ext.output !== null ? el("p", { id: "predicted-output" }, `Predicted best output ${fmt(ext.output)} ${fmtInterval(ext.output_interval)}`) : null);
    }

    async function extrapolate() {
      const input = document.getElementById("target-cost");
      const cost = parseFloat(input.value);
      const box = document.getElementById("extrapolation");
      if (!(cost > 0) || !isFinite(cost)) { box.replaceChildren(el("div", { class: "error" }, "target cost must be a number > 0")); return; }
      S.targetCost = cost; S.typedCost = true;
      try {
        drawExtrapolation(await api(`/api/studies/${enc(name)}/extrapolate?cost=${cost}`));
      } catch (e) {
        box.replaceChildren(el("div", { class: "error" }, e.message));
      }
      await plotlyReady;
      drawParams();
    }

    const COLUMNS = [
      ["number", "#"], ["state", "state"], ["output", "output"], ["cost", "cost"], ["duration", "duration"],
      ["worker", "worker"], ["error", "error"],
    ];
    function cell(t, key) {
      if (key === "number") return el("a", { href: trialUrl(name, t.number) }, String(t.number));
      if (key === "state") return el("span", { class: `state-${t.state}` }, t.state + (t.fail_kind ? ` (${t.fail_kind})` : ""));
      if (key === "duration") return seconds(t.duration);
      if (key === "error") return t.error || "";
      if (key.startsWith("p:")) return fmt(t.params[key.slice(2)]);
      return fmt(t[key]);
    }
    function sortValue(t, key) {
      const v = key.startsWith("p:") ? t.params[key.slice(2)] : t[key];
      return v === undefined ? null : v;
    }
    function drawTable() {
      const cols = COLUMNS.concat(S.params.map((p) => ["p:" + p.name, p.name]));
      let rows = [...S.trials.values()];
      if (S.stateFilter) rows = rows.filter((t) => t.state === S.stateFilter);
      if (S.filter) {
        const f = S.filter;
        rows = rows.filter((t) => [t.state, t.worker || "", t.error || "", t.fail_kind || "", String(t.number),
          ...Object.entries(t.params).map(([k, v]) => `${k}=${v}`)].join(" ").toLowerCase().includes(f));
      }
      const k = S.sortKey, d = S.sortDir;
      rows.sort((a, b) => {
        const va = sortValue(a, k), vb = sortValue(b, k);
        if (va === vb) return a.number - b.number;
        if (va === null) return 1;
        if (vb === null) return -1;
        return (va < vb ? -1 : 1) * d;
      });
      const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
      S.page = Math.min(S.page, pages - 1);
      const shown = rows.slice(S.page * PAGE_SIZE, (S.page + 1) * PAGE_SIZE);
      const head = el("tr", {}, cols.map(([key, label]) => el("th", {
        class: "sort" + (key === k ? (d > 0 ? " asc" : " desc") : "") + (key === "error" || key === "worker" ? " l" : ""),
        "data-key": key,
        onclick: () => { if (S.sortKey === key) S.sortDir = -S.sortDir; else { S.sortKey = key; S.sortDir = 1; } drawTable(); },
      }, label)));
      const body = shown.map((t) => el("tr", { "data-number": t.number }, cols.map(([key]) =>
        el("td", { class: key === "error" ? "err" : key === "worker" ? "l" : null, title: key === "error" && t.error ? t.error : null }, cell(t, key)))));
      document.getElementById("trials-table").replaceChildren(el("div", { class: "scroll" }, el("table", { id: "trials" }, el("thead", {}, head), el("tbody", {}, body))));
      document.getElementById("table-info").textContent = rows.length
        ? `${S.page * PAGE_SIZE + 1}–${S.page * PAGE_SIZE + shown.length} of ${rows.length} (page ${S.page + 1} of ${pages})` : "no trials match";
      document.getElementById("prev").disabled = S.page === 0;
      document.getElementById("next").disabled = S.page >= pages - 1;
      const sel = document.getElementById("state-filter");
      const states = [...new Set([...S.trials.values()].map((t) => t.state))].sort();
      if (sel.options.length - 1 !== states.length) {
        sel.replaceChildren(el("option", { value: "" }, "all states"), ...states.map((s) => el("option", { value: s }, s)));
        sel.value = S.stateFilter;
      }
    }

    const CURVES_SHOWN = 150;
    function drawCurves() {
      if (!S.curves.size) return;
      document.getElementById("curves-section").classList.remove("hidden");
      const xKey = document.getElementById("curve-x").value;
      const numbers = [...S.curves.keys()].sort((a, b) => a - b);
      const running = numbers.filter((n) => (S.trials.get(n) || {}).state === "RUNNING");
      const shown = [...new Set(numbers.slice(-CURVES_SHOWN).concat(running))].sort((a, b) => a - b);
      const color = { RUNNING: "#b7791f", COMPLETE: "#1f3b73", FAILED: "#999999", PRUNED: "#c0392b" };
      const traces = shown.map((n) => {
        const pts = S.curves.get(n), state = (S.trials.get(n) || {}).state || "RUNNING";
        return { type: "scatter", mode: "lines", name: `trial ${n}`, x: pts.map((p) => p[xKey]), y: pts.map((p) => p.value),
          customdata: pts.map(() => n), showlegend: false,
          line: { width: state === "RUNNING" ? 2.2 : 1, color: color[state] || "#777", dash: state === "PRUNED" ? "dot" : "solid" },
          opacity: state === "RUNNING" ? 1 : 0.55,
          hovertemplate: `trial ${n} (${state})<br>${xKey} %{x:.4g}<br>value %{y:.4g}<extra></extra>` };
      });
      const layout = { height: 380, margin: { l: 60, r: 10, t: 10, b: 45 }, hovermode: "closest", uirevision: "keep",
        xaxis: { type: xKey === "cost" ? "log" : "linear", title: { text: xKey === "cost" ? "cost so far" : "step" } },
        yaxis: { title: { text: "reported value" } } };
      const div = document.getElementById("curves");
      Plotly.react(div, traces, layout, PLOT_CONFIG);
      onClickTrial(div);
      document.getElementById("curves-note").textContent =
        `${shown.length} of ${numbers.length} trials with intermediate values (the latest ${CURVES_SHOWN} and every running one). ` +
        "Orange: running; blue: complete; red dotted: stopped early; grey: failed. Click a curve for its trial.";
    }

    async function loadCurves() {
      if (!S.curvesAvailable) return false;
      const data = await api(`/api/studies/${enc(name)}/curves?since=${S.curveVersion}`);
      S.curvesAvailable = data.available;
      S.curveVersion = data.version;
      const entries = Object.entries(data.curves);
      for (const [n, pts] of entries) S.curves.set(parseInt(n, 10), pts);
      return entries.length > 0;
    }

    function drawCharts() {
      // The charts at the top first; those further down once the browser has painted them.
      const top = Promise.all([drawPareto(), drawBest()]);
      S.lastDraw = Date.now(); S.dirty = false;
      return top.then(() => new Promise((resolve) => requestAnimationFrame(() => setTimeout(() => {
        if (!S.painted) { S.painted = true; performance.mark("carbs:top"); }
        drawParams(); drawFailures(); drawCurves();
        if (!S.drawn) { S.drawn = true; performance.mark("carbs:drawn"); }
        resolve();
      }, 0))));
    }

    async function loadAnalysis() {
      const data = await api(`/api/studies/${enc(name)}/analysis`);
      S.analysisVersion = data.version;
      S.summary = data.summary;
      if (!S.summary) return;
      if (!S.typedCost) {
        S.targetCost = S.summary.target_cost;
        const input = document.getElementById("target-cost");
        if (document.activeElement !== input && S.targetCost) input.value = Number(S.targetCost.toPrecision(4));
        drawExtrapolation(S.summary.extrapolation);
      } else {
        extrapolate();
      }
      drawLaws();
    }

    let first = true;
    poll(async () => {
      const data = await api(`/api/studies/${enc(name)}/trials?since=${S.version}`);
      if (first) {
        performance.mark("carbs:data");
        S.params = data.params;
        for (const p of data.params) S.kinds[p.name] = p.kind;
        S.direction = data.progress.direction === "maximize" ? 1 : -1;
      }
      for (const t of data.trials) S.trials.set(t.number, t);
      S.version = data.version;
      const changed = data.trials.length > 0 || first;
      let analysisChanged = false;
      if (data.analysis.version !== S.analysisVersion) { await loadAnalysis(); analysisChanged = true; }
      if (first) performance.mark("carbs:analysis");
      drawProgress(data.progress);
      if (changed) { S.dirty = true; drawTable(); }
      if (first) performance.mark("carbs:table");
      // Redraw the charts on a change, at most every few seconds for big studies.
      const gap = S.trials.size > 2000 ? 5000 : 1000;
      await plotlyReady;
      if ((S.dirty && Date.now() - S.lastDraw >= gap) || analysisChanged || first) await drawCharts();
      if (await loadCurves() && S.drawn) drawCurves();
      first = false;
      const status = data.analysis.computing ? " · fitting laws…" : data.analysis.error ? ` · analysis failed: ${data.analysis.error}` : "";
      setLive(true, `live · ${S.trials.size} trials · ${new Date().toLocaleTimeString()}${status}`);
      root.dataset.version = String(S.version);
    });
  }

  // ---------------------------------------------------------------- trial page
  function trialPage() {
    const name = root.dataset.study, number = parseInt(root.dataset.trial, 10);
    const main = el("main", {}, el("div", { id: "trial" }, "loading…"));
    root.append(header([[name, studyUrl(name)], [`trial ${number}`, null]]), main);
    let done = false;
    poll(async () => {
      if (done) return;
      let t;
      t = await api(`/api/studies/${enc(name)}/trials/${number}`);
      const parts = [
        el("div", { class: "cards" },
          card("state", el("span", { class: `state-${t.state}` }, t.state + (t.fail_kind ? ` (${t.fail_kind})` : "")), "trial-state"),
          card(t.metric || "output", fmt(t.output), "trial-output"),
          card("cost", fmt(t.cost)),
          t.state === "RUNNING"
            ? card("running for", seconds((Date.now() - new Date(t.started_at).getTime()) / 1000))
            : card("duration", seconds(t.duration)),
          card("worker", t.worker || "—"),
          card("suggested by", t.suggestion_kind || "—")),
        el("section", {}, el("h2", {}, "Parameters"), table(["parameter", "value"], Object.entries(t.params).map(([k, v]) => [k, fmt(v, 6)]))),
        el("section", {}, el("h2", {}, "Timings"), table(["event", "time (local)"], [
          ["started", fmtTime(t.started_at)], ["last heartbeat", fmtTime(t.heartbeat_at)], ["finished", fmtTime(t.finished_at)]])),
      ];
      if (t.fail_reason) parts.push(el("section", {}, el("h2", {}, "Why it failed"), el("div", { class: "error" }, t.fail_reason)));
      parts.push(el("section", {}, el("h2", {}, "Standard error (tail)"), t.stderr_tail ? el("pre", { id: "stderr" }, t.stderr_tail) : el("p", { class: "note" }, "Nothing was captured.")));
      if (t.user_attrs && Object.keys(t.user_attrs).length) parts.push(el("section", {}, el("h2", {}, "Reported values"), el("pre", {}, JSON.stringify(t.user_attrs, null, 2))));
      const curve = t.curve && t.curve.length ? t.curve : null;
      if (curve) parts.push(el("section", {}, el("h2", {}, "Intermediate values"), el("div", { id: "trial-curve", class: "plot" })));
      document.getElementById("trial").replaceChildren(...parts);
      if (curve) {
        await plotlyReady;
        Plotly.react("trial-curve", [{ type: "scatter", mode: "lines+markers", x: curve.map((c) => c.step), y: curve.map((c) => c.value), name: t.metric }],
          { height: 320, margin: { l: 60, r: 10, t: 10, b: 45 }, xaxis: { title: { text: "step" } }, yaxis: { title: { text: t.metric || "value" } } }, PLOT_CONFIG);
      }
      setLive(true, `${t.state === "RUNNING" ? "live" : "finished"} · ${new Date().toLocaleTimeString()}`);
      done = t.state !== "RUNNING";
    });
  }

  if (root.dataset.page === "studies") studiesPage();
  else if (root.dataset.page === "study") studyPage();
  else if (root.dataset.page === "trial") trialPage();
})();
