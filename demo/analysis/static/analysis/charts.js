// Tiny SVG charts, written for this page (no library, nothing fetched at run time).
const SVG = "http://www.w3.org/2000/svg";
const COLORS = { negative: "#d9534f", neutral: "#9aa5b1", positive: "#3c9d5d" };

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(width, height) {
  return el("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img" });
}

// rows: [{label, value, color?, note?}] as horizontal bars
function hbars(rows, opts = {}) {
  const width = 460, rowH = 24, left = opts.left || 130, height = rows.length * rowH + 8;
  const max = Math.max(1e-9, ...rows.map((r) => r.value));
  const s = svg(width, height);
  rows.forEach((r, i) => {
    const y = 4 + i * rowH, w = ((width - left - 70) * r.value) / max;
    s.appendChild(el("text", { x: left - 6, y: y + 15, "text-anchor": "end", class: "lbl" }, r.label));
    s.appendChild(el("rect", { x: left, y: y + 3, width: Math.max(w, 1), height: rowH - 8, rx: 3, fill: r.color || "#4a7fc1" }));
    s.appendChild(el("text", { x: left + w + 5, y: y + 15, class: "val" }, r.note ?? String(r.value)));
  });
  return s;
}

// groups: [{label, parts: {negative, neutral, positive}}] as 100% stacked bars
function stacked(groups) {
  const width = 460, rowH = 40, left = 90, height = groups.length * rowH + 30;
  const s = svg(width, height);
  groups.forEach((g, i) => {
    const total = Object.values(g.parts).reduce((a, b) => a + b, 0) || 1;
    let x = left;
    const y = 6 + i * rowH;
    s.appendChild(el("text", { x: left - 6, y: y + 20, "text-anchor": "end", class: "lbl" }, g.label));
    for (const name of Object.keys(COLORS)) {
      const value = g.parts[name] || 0;
      const w = ((width - left - 10) * value) / total;
      const r = el("rect", { x, y, width: w, height: rowH - 12, fill: COLORS[name] });
      r.appendChild(el("title", {}, `${name}: ${value}`));
      s.appendChild(r);
      if (w > 34) s.appendChild(el("text", { x: x + w / 2, y: y + 19, "text-anchor": "middle", class: "in" }, `${Math.round((100 * value) / total)}%`));
      x += w;
    }
  });
  let x = left;
  for (const name of Object.keys(COLORS)) {
    s.appendChild(el("rect", { x, y: height - 18, width: 12, height: 12, fill: COLORS[name] }));
    s.appendChild(el("text", { x: x + 16, y: height - 8, class: "lbl" }, name));
    x += 100;
  }
  return s;
}

// matrix: {rowLabel: {colLabel: n}} as a heat map
function heatmap(matrix) {
  const labels = Object.keys(COLORS).filter((k) => k in matrix), cell = 58, left = 80, top = 24;
  const s = svg(left + cell * labels.length + 10, top + cell * labels.length + 10);
  const max = Math.max(1, ...labels.flatMap((r) => labels.map((c) => matrix[r][c])));
  labels.forEach((c, j) => s.appendChild(el("text", { x: left + j * cell + cell / 2, y: 16, "text-anchor": "middle", class: "lbl" }, c)));
  labels.forEach((r, i) => {
    s.appendChild(el("text", { x: left - 6, y: top + i * cell + cell / 2 + 4, "text-anchor": "end", class: "lbl" }, r));
    labels.forEach((c, j) => {
      const v = matrix[r][c], a = 0.12 + (0.88 * v) / max;
      const color = r === c ? `rgba(60,157,93,${a})` : `rgba(217,83,79,${a})`;
      s.appendChild(el("rect", { x: left + j * cell, y: top + i * cell, width: cell - 3, height: cell - 3, fill: color, rx: 4 }));
      s.appendChild(el("text", { x: left + j * cell + cell / 2, y: top + i * cell + cell / 2 + 5, "text-anchor": "middle", class: "num" }, v));
    });
  });
  return s;
}

window.charts = { hbars, stacked, heatmap, COLORS };
