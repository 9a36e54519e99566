// Renders the leaderboard from the JSON embedded in the page: a sortable table and per-model detail.
// Every name goes in through textContent, so markup in a model name shows as text.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("board-data").textContent);
  const board = data.board;
  const images = data.images || {};

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function fmtCtx(n) {
    if (n === null || n === undefined) return "—";
    if (n % 1048576 === 0) return n / 1048576 + "m";
    if (n % 1024 === 0) return n / 1024 + "k";
    return String(n);
  }
  function pct(x) { return x === null || x === undefined ? "—" : (100 * x).toFixed(1); }

  function fullSet(e, c) {
    const lengths = e.summary.summary_lengths;
    return !lengths || lengths.indexOf(c) >= 0;
  }
  function taskCount(e) {
    const used = Object.values(e.summary.ruler_average_tasks || {});
    return used.length ? Math.max.apply(null, used.map(t => t.length)) : null;
  }
  const ctxs = Array.from(new Set(board.entries.flatMap(e => Object.keys(e.summary.ruler_average).map(Number)))).sort((a, b) => a - b);
  const columns = [
    { key: "model", label: "model", text: true, get: e => e.model },
    { key: "architecture", label: "attention", text: true, get: e => e.attention || (e.architecture === e.model ? "stock" : e.architecture) },
    { key: "tokenizer", label: "tokenizer", text: true, get: e => e.tokenizer },
    { key: "mean", label: "average", get: e => e.summary.mean_score, show: pct },
    { key: "effective", label: "effective length", get: e => e.summary.effective_length, show: fmtCtx },
    { key: "auc", label: "AUC", get: e => e.summary.auc, show: x => (x === null || x === undefined ? "—" : x.toFixed(3)) },
  ].concat(ctxs.map(c => ({
    // a length whose average covers fewer tasks than the model's largest set shows none in the row: beside
    // a 13-task average, a 1-task one would read as a change with length (the detail table has every cell)
    key: "ctx" + c, ctx: c, label: fmtCtx(c), get: e => (fullSet(e, c) ? e.summary.ruler_average[String(c)] : undefined), show: pct,
    good: x => x !== undefined && 100 * x >= board.threshold,
    tasks: e => (e.summary.ruler_average_tasks || {})[String(c)],
    partial: e => !fullSet(e, c) && e.summary.ruler_average[String(c)] !== undefined,
  }))).concat([
    { key: "exponent", label: "time exponent", get: e => (e.bench ? e.bench.exponent : null), show: x => (x === null || x === undefined ? "—" : "n^" + x.toFixed(2)) },
    { key: "date", label: "date", text: true, get: e => e.run.date },
  ]);

  document.getElementById("meta").textContent =
    board.entries.length + " models · schema " + board.schema_version + " · built " + board.created +
    (board.suite_version ? " · suite " + board.suite_version : "") + " · scores in percent";
  document.getElementById("methods").textContent =
    "Effective length: " + board.methods.effective_length + " (threshold " + board.threshold + "). AUC: " + board.methods.auc + ".";

  const thead = document.querySelector("#board thead");
  const tbody = document.querySelector("#board tbody");
  const headRow = el("tr");
  columns.forEach(col => {
    const th = el("th", col.label, col.text ? "text" : "");
    th.dataset.key = col.key;
    th.addEventListener("click", () => sortBy(col, th));
    headRow.appendChild(th);
  });
  thead.appendChild(headRow);

  let rows = board.entries.map((e, i) => ({ entry: e, index: i }));
  function renderRows() {
    tbody.textContent = "";
    rows.forEach(({ entry, index }) => {
      const tr = el("tr");
      tr.dataset.model = entry.model;
      columns.forEach(col => {
        const value = col.get(entry);
        const td = el("td", null, col.text ? "text" : "");
        if (col.key === "model") {
          const a = el("a", value, "model");
          a.href = "#model-" + index;
          a.addEventListener("click", () => { document.getElementById("model-" + index).open = true; });
          td.appendChild(a);
        } else {
          td.textContent = col.show ? col.show(value) : (value === null || value === undefined ? "—" : String(value));
        }
        if (col.good && col.good(value)) td.classList.add("good");
        const tasks = col.tasks && col.tasks(entry);
        if (tasks) td.title = "average of " + tasks.length + " task" + (tasks.length === 1 ? "" : "s") + ": " + tasks.join(", ");
        if (col.partial && col.partial(entry)) {
          td.textContent = "(" + tasks.length + "/" + taskCount(entry) + " tasks)";
          td.classList.add("partial");
          td.title = "only " + tasks.length + " of the " + taskCount(entry) + " tasks scored at the other lengths: " +
            pct(entry.summary.ruler_average[String(col.ctx)]) +
            " over " + tasks.join(", ") + " (not comparable across this row)";
        }
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
  }
  function compare(a, b, col) {
    const x = col.get(a.entry), y = col.get(b.entry);
    const missX = x === null || x === undefined, missY = y === null || y === undefined;
    if (missX || missY) return missX === missY ? 0 : (missX ? 1 : -1);
    if (col.text) return String(x).localeCompare(String(y));
    return x - y;
  }
  function sortBy(col, th) {
    const current = th.getAttribute("aria-sort");
    const dir = current === "descending" ? "ascending" : (current === "ascending" ? "descending" : (col.text ? "ascending" : "descending"));
    thead.querySelectorAll("th").forEach(h => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", dir);
    const sign = dir === "ascending" ? 1 : -1;
    rows.sort((a, b) => {
      const missA = col.get(a.entry) == null, missB = col.get(b.entry) == null;
      if (missA || missB) return compare(a, b, col);  // missing values stay last either way
      return sign * compare(a, b, col) || a.index - b.index;
    });
    renderRows();
  }
  renderRows();

  function figure(img) {
    const fig = el("figure", null, img.wide ? "model-plot" : "");
    const image = el("img");
    image.src = img.src;
    image.alt = img.title;
    fig.appendChild(image);
    fig.appendChild(el("figcaption", img.title));
    return fig;
  }
  const plots = document.getElementById("plots");
  if ((images.general || []).length) {
    plots.appendChild(el("h2", "Plots"));
    images.general.forEach(img => plots.appendChild(figure(img)));
  }

  if (board.bench && Object.keys(board.bench.exponents).length) {
    plots.appendChild(el("h2", "Kernel cost"));
    plots.appendChild(el("p", "Fitted time exponent k (time ~ n^k) from evals bench on " + board.bench.device + " (" + board.bench.dtype + ").", "hint"));
    const kt = el("table");
    kt.id = "kernels";
    const kh = el("tr");
    ["kernel", "exponent", "fit range"].forEach((h, j) => kh.appendChild(el("th", h, j === 0 ? "text" : "")));
    kt.appendChild(kh);
    Object.keys(board.bench.exponents).sort().forEach(k => {
      const fit = board.bench.exponents[k];
      const tr = el("tr");
      tr.appendChild(el("td", k, "text"));
      tr.appendChild(el("td", fit.exponent === null ? "—" : "n^" + fit.exponent.toFixed(2)));
      tr.appendChild(el("td", fit.fit_range ? fit.fit_range.map(fmtCtx).join("–") : "—"));
      kt.appendChild(tr);
    });
    plots.appendChild(kt);
  }

  // one line per run that wrote into the model's results: its command and samples per cell, and how it decoded
  function runFacts(e) {
    const runs = e.run.runs && e.run.runs.length ? e.run.runs : [{ command: e.run.command, samples: e.run.samples, generation: e.run.generation }];
    return runs.flatMap((r, k) => {
      const tag = runs.length > 1 ? " (run " + (k + 1) + " of " + runs.length + ")" : "";
      const g = r.generation || {};
      const how = [g.endpoint ? "endpoint " + g.endpoint : null,
        g.answer_prefix === undefined ? null : (g.answer_prefix ? "answer prefix sent" : "no answer prefix"),
        g.params ? "sampling " + JSON.stringify(g.params) : null].filter(x => x).join("; ");
      return [["command" + tag, r.command], ["samples per cell" + tag, r.samples],
        ["generation" + tag, how || JSON.stringify(r.generation)]];
    });
  }

  // a model trained in the suite: "6000 steps, 98.3M tokens: 6000 × 32 × 512 at lr 0.001, then ..."
  function trainingText(t) {
    if (!t) return null;
    const phase = p => p.steps + " × " + (p.batch ?? "?") + " × " + (p.seq_len ?? "?") +
      (p.lr ? " at lr " + p.lr : "") + (p.pose_span ? " with PoSE" : "");
    return t.steps + " steps, " + (t.tokens_seen / 1e6).toFixed(1) + "M tokens: " + t.phases.map(phase).join(", then ");
  }

  // the architecture's MQAR evidence: "25.6%, best of 2 runs (dense: 98.0%, best of 3 runs): 2 layers, d 64, ..."
  function mqarText(m) {
    if (!m) return null;
    const pct = x => (100 * x).toFixed(1) + "%";
    const runs = n => n > 1 ? ", best of " + n + " runs" : "";
    const s = m.setup;
    return pct(m.accuracy) + runs((m.tried || []).length) +
      (m.dense_accuracy == null ? "" : " (dense: " + pct(m.dense_accuracy) + runs((m.dense_tried || []).length) + ")") +
      ": " + s.n_layers + " layers, d " + s.d_model + ", seq " + s.seq_len + ", " + s.pairs + " pairs, " + s.steps + " steps";
  }

  const details = document.getElementById("details");
  details.appendChild(el("h2", "Models"));
  board.entries.forEach((e, i) => {
    const d = el("details");
    d.id = "model-" + i;
    d.appendChild(el("summary", e.model));
    const dl = el("dl");
    const facts = [
      ["architecture", e.architecture], ["attention", e.attention], ["source", e.source.scheme + ":" + e.source.target],
      ["revision", e.source.revision], ["weight hash", e.source.weight_hash], ["tokenizer", e.tokenizer],
      ["RULER tasks averaged", taskCount(e)], ["training", trainingText(e.training)], ["MQAR", mqarText(e.mqar)],
    ].concat(runFacts(e)).concat([
      ["suite version", e.run.suite_version], ["git hash", e.run.git_hash],
      ["date", e.run.date], ["seeds", e.run.seeds.join(", ")], ["hardware", JSON.stringify(e.run.hardware)],
      ["average method", e.summary.average_method],
    ]);
    facts.forEach(([k, v]) => { dl.appendChild(el("dt", k)); dl.appendChild(el("dd", v === null || v === undefined ? "—" : v)); });
    d.appendChild(dl);
    const table = el("table");
    const ectx = Array.from(new Set(Object.values(e.tasks).flatMap(t => Object.keys(t.scores).map(Number)))).sort((a, b) => a - b);
    const hr = el("tr");
    hr.appendChild(el("th", "task (version)", "text"));
    ectx.forEach(c => hr.appendChild(el("th", fmtCtx(c))));
    table.appendChild(hr);
    Object.keys(e.tasks).sort().forEach(name => {
      const t = e.tasks[name];
      const tr = el("tr");
      tr.appendChild(el("td", name + (t.version ? " (v" + t.version + ")" : ""), "text"));
      ectx.forEach(c => {
        const s = t.scores[String(c)];
        // one sample has no standard error: none is shown rather than "± 0.0"
        tr.appendChild(el("td", s ? pct(s.score) + (s.stderr !== null && s.n > 1 ? " ± " + (100 * s.stderr).toFixed(1) : "") + " (n=" + s.n + ")" : "—"));
      });
      table.appendChild(tr);
    });
    d.appendChild(table);
    (images.models && images.models[String(i)] || []).forEach(img => d.appendChild(figure(img)));
    details.appendChild(d);
  });
})();
