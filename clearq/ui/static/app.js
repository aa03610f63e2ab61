// clearq UI: keeps the server-rendered page live by polling its JSON.
// Every string from the database reaches the page through textContent or an
// attribute, never as HTML (no innerHTML anywhere in this file).
"use strict";

(function () {
  const POLL_MS = Number(document.body.dataset.pollMs) || 2000;
  const CHART_POLL_MS = POLL_MS * 3;
  const MAX_CONSOLE_PIECES = 5000;
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
  const liveBadge = document.getElementById("live");

  function setLive(ok, why) {
    if (!liveBadge) return;
    liveBadge.textContent = ok ? "live" : "stale";
    liveBadge.className = ok ? "live" : "live stale";
    liveBadge.title = ok ? "figures follow the database" : String(why);
  }

  async function getJson(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(url + ": " + response.status);
    return response.json();
  }

  // Run fn now and then every ms, one call at a time, paused while the tab is hidden.
  function every(ms, fn) {
    let running = false;
    const tick = async function () {
      if (running || document.hidden) return;
      running = true;
      try {
        await fn();
        setLive(true);
      } catch (e) {
        setLive(false, e);
      } finally {
        running = false;
      }
    };
    tick();
    return setInterval(tick, ms);
  }

  // ---- tables ---------------------------------------------------------------------------

  function cell(c, checked) {
    const td = document.createElement("td");
    if (c.cls) td.className = c.cls;
    if (c.check !== undefined) {
      const box = document.createElement("input");
      box.type = "checkbox";
      box.name = "task";
      box.value = c.check;
      box.checked = checked.has(c.check);
      box.setAttribute("aria-label", "select");
      td.appendChild(box);
    } else if (c.href) {
      const a = document.createElement("a");
      a.href = c.href;
      a.textContent = c.text;
      td.appendChild(a);
    } else {
      td.textContent = c.text;
    }
    return td;
  }

  function fillTable(table, rows) {
    const body = table.tBodies[0];
    const checked = new Set(Array.from(body.querySelectorAll("input[type=checkbox]:checked"), (b) => b.value));
    const fresh = document.createElement("tbody");
    for (const row of rows) {
      const tr = document.createElement("tr");
      tr.dataset.id = row.id;
      for (const c of row.cells) tr.appendChild(cell(c, checked));
      fresh.appendChild(tr);
    }
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = document.createElement("td");
      td.colSpan = table.tHead.rows[0].cells.length;
      td.textContent = table.dataset.empty || "nothing here";
      tr.appendChild(td);
      fresh.appendChild(tr);
    }
    table.replaceChild(fresh, body);
    if (table.dataset.sortColumn !== undefined) sortTable(table);
  }

  // ---- sortable tables: click a heading; numbers sort as numbers, "-" (no value) last ----

  function sortKey(row, column) {
    const cell = row.cells[column];
    const text = cell ? cell.textContent.trim() : "";
    const number = Number(text);
    if (text === "" || text === "-") return { missing: true };
    return Number.isFinite(number) ? { number: number } : { text: text };
  }

  function compareKeys(a, b) {
    if (a.missing || b.missing) return (a.missing ? 1 : 0) - (b.missing ? 1 : 0);
    if (a.number !== undefined && b.number !== undefined) return a.number - b.number;
    return String(a.text ?? a.number).localeCompare(String(b.text ?? b.number));
  }

  function sortTable(table) {
    const column = Number(table.dataset.sortColumn);
    const sign = table.dataset.sortDir === "desc" ? -1 : 1;
    const body = table.tBodies[0];
    const rows = Array.from(body.rows).filter((r) => !r.classList.contains("empty"));
    rows.sort(function (a, b) {
      const ka = sortKey(a, column), kb = sortKey(b, column);
      if (ka.missing || kb.missing) return compareKeys(ka, kb);
      return sign * compareKeys(ka, kb);
    });
    for (const r of rows) body.appendChild(r);
    table.querySelectorAll("button.sort").forEach(function (b) {
      const on = Number(b.dataset.column) === column;
      b.dataset.sorted = on ? table.dataset.sortDir : "";
    });
  }

  document.querySelectorAll("table.sortable button.sort").forEach(function (button) {
    button.addEventListener("click", function () {
      const table = button.closest("table");
      const same = table.dataset.sortColumn === button.dataset.column;
      table.dataset.sortDir = same && table.dataset.sortDir === "asc" ? "desc" : "asc";
      table.dataset.sortColumn = button.dataset.column;
      sortTable(table);
    });
  });

  document.querySelectorAll("table[data-live]").forEach(function (table) {
    every(POLL_MS, async function () {
      fillTable(table, await getJson(table.dataset.live));
    });
  });

  // ---- charts (uPlot) ---------------------------------------------------------------------

  function dataOf(panel) {
    return [panel.x].concat(panel.series.map((s) => s.values));
  }

  function pointsOf(panel) {
    return panel.series.reduce((n, s) => n + s.values.filter((v) => v !== null).length, 0);
  }

  function makeChart(box, panel) {
    const wrap = document.createElement("div");
    wrap.className = "chart";
    wrap.dataset.panel = panel.id;
    const title = document.createElement("h3");
    title.textContent = panel.title;
    wrap.appendChild(title);
    box.appendChild(wrap);
    const chart = { wrap: wrap, plot: null, key: keyOf(panel), xRange: panel.x_range };
    if (panel.series.length === 0) {
      const none = document.createElement("p");
      none.className = "hint";
      none.textContent = "nothing reported";
      wrap.appendChild(none);
      return chart;
    }
    const options = {
      width: Math.max(wrap.clientWidth - 12, 320),
      height: 180,
      scales: { x: { time: panel.time, range: (u, min, max) => chart.xRange || [min, max] } },
      series: [{}].concat(
        panel.series.map((s, i) => ({
          label: s.label,
          stroke: COLORS[i % COLORS.length],
          width: 1.5,
          spanGaps: panel.span_gaps,
        }))
      ),
    };
    chart.plot = new uPlot(options, dataOf(panel), wrap);
    return chart;
  }

  function dropChart(chart) {
    if (chart.plot) chart.plot.destroy();
    chart.wrap.remove();
  }

  function keyOf(panel) {
    return JSON.stringify(panel.series.map((s) => s.label));
  }

  function renderPanels(box, charts, panels) {
    const seen = new Set();
    for (const panel of panels) {
      seen.add(panel.id);
      let chart = charts.get(panel.id);
      if (chart && chart.key !== keyOf(panel)) {
        dropChart(chart);
        chart = undefined;
      }
      if (!chart) charts.set(panel.id, (chart = makeChart(box, panel)));
      else if (chart.plot) {
        chart.xRange = panel.x_range;
        chart.plot.setData(dataOf(panel));
      }
      chart.wrap.dataset.points = String(pointsOf(panel));
    }
    for (const [id, chart] of charts) {
      if (!seen.has(id)) {
        dropChart(chart);
        charts.delete(id);
      }
    }
  }

  document.querySelectorAll("[data-charts]").forEach(function (box) {
    const charts = new Map();
    every(CHART_POLL_MS, async function () {
      renderPanels(box, charts, await getJson(box.dataset.charts));
    });
  });

  // ---- a task: its state, its actions, its console ------------------------------------------

  function showActions(status) {
    document.querySelectorAll("[data-when]").forEach(function (el) {
      el.hidden = !el.dataset.when.split(" ").includes(status);
    });
  }

  const state = document.querySelector("[data-state]");
  if (state) {
    const statusBadge = state.querySelector("[data-field=status]");
    showActions(statusBadge.textContent);
    every(POLL_MS, async function () {
      const fields = await getJson(state.dataset.state);
      for (const [name, value] of Object.entries(fields)) {
        const el = state.querySelector('[data-field="' + name + '"]');
        if (el) el.textContent = value;
      }
      statusBadge.className = "status status-" + fields.status;
      showActions(fields.status);
    });
  }

  const consoleBox = document.getElementById("console");
  if (consoleBox) {
    let after = 0;
    const follow = async function () {
      for (;;) {
        const atBottom = consoleBox.scrollTop + consoleBox.clientHeight >= consoleBox.scrollHeight - 4;
        const batch = await getJson(consoleBox.dataset.logs + "?after=" + after);
        for (const line of batch.lines) {
          const piece = document.createElement("span");
          piece.className = "stream-" + line.stream;
          piece.textContent = line.text;
          consoleBox.appendChild(piece);
        }
        while (consoleBox.childNodes.length > MAX_CONSOLE_PIECES) consoleBox.removeChild(consoleBox.firstChild);
        after = batch.after;
        consoleBox.dataset.after = String(after);
        if (atBottom && batch.lines.length) consoleBox.scrollTop = consoleBox.scrollHeight;
        if (!batch.more) return;
      }
    };
    every(POLL_MS, follow);
  }

  // ---- plots (plotly.js) --------------------------------------------------------------------

  function element(tag, cls, text) {
    const el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function showEmpty(box, empty) {
    let note = box.querySelector(":scope > .hint.empty");
    if (empty && !note) {
      note = element("p", "hint empty", box.dataset.empty || "nothing here");
      box.appendChild(note);
    } else if (!empty && note) {
      note.remove();
    }
  }

  function heading(title, series, iteration) {
    const h = element("h3", "", title + " · " + series);
    const it = element("span", "iteration", " (iteration " + iteration + ")");
    h.appendChild(it);
    return h;
  }

  // A task's figure goes to plotly.js as data: titles and labels are drawn as SVG text.
  function drawPlot(entry, figure) {
    const layout = Object.assign({ autosize: true }, figure.layout || {});
    if (!layout.height) layout.height = 380;
    const config = { responsive: true, displaylogo: false };
    return window.Plotly.react(entry.plot, figure.data || [], layout, config);
  }

  const plotBox = document.getElementById("plots");
  if (plotBox) {
    const drawn = new Map();
    every(CHART_POLL_MS, async function () {
      if (!window.Plotly) throw new Error("plotly.js did not load");
      const list = await getJson(plotBox.dataset.plots);
      showEmpty(plotBox, list.length === 0);
      for (const p of list) {
        const key = JSON.stringify([p.title, p.series]);
        let entry = drawn.get(key);
        if (entry && entry.id === p.id) continue;
        const figure = await getJson(plotBox.dataset.plots + "/" + p.id);
        if (!entry) {
          const wrap = element("div", "plot-box");
          wrap.dataset.title = p.title;
          wrap.dataset.series = p.series;
          const plot = element("div", "plot");
          wrap.appendChild(heading(p.title, p.series, p.iteration));
          wrap.appendChild(plot);
          plotBox.appendChild(wrap);
          entry = { wrap: wrap, plot: plot, id: null };
          drawn.set(key, entry);
        } else {
          entry.wrap.replaceChild(heading(p.title, p.series, p.iteration), entry.wrap.firstChild);
        }
        await drawPlot(entry, figure);
        entry.id = p.id;
        entry.wrap.dataset.kind = p.kind;
        entry.wrap.dataset.iteration = String(p.iteration);
        entry.wrap.dataset.drawn = String(p.id);
      }
    });
  }

  // ---- debug samples: images, audio, video, HTML (sandboxed frame), files -----------------

  function sampleView(s) {
    if (!s.src) {
      // Stored elsewhere: a link to open in a new tab, never loaded into this page.
      const box = element("p", "hint", "stored at ");
      if (s.link) {
        const a = element("a", "", s.link);
        a.href = s.link;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        box.appendChild(a);
      } else {
        box.appendChild(element("span", "mono", s.uri));
      }
      return box;
    }
    let view;
    if (s.kind === "image") {
      view = element("img", "sample-image");
      view.alt = "iteration " + s.iteration;
    } else if (s.kind === "audio" || s.kind === "video") {
      view = element(s.kind, "sample-media");
      view.controls = true;
      view.preload = "metadata";
    } else if (s.kind === "html" || s.kind === "text") {
      view = element("iframe", "sample-frame");
      // HTML runs in an opaque origin: it can neither reach this page nor its cookies.
      view.setAttribute("sandbox", s.kind === "html" ? "allow-scripts" : "");
      view.referrerPolicy = "no-referrer";
      view.title = "sample at iteration " + s.iteration;
    } else {
      view = element("a", "", "download (" + (s.size === null ? "?" : s.size) + " bytes)");
      view.href = s.src;
      view.setAttribute("download", "");
      return view;
    }
    view.src = s.src;
    return view;
  }

  function showSample(entry) {
    const index = Number(entry.slider.value);
    const s = entry.samples[index];
    entry.label.textContent = "iteration " + s.iteration + " (" + (index + 1) + " of " + entry.samples.length + ")";
    if (entry.shown === s.id) return;
    entry.shown = s.id;
    entry.wrap.dataset.kind = s.kind;
    entry.wrap.dataset.iteration = String(s.iteration);
    entry.view.replaceChildren(sampleView(s));
  }

  function makeSampleGroup(box, group) {
    const wrap = element("div", "sample-box");
    wrap.dataset.title = group.title;
    wrap.dataset.series = group.series;
    wrap.appendChild(element("h3", "", group.title + " · " + group.series));
    const controls = element("div", "sample-controls");
    const slider = element("input", "sample-slider");
    slider.type = "range";
    slider.min = "0";
    slider.step = "1";
    slider.setAttribute("aria-label", "iteration of " + group.title + " · " + group.series);
    const label = element("span", "hint");
    controls.appendChild(slider);
    controls.appendChild(label);
    const view = element("div", "sample-view");
    wrap.appendChild(controls);
    wrap.appendChild(view);
    box.appendChild(wrap);
    const entry = { wrap: wrap, slider: slider, label: label, view: view, samples: [], shown: null };
    slider.addEventListener("input", function () {
      showSample(entry);
    });
    return entry;
  }

  const sampleBox = document.getElementById("samples");
  if (sampleBox) {
    const groups = new Map();
    every(CHART_POLL_MS, async function () {
      const list = await getJson(sampleBox.dataset.samples);
      showEmpty(sampleBox, list.length === 0);
      for (const group of list) {
        const key = JSON.stringify([group.title, group.series]);
        let entry = groups.get(key);
        if (!entry) groups.set(key, (entry = makeSampleGroup(sampleBox, group)));
        const following = entry.samples.length === 0 || Number(entry.slider.value) === entry.samples.length - 1;
        entry.samples = group.samples;
        entry.slider.max = String(group.samples.length - 1);
        entry.slider.disabled = group.samples.length < 2;
        if (following) entry.slider.value = entry.slider.max;
        showSample(entry);
      }
    });
  }

  // ---- forms --------------------------------------------------------------------------------

  document.querySelectorAll("[data-confirm]").forEach(function (el) {
    const trigger = el.tagName === "FORM" ? "submit" : "click";
    el.addEventListener(trigger, function (event) {
      if (!window.confirm(el.dataset.confirm)) event.preventDefault();
    });
  });

  document.querySelectorAll("a[data-back]").forEach(function (a) {
    a.addEventListener("click", function (event) {
      if (window.history.length > 1) {
        event.preventDefault();
        window.history.back();
      }
    });
  });
})();
