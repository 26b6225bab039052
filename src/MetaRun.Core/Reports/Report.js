// The interactive metarun report: draws everything from the JSON in #report-data (ReportData.cs)
// with uPlot. Runs that differ only by seed form one setting; its curves are the mean over seeds
// with a band (95% CI across seeds, or min–max), smoothed per run before averaging.
(() => {
  'use strict';
  const D = JSON.parse(document.getElementById('report-data').textContent);
  const root = document.getElementById('report');
  const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf',
    '#393b79', '#ad494a', '#637939', '#8c6d31', '#843c39', '#7b4173', '#3182bd', '#e6550d', '#31a354', '#756bb1'];
  const state = { smooth: 0.6, log: false, band: 'ci', hidden: new Set() };
  const charts = [];   // every uPlot instance with the group id of each series, for toggles
  const redraws = [];  // functions that rebuild the curve charts when a control changes

  // ---- small helpers ----
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null) continue;
      if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
    }
    for (const k of kids.flat()) if (k != null) e.append(k.nodeType ? k : document.createTextNode(String(k)));
    return e;
  }
  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    return e;
  }
  function fmt(v, digits) {
    if (v == null || !isFinite(v)) return '–';
    const a = Math.abs(v);
    if (digits != null) return v.toFixed(digits);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(3);
    return a >= 100 ? v.toFixed(1) : v.toFixed(4);
  }
  const mean = xs => xs.reduce((a, b) => a + b, 0) / xs.length;
  function sd(xs) { const m = mean(xs); return Math.sqrt(xs.reduce((a, x) => a + (x - m) * (x - m), 0) / (xs.length - 1)); }
  const tq = n => n < 2 ? NaN : (n - 1 <= D.t975.length ? D.t975[n - 2] : 1.96);
  // Mean over seeds and its 95% interval across seeds (Student t); one seed keeps its own episodes' interval.
  function across(values, ownCi) {
    const idx = values.map((v, i) => i).filter(i => values[i] != null);
    const xs = idx.map(i => values[i]);
    if (xs.length === 0) return null;
    if (xs.length === 1) return { mean: xs[0], ci: ownCi ? ownCi[idx[0]] : null, n: 1, sd: null, xs, across: false };
    const s = sd(xs);
    return { mean: mean(xs), ci: tq(xs.length) * s / Math.sqrt(xs.length), n: xs.length, sd: s, xs, across: true };
  }
  // TensorBoard's smoothing: an exponential moving average, debiased at the start.
  function smooth(ys, w) {
    if (!w) return ys;
    let last = 0, k = 0;
    return ys.map(y => {
      if (y == null || !isFinite(y)) return y;
      last = last * w + (1 - w) * y; k++;
      return last / (1 - Math.pow(w, k));
    });
  }
  function wrapLabel(s, max) { return s.length <= max ? s : s.slice(0, max - 1) + '…'; }

  // ---- settings: every section's groups get a global id, a colour and a short code ----
  const groups = [];
  D.sections.forEach((sec, si) => sec.groups.forEach((g, gi) => {
    g.id = groups.length; g.section = si; g.code = 'S' + (groups.length + 1);
    g.colour = PALETTE[g.id % PALETTE.length];
    g.dash = g.id >= PALETTE.length ? [6, 3] : null;
    groups.push(g);
  }));
  const groupOfRun = [];
  groups.forEach(g => g.runs.forEach(r => { groupOfRun[r] = g; }));

  // ---- page ----
  root.textContent = '';
  const regressionOnly = D.runs.every(r => r.regression);
  root.append(el('h1', {}, 'metarun report'),
    el('p', { class: 'muted' }, `${D.runs.length} run${D.runs.length === 1 ? '' : 's'} in ${groups.length} setting${groups.length === 1 ? '' : 's'} (runs that differ only by seed share a setting), generated ${D.generated}.`));
  const warnings = D.runs.flatMap(r => r.warnings.map(w => `${r.name}: ${w}`));
  if (warnings.length) root.append(el('details', { class: 'warn', open: '' }, el('summary', {}, `${warnings.length} warning(s)`), el('ul', {}, warnings.map(w => el('li', {}, w)))));

  // Controls for every curve chart.
  const controls = el('div', { class: 'controls', id: 'controls' },
    el('label', {}, 'smoothing ', el('input', { id: 'smoothing', type: 'range', min: '0', max: '0.99', step: '0.01', value: String(state.smooth),
      oninput: e => { state.smooth = +e.target.value; document.getElementById('smoothing-value').textContent = state.smooth.toFixed(2); redrawAll(); } }),
      el('span', { id: 'smoothing-value' }, state.smooth.toFixed(2))),
    el('label', {}, el('input', { id: 'log-scale', type: 'checkbox', onchange: e => { state.log = e.target.checked; redrawAll(); } }), ' log y'),
    el('label', {}, 'band ', el('select', { id: 'band', onchange: e => { state.band = e.target.value; redrawAll(); } },
      el('option', { value: 'ci' }, 'mean ± 95% CI across seeds'), el('option', { value: 'minmax' }, 'mean, min–max of seeds'),
      el('option', { value: 'seeds' }, 'every seed'), el('option', { value: 'none' }, 'mean only'))),
    el('span', { class: 'muted' }, 'drag to zoom, double-click to reset; click a setting to hide it'));
  root.append(controls);

  D.sections.forEach((sec, si) => renderSection(sec, si));
  if (D.figures.length) {
    root.append(el('h2', { id: 'figures' }, 'Adaptation'));
    for (const f of D.figures) renderFigure(f);
  }
  renderRuns();
  redrawAll();
  document.body.setAttribute('data-ready', '1');

  // ---- a headline metric's section ----
  function renderSection(sec, si) {
    const sg = sec.groups.map(g => groups.find(x => x.section === si && x === g));
    const title = sec.metric === 'mse' ? 'MSE (lower is better)' : 'accuracy (higher is better)';
    root.append(el('h2', { id: `section-${sec.metric}` }, `Results: ${title}`));
    if (sec.keys.length) root.append(el('p', { class: 'muted' }, 'Settings differ in ', sec.keys.join(', '), '.'));
    root.append(legend(sg));

    const head = sec.columns.find(c => c.headline);
    const summaries = sec.columns.map(c => sg.map((g, i) => across(c.values[i], c.ci95[i])));
    resultsTable(sec, sg, summaries, si);
    const hi = sec.columns.indexOf(head);
    if (summaries[hi].some(s => s)) {
      root.append(el('h3', {}, `${head.title}: mean over seeds with 95% CI`));
      root.append(dotChart(sg, summaries[hi], head.higherIsBetter, `dots-${sec.metric}-test`));
    }
    if (sec.keys.length && summaries[hi].some(s => s)) {
      root.append(el('h3', {}, `Each swept key against ${head.title}`));
      root.append(el('div', { class: 'panels', id: `keys-${sec.metric}` }, sec.keys.map((k, ki) => keyPanel(k, sg.map(g => g.values[ki]), summaries[hi], sg))));
    }
    configDiff(sec, sg);

    root.append(el('h3', {}, 'Learning curves'));
    const grid = el('div', { class: 'charts' });
    root.append(grid);
    const runs = sg.flatMap(g => g.runs.map(r => D.runs[r]));
    const regression = runs.every(r => r.regression);
    const specs = [
      { id: 'train-loss', title: regression ? 'Train MSE' : 'Train loss (cross-entropy)', get: r => [r.train.x, r.train.loss] },
    ];
    if (!regression) specs.push({ id: 'train-accuracy', title: 'Train accuracy', get: r => [r.train.x, r.train.accuracy] });
    if (regression) specs.push({ id: 'validation', title: 'Validation MSE', get: r => [r.val.x, r.val.loss], ci: r => r.val.ci95, smoothable: false });
    else {
      specs.push({ id: 'validation', title: 'Validation accuracy', get: r => [r.val.x, r.val.accuracy], ci: r => r.val.ci95, smoothable: false });
      specs.push({ id: 'validation-loss', title: 'Validation loss (cross-entropy)', get: r => [r.val.x, r.val.loss], smoothable: false });
    }
    if (runs.some(r => r.lr)) specs.push({ id: 'learning-rate', title: 'Outer learning rate', get: r => r.lr ? [r.lr.x, r.lr.y] : [[], []], smoothable: false });
    specs.push({ id: 'seconds', title: 'Seconds per iteration (outer step only)', get: r => [r.seconds.x, r.seconds.y] });
    for (const spec of specs) {
      const box = el('div', { class: 'chart', id: `chart-${sec.metric}-${spec.id}` }, el('div', { class: 'title' }, spec.title));
      grid.append(box);
      redraws.push(() => curveChart(box, spec, sg, `sync-${si}`));
    }

    // Other evaluations, each in a labelled section of its own; then the headline's calibration.
    sec.columns.forEach((c, ci) => {
      if (c.headline || c.id === 'val' || c.kind === 'calibration' || !summaries[ci].some(s => s)) return;
      root.append(el('h3', { class: 'variant', id: `variant-${sec.metric}-${ci}` }, `Evaluation: ${c.id}`));
      root.append(el('p', { class: 'muted' }, `${c.title}, mean over seeds with 95% CI.`));
      root.append(dotChart(sg, summaries[ci], c.higherIsBetter, `dots-${sec.metric}-${ci}`));
    });
    const calibrated = sec.columns.map((c, ci) => ({ c, ci })).filter(x => x.c.kind === 'calibration' && summaries[x.ci].some(s => s));
    const diagrams = runs.map(r => ({ r, i: D.runs.indexOf(r) })).filter(x => x.r.reliability);
    if (calibrated.length || diagrams.length) root.append(el('h3', { class: 'calibration', id: `calibration-${sec.metric}` }, 'Calibration of the headline test evaluation'));
    calibrated.forEach(({ c, ci }) => {
      root.append(el('p', { class: 'muted' }, `${c.title}, mean over seeds with 95% CI.`));
      root.append(dotChart(sg, summaries[ci], c.higherIsBetter, `dots-${sec.metric}-${ci}`));
    });
    if (diagrams.length) {
      root.append(el('p', { class: 'muted' }, 'Reliability diagrams: the test queries in 15 equal-width bins of top-class probability; bars the accuracy in each bin, dots at the bin\'s mean confidence, the diagonal perfect calibration. Hover a bar for its counts.'));
      root.append(el('div', { class: 'panels', id: `reliability-${sec.metric}` }, diagrams.map(({ r, i }) => reliabilityDiagram(r, i))));
    }
    root.append(el('p', { class: 'muted' }, sec.note));
  }

  function legend(sg) {
    return el('div', { class: 'legend' }, sg.map(g => {
      const lab = el('label', { title: g.label, 'data-group': String(g.id) },
        el('input', { type: 'checkbox', checked: '', class: 'toggle', 'data-group': String(g.id), onchange: e => toggle(g.id, e.target.checked) }),
        el('span', { class: 'sw', style: `background:${g.colour}` }), el('span', { class: 'code' }, g.code),
        el('span', {}, wrapLabel(g.label, 60)), el('span', { class: 'muted' }, ` (${g.runs.length} seed${g.runs.length === 1 ? '' : 's'})`));
      return lab;
    }));
  }

  function toggle(id, on) {
    if (on) state.hidden.delete(id); else state.hidden.add(id);
    document.querySelectorAll(`.legend label[data-group="${id}"]`).forEach(l => l.classList.toggle('off', !on));
    document.querySelectorAll(`input.toggle[data-group="${id}"]`).forEach(i => { i.checked = on; });
    for (const c of charts) c.groupOf.forEach((g, i) => { if (g === id) c.u.setSeries(i, { show: on }); });
  }

  // ---- results table: sortable, best row marked ----
  function resultsTable(sec, sg, summaries, si) {
    const head = sec.columns.findIndex(c => c.headline);
    const better = (a, b, hib) => hib ? a > b : a < b;
    let best = -1;
    summaries[head].forEach((s, i) => { if (s && (best < 0 || better(s.mean, summaries[head][best].mean, sec.columns[head].higherIsBetter))) best = i; });
    const headers = [{ t: '', num: false }, ...sec.keys.map(k => ({ t: k, num: false })), { t: 'seeds', num: true }];
    // Calibration figures are one number per evaluation: their spread across seeds shows in their dot charts.
    const withCi = c => c.id !== 'val' && c.kind !== 'calibration';
    sec.columns.forEach(c => { headers.push({ t: c.title, num: true }); if (withCi(c)) headers.push({ t: '±95% CI', num: true }); });
    if (sec.columns[head]) headers.push({ t: 'seed sd', num: true });
    const table = el('table', { class: 'results', id: `results-${sec.metric}` });
    const tr = el('tr', {}, headers.map((h, hi) => el('th', { 'data-col': String(hi), title: h.t }, h.t)));
    table.append(el('thead', {}, tr));
    const body = el('tbody');
    sg.forEach((g, i) => {
      const cells = [el('td', { class: 'code', title: g.label, 'data-v': String(i) }, (i === best ? '★ ' : '') + g.code)];
      sec.keys.forEach((k, ki) => cells.push(el('td', { class: 'k', 'data-v': g.values[ki] }, g.values[ki])));
      cells.push(el('td', { class: 'n', 'data-v': String(g.runs.length) }, String(g.runs.length)));
      sec.columns.forEach((c, ci) => {
        const s = summaries[ci][i];
        cells.push(el('td', { class: 'n', 'data-v': s ? String(s.mean) : '' }, s ? fmt(s.mean) : ''));
        if (withCi(c)) cells.push(el('td', { class: 'n', 'data-v': s && s.ci != null ? String(s.ci) : '', title: s && !s.across ? 'one seed: the 95% CI over its episodes' : '95% CI across seeds (Student t)' },
          s && s.ci != null ? fmt(s.ci) + (s.across ? '' : '*') : ''));
      });
      const s = summaries[head][i];
      cells.push(el('td', { class: 'n', 'data-v': s && s.sd != null ? String(s.sd) : '' }, s && s.sd != null ? fmt(s.sd) : ''));
      body.append(el('tr', { class: i === best ? 'best' : null, 'data-group': String(g.id) }, cells));
    });
    table.append(body);
    tr.querySelectorAll('th').forEach(th => th.addEventListener('click', () => sortBy(table, +th.dataset.col, headers[+th.dataset.col].num, th)));
    root.append(el('div', { class: 'tablewrap' }, table));
    root.append(el('p', { class: 'muted' }, '★ best setting by the headline test score. ±95% CI: across seeds (Student t); * one seed: over its test episodes. Click a column to sort.'));
  }

  function sortBy(table, col, numeric, th) {
    const asc = !th.classList.contains('sorted-asc');
    table.querySelectorAll('th').forEach(h => h.classList.remove('sorted-asc', 'sorted-desc'));
    th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
    const rows = [...table.tBodies[0].rows];
    const key = r => r.cells[col].dataset.v;
    rows.sort((a, b) => {
      const [x, y] = [key(a), key(b)];
      if (x === '' || y === '') return x === y ? 0 : x === '' ? 1 : -1;
      const d = numeric || (!isNaN(+x) && !isNaN(+y)) ? +x - +y : x.localeCompare(y);
      return asc ? d : -d;
    });
    rows.forEach(r => table.tBodies[0].append(r));
  }

  // ---- dot-and-interval chart: one row per setting, never bars from zero ----
  function dotChart(sg, sums, higherIsBetter, id) {
    const rows = sg.map((g, i) => ({ g, s: sums[i] })).filter(r => r.s);
    const lo = Math.min(...rows.map(r => r.s.mean - (r.s.ci || 0)), ...rows.flatMap(r => r.s.xs));
    const hi = Math.max(...rows.map(r => r.s.mean + (r.s.ci || 0)), ...rows.flatMap(r => r.s.xs));
    const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.05 || 1;
    const [x0, x1] = [lo - pad, hi + pad];
    const W = 900, L = 300, R = 30, rowH = 22, H = rows.length * rowH + 40;
    const sx = v => L + (v - x0) / (x1 - x0) * (W - L - R);
    const s = svg('svg', { class: 'svgchart', id, viewBox: `0 0 ${W} ${H}`, width: W, height: H });
    ticks(x0, x1, 6).forEach(t => {
      s.append(svg('line', { x1: sx(t), x2: sx(t), y1: 8, y2: H - 28, stroke: '#eee' }));
      s.append(svg('text', { x: sx(t), y: H - 12, 'text-anchor': 'middle' }, fmt(t)));
    });
    rows.forEach((r, i) => {
      const y = 20 + i * rowH;
      const label = svg('text', { x: L - 8, y: y + 4, 'text-anchor': 'end' }, `${r.g.code}  ${wrapLabel(r.g.label, 40)}`);
      label.append(svg('title', {}, r.g.label));
      s.append(label);
      if (r.s.ci != null) s.append(svg('line', { x1: sx(r.s.mean - r.s.ci), x2: sx(r.s.mean + r.s.ci), y1: y, y2: y, stroke: r.g.colour, 'stroke-width': 2.5 }));
      r.s.xs.forEach(v => s.append(svg('circle', { cx: sx(v), cy: y, r: 2.5, fill: '#fff', stroke: r.g.colour })));
      const dot = svg('circle', { cx: sx(r.s.mean), cy: y, r: 5, fill: r.g.colour });
      dot.append(svg('title', {}, `${r.g.label}: ${fmt(r.s.mean)}${r.s.ci != null ? ' ± ' + fmt(r.s.ci) : ''} (${r.s.n} seed${r.s.n === 1 ? '' : 's'})`));
      s.append(dot);
    });
    if (higherIsBetter != null) s.append(svg('text', { x: W - R, y: 12, 'text-anchor': 'end', fill: '#777' }, higherIsBetter ? 'higher is better →' : '← lower is better'));
    return el('div', { class: 'tablewrap' }, s);
  }

  // ---- reliability diagram of one run's headline evaluation ----
  function reliabilityDiagram(r, ri) {
    const rel = r.reliability, g = groupOfRun[ri];
    const W = 300, H = 300, L = 44, B = 36, T = 34, R = 10, n = rel.bins.length;
    const sx = v => L + v * (W - L - R), sy = v => T + (1 - v) * (H - T - B);
    const s = svg('svg', { class: 'svgchart reliability', id: `reliability-run-${ri}`, viewBox: `0 0 ${W} ${H}`, width: W, height: H, 'data-run': r.name });
    const title = svg('text', { x: W / 2, y: 13, 'text-anchor': 'middle', 'font-weight': 'bold' }, `${g ? g.code + ' ' : ''}seed ${r.seed}: ECE ${fmt(rel.ece)}`);
    title.append(svg('title', {}, r.name));
    s.append(title);
    s.append(svg('text', { x: W / 2, y: 27, 'text-anchor': 'middle', fill: '#777' }, `${rel.total} queries, ${rel.episodes} episodes (${rel.checkpoint})`));
    [0, 0.2, 0.4, 0.6, 0.8, 1].forEach(t => {
      s.append(svg('line', { x1: sx(0), x2: sx(1), y1: sy(t), y2: sy(t), stroke: '#eee' }));
      s.append(svg('text', { x: L - 4, y: sy(t) + 4, 'text-anchor': 'end' }, t.toFixed(1)));
      s.append(svg('text', { x: sx(t), y: H - B + 14, 'text-anchor': 'middle' }, t.toFixed(1)));
    });
    s.append(svg('text', { x: (L + W - R) / 2, y: H - 4, 'text-anchor': 'middle', fill: '#555' }, 'confidence'));
    s.append(svg('text', { x: 10, y: (T + H - B) / 2, 'text-anchor': 'middle', fill: '#555', transform: `rotate(-90 10 ${(T + H - B) / 2})` }, 'accuracy'));
    const colour = g ? g.colour : '#1f77b4';
    rel.bins.forEach((b, k) => {
      if (!b.count) return;
      const bar = svg('rect', { class: 'bin', x: sx(k / n) + 0.5, width: sx(1 / n) - sx(0) - 1, y: sy(b.accuracy), height: Math.max(0.5, sy(0) - sy(b.accuracy)), fill: colour, 'fill-opacity': 0.55 });
      bar.append(svg('title', {}, `confidence ${(k / n).toFixed(3)}–${((k + 1) / n).toFixed(3)}: ${b.count} queries, mean confidence ${fmt(b.confidence)}, accuracy ${fmt(b.accuracy)}`));
      s.append(bar);
      s.append(svg('circle', { cx: sx(b.confidence), cy: sy(b.accuracy), r: 2.5, fill: colour }));
    });
    s.append(svg('line', { x1: sx(0), y1: sy(0), x2: sx(1), y2: sy(1), stroke: '#555', 'stroke-dasharray': '4 3' }));
    s.append(svg('rect', { x: sx(0), y: sy(1), width: sx(1) - sx(0), height: sy(0) - sy(1), fill: 'none', stroke: '#999' }));
    return s;
  }

  function ticks(a, b, n) {
    const span = b - a, step0 = span / n, mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => s >= step0) || step0;
    const out = [];
    for (let t = Math.ceil(a / step) * step; t <= b + 1e-12; t += step) out.push(+t.toPrecision(12));
    return out;
  }

  // ---- a swept key against the headline: numeric keys on a numeric (log when spread) axis ----
  function keyPanel(key, values, sums, sg) {
    const W = 420, H = 260, L = 60, B = 40, T = 24, R = 14;
    const numeric = values.every(v => v !== '' && !isNaN(+v));
    const distinct = [...new Set(values)];
    const nums = distinct.map(Number);
    const logx = numeric && nums.every(v => v > 0) && Math.max(...nums) / Math.min(...nums) >= 20;
    const fx = v => logx ? Math.log10(+v) : +v;
    let xs;
    if (numeric) {
      const f = nums.map(v => logx ? Math.log10(v) : v);
      const [a, b] = [Math.min(...f), Math.max(...f)], p = (b - a) * 0.1 || 1;
      xs = v => L + (fx(v) - (a - p)) / ((b + p) - (a - p)) * (W - L - R);
    } else {
      xs = v => L + (distinct.indexOf(v) + 0.5) / distinct.length * (W - L - R);
    }
    const ok = sums.map((s, i) => ({ s, i })).filter(r => r.s);
    const lo = Math.min(...ok.map(r => r.s.mean - (r.s.ci || 0)), ...ok.flatMap(r => r.s.xs));
    const hi = Math.max(...ok.map(r => r.s.mean + (r.s.ci || 0)), ...ok.flatMap(r => r.s.xs));
    const p = (hi - lo) * 0.1 || Math.abs(hi) * 0.05 || 1;
    const [y0, y1] = [lo - p, hi + p];
    const ys = v => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
    const s = svg('svg', { class: 'svgchart keypanel', viewBox: `0 0 ${W} ${H}`, width: W, height: H, 'data-key': key });
    s.append(svg('text', { x: W / 2, y: 14, 'text-anchor': 'middle', 'font-weight': 'bold' }, key + (logx ? ' (log scale)' : '')));
    ticks(y0, y1, 5).forEach(t => { s.append(svg('line', { x1: L, x2: W - R, y1: ys(t), y2: ys(t), stroke: '#eee' })); s.append(svg('text', { x: L - 4, y: ys(t) + 4, 'text-anchor': 'end' }, fmt(t))); });
    distinct.forEach(v => s.append(svg('text', { x: xs(v), y: H - B + 16, 'text-anchor': 'middle' }, wrapLabel(v, 14))));
    // Settings that share this key's value sit side by side.
    const slot = new Map();
    ok.forEach(({ s: m, i }) => {
      const v = values[i], k = slot.get(v) || 0; slot.set(v, k + 1);
      const x = xs(v) + (k - 0) * 7, g = sg[i];
      if (m.ci != null) s.append(svg('line', { x1: x, x2: x, y1: ys(m.mean - m.ci), y2: ys(m.mean + m.ci), stroke: g.colour, 'stroke-width': 2 }));
      m.xs.forEach(y => s.append(svg('circle', { cx: x, cy: ys(y), r: 2.2, fill: '#fff', stroke: g.colour })));
      const d = svg('circle', { cx: x, cy: ys(m.mean), r: 4.5, fill: g.colour });
      d.append(svg('title', {}, `${g.code} ${g.label}: ${fmt(m.mean)}${m.ci != null ? ' ± ' + fmt(m.ci) : ''}`));
      s.append(d);
    });
    return s;
  }

  // ---- config diff: only the keys that differ between settings ----
  function configDiff(sec, sg) {
    root.append(el('h3', {}, 'Config diff'));
    const common = Object.entries(sec.common);
    if (sec.keys.length === 0) root.append(el('p', { class: 'muted' }, sg.length === 1 ? 'One setting: nothing to diff.' : 'The settings differ only by seed.'));
    else {
      const t = el('table', { class: 'diff', id: `diff-${sec.metric}` },
        el('tr', {}, el('th', {}, 'setting'), sec.keys.map(k => el('th', {}, k))),
        sg.map(g => el('tr', {}, el('td', { class: 'code', title: g.label }, g.code), g.values.map(v => el('td', { class: 'k' }, v)))));
      root.append(el('div', { class: 'tablewrap' }, t));
    }
    root.append(el('details', {}, el('summary', {}, `${common.length} keys are the same in every run`),
      el('pre', {}, common.map(([k, v]) => `${k}: ${v}`).join('\n'))));
  }

  // ---- learning curves (uPlot) ----
  function curveChart(box, spec, sg, syncKey) {
    box.querySelectorAll('.uplot, .tip').forEach(n => n.remove());
    const w = spec.smoothable === false ? 0 : state.smooth;
    const perGroup = sg.map(g => g.runs.map(ri => {
      const r = D.runs[ri];
      const [x, y] = spec.get(r);
      if (!x || !y) return null;
      const ci = spec.ci ? spec.ci(r) : null;
      return { run: r, x, y: smooth(y, w), ci };
    }).filter(s => s && s.x.length));
    const xsAll = [...new Set(perGroup.flat().flatMap(s => s.x))].sort((a, b) => a - b);
    if (xsAll.length === 0) { box.append(el('p', { class: 'muted uplot' }, 'nothing measured')); return; }
    const pos = new Map(xsAll.map((x, i) => [x, i]));
    const data = [xsAll];
    const series = [{ label: 'iteration' }];
    const bands = [];
    const groupOf = [null];
    const okY = v => v != null && isFinite(v) && (!state.log || v > 0) ? v : null;
    sg.forEach((g, gi) => {
      const rs = perGroup[gi];
      if (!rs.length) return;
      const cols = rs.map(s => { const c = new Array(xsAll.length).fill(null); s.x.forEach((x, i) => { c[pos.get(x)] = s.y[i]; }); return c; });
      const ciCols = rs.map(s => { if (!s.ci) return null; const c = new Array(xsAll.length).fill(null); s.x.forEach((x, i) => { c[pos.get(x)] = s.ci[i]; }); return c; });
      const m = [], lo = [], hi = [];
      for (let i = 0; i < xsAll.length; i++) {
        const vs = cols.map(c => c[i]).filter(v => v != null && isFinite(v));
        if (!vs.length) { m.push(null); lo.push(null); hi.push(null); continue; }
        const mu = mean(vs);
        let a = null, b = null;
        if (vs.length > 1 && state.band === 'ci') { const h = tq(vs.length) * sd(vs) / Math.sqrt(vs.length); a = mu - h; b = mu + h; }
        else if (vs.length > 1 && state.band === 'minmax') { a = Math.min(...vs); b = Math.max(...vs); }
        else if (vs.length === 1 && state.band !== 'none' && ciCols[0] && ciCols[0][i] != null) { a = mu - ciCols[0][i]; b = mu + ciCols[0][i]; }
        m.push(okY(mu)); lo.push(okY(a)); hi.push(okY(b));
      }
      const visible = !state.hidden.has(g.id);
      const label = `${g.code} ${g.label}`;
      data.push(m); series.push({ label, stroke: g.colour, width: 2, dash: g.dash || undefined, spanGaps: true, show: visible, points: { show: m.filter(v => v != null).length < 40 } }); groupOf.push(g.id);
      if (state.band === 'seeds' && rs.length > 1) {
        cols.forEach((c, k) => { data.push(c.map(okY)); series.push({ label: `${g.code} seed ${rs[k].run.seed}`, stroke: g.colour + '66', width: 1, spanGaps: true, show: visible, points: { show: false } }); groupOf.push(g.id); });
      } else if (lo.some(v => v != null)) {
        data.push(hi); series.push({ label: `${g.code} upper`, stroke: 'transparent', width: 0, spanGaps: true, show: visible, points: { show: false } }); groupOf.push(g.id);
        data.push(lo); series.push({ label: `${g.code} lower`, stroke: 'transparent', width: 0, spanGaps: true, show: visible, points: { show: false } }); groupOf.push(g.id);
        bands.push({ series: [data.length - 2, data.length - 1], fill: g.colour + '33' });
      }
    });
    const width = Math.max(320, box.clientWidth - 12);
    const tip = el('div', { class: 'tip' });
    const opts = {
      width, height: 300, series, bands,
      legend: { show: false },
      cursor: { sync: { key: syncKey }, drag: { x: true, y: false } },
      scales: { x: { time: false }, y: { distr: state.log ? 3 : 1 } },
      axes: [{ label: 'iteration', size: 40 }, { size: 64, values: (u, vs) => vs.map(v => fmt(v)) }],
      plugins: [tooltip(tip, groupOf)],
    };
    const u = new uPlot(opts, data, box);
    box.append(tip);
    charts.push({ u, groupOf, box });
  }

  // Hover: the iteration and each shown setting's value (and band) under the cursor.
  function tooltip(tip, groupOf) {
    return {
      hooks: {
        setCursor: u => {
          const i = u.cursor.idx;
          if (i == null || u.cursor.left < 0) { tip.style.display = 'none'; return; }
          const lines = [`iteration ${u.data[0][i]}`];
          u.series.forEach((s, k) => {
            if (k === 0 || !s.show || / (upper|lower)$/.test(s.label)) return;
            const v = u.data[k][i];
            if (v == null) return;
            const up = u.series[k + 1] && / upper$/.test(u.series[k + 1].label) ? u.data[k + 1][i] : null;
            const lo = u.series[k + 2] && / lower$/.test(u.series[k + 2].label) ? u.data[k + 2][i] : null;
            lines.push(`<span style="color:${s.stroke()}">●</span> ${escapeHtml(wrapLabel(s.label, 48))}: <b>${fmt(v)}</b>${up != null && lo != null ? ` [${fmt(lo)}, ${fmt(up)}]` : ''}`);
          });
          tip.innerHTML = lines.slice(0, 25).join('<br>') + (lines.length > 25 ? `<br>… ${lines.length - 25} more` : '');
          tip.style.display = 'block';
          const left = u.cursor.left + u.over.offsetLeft + 16;
          tip.style.left = Math.min(left, u.over.offsetLeft + u.over.clientWidth - tip.offsetWidth) + 'px';
          tip.style.top = (u.cursor.top + u.over.offsetTop + 24) + 'px';
          tip.setAttribute('data-idx', String(i));
        },
      },
    };
  }
  function escapeHtml(s) { return s.replace(/[&<>"]/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c])); }

  function redrawAll() {
    for (const c of charts.splice(0)) c.u.destroy();
    for (const r of redraws) r();
  }

  // ---- figures: panels of series, each series with its own x (lines, points, bands) ----
  function renderFigure(f) {
    root.append(el('h3', { id: `figure-${f.id}` }, f.title));
    if (f.caption) root.append(el('p', { class: 'muted' }, f.caption));
    const grid = el('div', { class: 'charts', id: `figure-${f.id}-panels` });
    root.append(grid);
    for (const p of f.panels) {
      const box = el('div', { class: 'chart figure' }, el('div', { class: 'title' }, p.title));
      grid.append(box);
      redraws.push(() => figurePanel(box, f, p));
    }
  }

  function figurePanel(box, f, p) {
    box.querySelectorAll('.uplot, .tip').forEach(n => n.remove());
    const xsAll = [...new Set(p.series.flatMap(s => s.x))].sort((a, b) => a - b);
    const pos = new Map(xsAll.map((x, i) => [x, i]));
    const data = [xsAll], series = [{ label: f.xLabel }], bands = [], groupOf = [null];
    const place = (x, y) => { const c = new Array(xsAll.length).fill(null); x.forEach((v, i) => { c[pos.get(v)] = y[i]; }); return c; };
    for (const s of p.series) {
      data.push(place(s.x, s.y));
      const pts = !!s.points;
      series.push({ label: s.label, stroke: s.colour, width: pts ? 0 : (s.width || 2), dash: s.dash || undefined, spanGaps: true,
        paths: pts ? () => null : undefined, points: pts ? { show: true, size: 8, fill: s.colour, stroke: s.colour } : { show: false } });
      groupOf.push(null);
      if (s.lo && s.hi) {
        data.push(place(s.x, s.hi)); series.push({ label: `${s.label} upper`, stroke: 'transparent', width: 0, spanGaps: true, points: { show: false } }); groupOf.push(null);
        data.push(place(s.x, s.lo)); series.push({ label: `${s.label} lower`, stroke: 'transparent', width: 0, spanGaps: true, points: { show: false } }); groupOf.push(null);
        bands.push({ series: [data.length - 2, data.length - 1], fill: s.colour + '33' });
      }
    }
    const tip = el('div', { class: 'tip' });
    const u = new uPlot({
      width: Math.max(320, box.clientWidth - 12), height: 280, series, bands,
      legend: { show: true, live: false },
      scales: { x: { time: false }, y: { distr: f.logY ? 3 : 1 } },
      axes: [{ label: f.xLabel, size: 40 }, { label: f.yLabel, size: 64, values: (u, vs) => vs.map(v => fmt(v)) }],
      plugins: [tooltip(tip, groupOf)],
    }, data, box);
    // A band's edges are series of their own for uPlot; the legend names only the curves.
    u.root.querySelectorAll('.u-legend .u-series').forEach((row, i) => { if (/ (upper|lower)$/.test(series[i].label)) row.style.display = 'none'; });
    box.append(tip);
    charts.push({ u, groupOf, box });
  }

  // ---- every run: where it is, its evaluations, its config ----
  function renderRuns() {
    root.append(el('h2', { id: 'runs' }, 'Runs'));
    D.runs.forEach((r, i) => {
      const g = groupOfRun[i];
      const evals = r.evaluations.length ? el('table', {}, el('tr', {}, ['split', 'checkpoint', 'iteration', 'episodes', 'shape', 'steps', 'attack', r.evaluations[0].metric, '±95% CI'].map(h => el('th', {}, h))),
        r.evaluations.map(e => el('tr', {}, [e.split, e.checkpoint, e.iteration, e.episodes, e.shape, e.steps, e.attack || ''].map(v => el('td', {}, String(v))),
          el('td', { class: 'n' }, fmt(e.value)), el('td', { class: 'n' }, fmt(e.ci95))))) : el('p', { class: 'muted' }, 'not evaluated yet');
      root.append(el('details', { class: 'run' }, el('summary', {}, el('span', { class: 'code' }, g ? g.code : ''), ` ${r.name} (seed ${r.seed}, ${r.algorithm})`),
        el('p', { class: 'muted' }, r.dir), evals, el('pre', {}, r.config)));
    });
  }

  // Charts follow the page's width.
  let resizeTimer = null;
  window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => { for (const c of charts) c.u.setSize({ width: Math.max(320, c.box.clientWidth - 12), height: c.u.height }); }, 150); });
})();
