// Polls the project's JSON and updates the page without reloading.
(() => {
  const root = document.getElementById("project");
  const url = root.dataset.url;
  let rendered = false;

  const fmt = (s) => (s === null || s === undefined ? "" : `${Number(s).toFixed(2)} s`);

  function renderTool(t) {
    const card = document.getElementById(`tool-${t.key}`);
    const pct = t.state === "SUCCESS" ? 100 : t.percent || 0;
    card.querySelector(".fill").style.width = `${pct}%`;
    card.querySelector(".st").textContent = t.state;
    const parts = t.parts > 1 ? ` · ${t.parts_done}/${t.parts} parts` : "";
    card.querySelector(".pct").textContent = `${pct}%${parts}`;
    card.querySelector(".secs").textContent = t.state === "SUCCESS" ? fmt(t.seconds) : "";
    card.className = `tool ${t.state.toLowerCase()}`;
  }

  function lineRows(table, rows) {
    table.innerHTML = "<tr><th>#</th><th>text</th><th>VADER</th><th>model</th></tr>";
    for (const r of rows) {
      const tr = document.createElement("tr");
      for (const v of [r.line, r.text, r.vader.toFixed(2), r.model.toFixed(2)]) {
        const td = document.createElement("td");
        td.textContent = v;
        tr.appendChild(td);
      }
      table.appendChild(tr);
    }
  }

  function renderResult(res) {
    const put = (id, node) => { const c = document.getElementById(id); c.innerHTML = ""; c.appendChild(node); };
    put("chart-distribution", charts.stacked([
      { label: "VADER", parts: res.distribution.vader },
      { label: "model", parts: res.distribution.model },
    ]));
    put("chart-confusion", charts.heatmap(res.confusion));
    document.getElementById("agreement").textContent = `${Math.round(res.agreement * 100)}%`;
    put("chart-emotions", charts.hbars(Object.entries(res.emotions).sort((a, b) => b[1] - a[1]).map(([k, v]) => ({ label: k, value: v }))));
    put("chart-phrases", charts.hbars(res.phrases.slice(0, 10).map((p) => ({ label: p.phrase, value: 1 / Math.max(p.score, 1e-4), note: p.score.toFixed(3), color: "#8a6fbf" })), { left: 170 }));
    lineRows(document.getElementById("most-positive"), res.most_positive);
    lineRows(document.getElementById("most-negative"), res.most_negative);
    lineRows(document.getElementById("disagreements"), res.disagreements);
    document.getElementById("result").hidden = false;
  }

  function renderTiming(data) {
    const t = data.timing, seq = t.sequential || {};
    const rows = data.tools.filter((x) => x.seconds).map((x) => ({ label: x.label.replace("Sentiment, ", ""), value: x.seconds, note: fmt(x.seconds), color: "#9aa5b1" }));
    if (t.parallel_wall) rows.push({ label: "parallel (wall)", value: t.parallel_wall, note: fmt(t.parallel_wall), color: "#3c9d5d" });
    if (seq.seconds) rows.push({ label: "sequential", value: seq.seconds, note: fmt(seq.seconds), color: "#d98b2b" });
    const chart = document.getElementById("chart-timing");
    chart.innerHTML = "";
    chart.appendChild(charts.hbars(rows, { left: 150 }));
    let text = `Parallel run, upload to combined result: ${fmt(t.parallel_wall)} on ${t.cores} CPU core(s).`;
    if (seq.seconds) {
      text += ` The same four tools one after another: ${fmt(seq.seconds)} — parallel took ${Math.round((100 * t.parallel_wall) / seq.seconds)}% of that.`;
      text += ` The model tool, most of the work, runs as several parts so that every core gets some: CPU-bound work on ${t.cores} core(s) cannot take less than ${Math.round(100 / t.cores)}% of the sequential time.`;
      const proj = t.projection || {};
      const more = ["4", "8"].filter((n) => proj[n] && Number(n) > t.cores);
      if (more.length) {
        text += ` Computed from this run's own task CPU times (free cores, no queue overhead — arithmetic, not a measurement): ${more.map((n) => `${n} cores ${Math.round(100 * proj[n].fraction)}%`).join(", ")}.`;
      }
    } else if (t.sequential_state) {
      text += ` Sequential run: ${t.sequential_state.state} ${t.sequential_state.percent || 0}%…`;
    }
    document.getElementById("timing-text").textContent = text;
    document.getElementById("run-sequential").disabled = Boolean(seq.task_id);
    document.getElementById("timing").hidden = false;
  }

  async function poll() {
    let data;
    try {
      data = await (await fetch(url, { cache: "no-store" })).json();
    } catch (e) {
      setTimeout(poll, 2000);
      return;
    }
    const badge = document.getElementById("status");
    badge.textContent = data.status;
    badge.className = `badge ${data.status}`;
    document.getElementById("attempts").textContent = data.attempts;
    data.tools.forEach(renderTool);
    const failure = document.getElementById("failure");
    failure.hidden = data.status !== "failure";
    failure.textContent = data.status === "failure" ? `Analysis failed: ${data.failure_reason}` : "";
    if (data.result && !rendered) { renderResult(data.result); rendered = true; }
    if (data.status === "success") renderTiming(data);
    const seq = data.timing.sequential || {};
    const busy = data.status === "pending" || data.status === "unassigned" || (seq.task_id && !seq.seconds);
    setTimeout(poll, busy ? 700 : 5000);
  }

  document.getElementById("run-sequential").addEventListener("click", async (e) => {
    e.target.disabled = true;
    const token = document.cookie.match(/csrftoken=([^;]+)/);
    await fetch(root.dataset.sequential, { method: "POST", headers: { "X-CSRFToken": token ? token[1] : "" } });
  });
  poll();
})();
