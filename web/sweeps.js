/* sweeps.js — the dashboard's sweep page (#sweep=ID), beside app.js, whose helpers it
 * uses (window.vaed.lib). The left column lists the sweeps under the jobs; a sweep shows
 *   - its trials as a table (GET /v1/sweeps/{id}): the point, state, objective and the
 *     last test epoch's KL, xent, ELBO and active units; a column header sorts, a row
 *     opens the trial's job; the same table as CSV is a link;
 *   - one field's curves for every trial, overlaid (GET /v1/sweeps/{id}/metrics, the
 *     store's downsampled rows);
 *   - the rate–distortion plane: one point per trial, KL (rate) against xent
 *     (distortion), with the Pareto front (no other trial has both lower) joined;
 *   - for a PBT sweep, the family tree: a column per generation boundary, a node per
 *     member, and an edge from the node whose state each member carried on — its own
 *     (grey) or the donor's it took (orange), with the decision on hover.
 * The page refreshes itself every two seconds while a trial is unfinished. */
(function () {
  'use strict';
  var V = window.vaed, L = V.lib;
  var $ = function (id) { return document.getElementById(id); };
  var TERMINAL = { completed: 1, failed: 1, cancelled: 1 };
  var sw = {
    id: null,       /* the sweep shown */
    data: null,     /* its GET /v1/sweeps/{id} reply */
    sortKey: 'objective',
    sortDesc: null, /* null: the objective's own order (best first) */
    front: [],      /* trial numbers on the Pareto front, by increasing KL */
    charts: {},
    list: []
  };
  V.sweep = sw;     /* for the browser test */

  /* The trials no other trial dominates in (kl, xent), both lower being better: sorted
   * by KL (then xent), a trial is on the front when its xent is below every xent
   * before it. Trials without both figures are left out. */
  function pareto(trials) {
    var pts = trials.filter(function (t) { return isFinite(t.kl) && isFinite(t.xent) && t.kl !== null && t.xent !== null; });
    pts.sort(function (a, b) { return a.kl - b.kl || a.xent - b.xent; });
    var best = Infinity, front = [];
    pts.forEach(function (t) { if (t.xent < best) { best = t.xent; front.push(t); } });
    return front;
  }
  sw.pareto = pareto;

  function counts(c) {
    return Object.keys(c || {}).filter(function (k) { return c[k]; })
      .map(function (k) { return c[k] + ' ' + k; }).join(', ');
  }

  function refreshList() {
    return L.api('GET', '/v1/sweeps').then(function (r) {
      sw.list = r.sweeps;
      var tb = $('sweeps').tBodies[0];
      tb.textContent = '';
      r.sweeps.forEach(function (s) {
        var tr = L.el('tr', { 'class': 'job' + (s.id === sw.id ? ' sel' : ''), 'data-id': s.id });
        tr.appendChild(L.el('td', { 'class': 'num' }, s.id));
        tr.appendChild(L.el('td', {}, s.name));
        tr.appendChild(L.el('td', { 'class': 'num' }, s.n_trials));
        tr.appendChild(L.el('td', {}, counts(s.counts)));
        tr.addEventListener('click', function () { show(s.id); });
        tb.appendChild(tr);
      });
    });
  }

  function show(id) {
    if (V.es) { V.es.close(); V.es = null; }
    V.sel = null; V.job = null;
    document.querySelectorAll('#jobs tr.job').forEach(function (tr) { tr.classList.remove('sel'); });
    ['nojob', 'job', 'compare'].forEach(function (e) { $(e).hidden = true; });
    $('sweep').hidden = false;
    if (sw.id !== id) {
      sw.id = id; sw.data = null; sw.sortKey = 'objective'; sw.sortDesc = null;
      Object.keys(sw.charts).forEach(function (k) { sw.charts[k].destroy(); delete sw.charts[k]; });
    }
    if (location.hash !== '#sweep=' + id) history.replaceState(null, '', '#sweep=' + id);
    $('sweep-csv').href = '/v1/sweeps/' + id + '?format=csv';
    document.querySelectorAll('#sweeps tr.job').forEach(function (tr) {
      tr.classList.toggle('sel', +tr.getAttribute('data-id') === id);
    });
    return load().then(drawCurves).catch(L.fail);
  }

  function load() {
    var id = sw.id;
    return L.api('GET', '/v1/sweeps/' + id + '?sort=trial').then(function (d) {
      if (id !== sw.id) return;
      sw.data = d;
      $('sweep-title').textContent = 'Sweep #' + d.id + ' ' + d.name;
      var o = d.objective || {};
      $('sweep-summary').textContent = d.n_trials + ' trials (' + counts(d.counts) + '), ' +
        (d.method || 'grid') + ', concurrency ' + d.concurrency + ', objective ' + o.metric +
        ' (' + o.direction + ')';
      sw.front = pareto(d.trials).map(function (t) { return t.trial; });
      drawTable();
      drawRD();
      drawTree();
    });
  }

  /* ---- the PBT family tree ------------------------------------------------------------ */

  var SVG = 'http://www.w3.org/2000/svg';
  function el(name, attrs, parent) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(e);
    return e;
  }
  /* Columns: epoch 0, each boundary, the last epoch. Between two columns, each member
   * has one edge into its node: from its own node before (kept), or from its donor's
   * (took the donor's state at that boundary). A boundary it has not reached yet has no
   * edge. sw.tree = {columns, edges: [{trial, epoch, from, exploit}]}, for the test. */
  function drawTree() {
    var d = sw.data, p = d.spec && d.spec.pbt, box = $('sweep-tree');
    $('sweep-tree-h').hidden = box.hidden = !p;
    box.textContent = '';
    sw.tree = null;
    if (!p) return;
    /* the base's epochs; a base that left them to the default: the furthest trial's */
    var E = ((d.spec.base || {}).train || {}).epochs ||
      Math.max.apply(null, d.trials.map(function (t) { return t.epoch || 0; })), cols = [0];
    for (var e = p.interval; e < E; e += p.interval) cols.push(e);
    cols.push(E);
    var trials = d.trials.slice().sort(function (a, b) { return a.trial - b.trial; });
    var row = {};
    trials.forEach(function (t, i) { row[t.trial] = i; });
    var W = 90, H = 28, X0 = 60, Y0 = 30;
    var svg = el('svg', { width: X0 + W * (cols.length - 1) + 40, height: Y0 + H * trials.length + 10 }, box);
    var xy = function (c, trial) { return [X0 + W * c, Y0 + H * row[trial]]; };
    cols.forEach(function (ep, c) {
      var tx = el('text', { x: X0 + W * c, y: 14, 'text-anchor': 'middle', class: 'tree-col' }, svg);
      tx.textContent = c === 0 ? 'start' : 'epoch ' + ep;
    });
    var edges = [];
    trials.forEach(function (t) {
      var dec = {};
      (t.pbt || []).forEach(function (x) { dec[x.epoch] = x; });
      for (var c = 1; c < cols.length; c++) {
        var last = c === cols.length - 1, x = dec[cols[c]];
        if (!last && !x) break; /* not there yet */
        if (last && (t.epoch || 0) < E) break;
        var from = x && x.donor ? x.donor.trial : t.trial;
        var a = xy(c - 1, from), b = xy(c, t.trial);
        var line = el('line', { x1: a[0], y1: a[1], x2: b[0], y2: b[1],
                                class: x && x.donor ? 'tree-edge exploit' : 'tree-edge' }, svg);
        el('title', {}, line).textContent = x ? ('trial ' + t.trial + ' at epoch ' + x.epoch + ': ' +
          (x.donor ? 'took trial ' + x.donor.trial + "'s state, schedule " + JSON.stringify(x.schedule)
                   : 'kept its state') + ' (' + (d.objective || {}).metric + ' ' + x.value + ')') : 'trial ' + t.trial;
        edges.push({ trial: t.trial, epoch: cols[c], from: from, exploit: !!(x && x.donor) });
      }
    });
    trials.forEach(function (t) {
      cols.forEach(function (ep, c) {
        var q = xy(c, t.trial);
        el('circle', { cx: q[0], cy: q[1], r: 5, class: 'tree-node' }, svg);
      });
      var lab = el('text', { x: X0 - 12, y: Y0 + H * row[t.trial] + 4, 'text-anchor': 'end' }, svg);
      lab.textContent = 'trial ' + t.trial;
    });
    sw.tree = { columns: cols, edges: edges };
  }

  /* ---- the table --------------------------------------------------------------------- */

  function paths() { return Object.keys((sw.data.trials[0] || {}).point || {}); }
  function value(t, key) { return key.indexOf('point.') === 0 ? t.point[key.slice(6)] : t[key]; }

  function sortedTrials() {
    var d = sw.data, key = sw.sortKey, desc = sw.sortDesc;
    if (desc === null) desc = key === 'objective' ? d.objective.direction === 'max' : false;
    return d.trials.slice().sort(function (a, b) {
      var x = value(a, key), y = value(b, key);
      if (x === null || x === undefined) return (y === null || y === undefined) ? a.trial - b.trial : 1;
      if (y === null || y === undefined) return -1;
      var c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      return (desc ? -c : c) || a.trial - b.trial;
    });
  }

  function drawTable() {
    var cols = ['trial', 'job', 'state'].concat(paths().map(function (p) { return 'point.' + p; }),
                ['objective', 'kl', 'xent', 'elbo', 'active_units', 'bound']);
    var head = $('sweep-table').tHead.rows[0];
    head.textContent = '';
    cols.forEach(function (c) {
      var th = L.el('th', { 'data-key': c, 'class': 'sortable' },
                    c.replace(/^point\./, '') + (c === sw.sortKey ? (sortDescNow() ? ' ▼' : ' ▲') : ''));
      th.addEventListener('click', function () {
        sw.sortDesc = sw.sortKey === c ? !sortDescNow() : false;
        sw.sortKey = c;
        drawTable();
      });
      head.appendChild(th);
    });
    var tb = $('sweep-table').tBodies[0];
    tb.textContent = '';
    var onFront = {};
    sw.front.forEach(function (t) { onFront[t] = 1; });
    sortedTrials().forEach(function (t) {
      var tr = L.el('tr', { 'class': 'job' + (onFront[t.trial] ? ' front' : ''), 'data-trial': t.trial });
      cols.forEach(function (c) {
        var v = value(t, c);
        var text = typeof v === 'number' && !Number.isInteger(v) ? L.num(v, 3) : v === null || v === undefined ? '–' : String(v);
        tr.appendChild(L.el('td', { 'class': (typeof v === 'number' ? 'num' : '') + (c === 'state' ? ' state-' + v : '') }, text));
      });
      tr.addEventListener('click', function () {
        history.replaceState(null, '', '#job=' + t.job);
        L.select(t.job);
      });
      tb.appendChild(tr);
    });
  }
  function sortDescNow() {
    return sw.sortDesc === null ? (sw.sortKey === 'objective' && sw.data.objective.direction === 'max') : sw.sortDesc;
  }

  /* ---- the charts -------------------------------------------------------------------- */

  function drawRD() {
    var trials = sw.data.trials;
    var onFront = {};
    sw.front.forEach(function (t) { onFront[t] = 1; });
    var rows = trials.filter(function (t) { return t.kl !== null && t.xent !== null; })
      .map(function (t) { return [t.kl, t.xent, onFront[t.trial] ? t.xent : null]; })
      .sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });
    if (sw.charts.rd) sw.charts.rd.destroy();
    delete sw.charts.rd;
    if (!rows.length) { $('chart-sweep-rd').textContent = 'no trial has a test epoch yet'; return; }
    $('chart-sweep-rd').textContent = '';
    sw.charts.rd = new Dygraph($('chart-sweep-rd'), rows, {
      labels: ['KL', 'trials', 'Pareto front'], xlabel: 'KL (nats)', ylabel: 'xent (nats)',
      drawPoints: true, pointSize: 3, connectSeparatedPoints: true,
      series: { trials: { strokeWidth: 0, pointSize: 4 }, 'Pareto front': { strokeWidth: 1.5, pointSize: 5 } },
      colors: ['#546e7a', '#e65100'], legend: 'follow', xRangePad: 12, yRangePad: 12
    });
  }

  function drawCurves() {
    if (!sw.data) return Promise.resolve();
    var id = sw.id, field = $('sweep-field').value;
    return L.api('GET', '/v1/sweeps/' + id + '/metrics?field=' + field + '&max_points=400').then(function (r) {
      if (id !== sw.id) return;
      var steps = {}, n = r.trials.length;
      r.trials.forEach(function (t, i) {
        t.step.forEach(function (s, k) {
          if (!steps[s]) { steps[s] = new Array(n + 1).fill(null); steps[s][0] = s; }
          steps[s][i + 1] = t[field][k];
        });
      });
      var rows = Object.keys(steps).map(Number).sort(function (a, b) { return a - b; })
        .map(function (s) { return steps[s]; });
      sw.curves = { field: field, trials: r.trials };
      if (sw.charts.curves) sw.charts.curves.destroy();
      delete sw.charts.curves;
      if (!rows.length) { $('chart-sweep-curves').textContent = 'no rows yet'; return; }
      $('chart-sweep-curves').textContent = '';
      sw.charts.curves = new Dygraph($('chart-sweep-curves'), rows, {
        labels: ['step'].concat(r.trials.map(function (t) { return 'trial ' + t.trial; })),
        xlabel: 'step', ylabel: field, connectSeparatedPoints: true, legend: 'follow',
        logscale: $('logscale').checked && field !== 'elbo'
      });
    });
  }

  /* ---- wiring ------------------------------------------------------------------------ */

  $('sweep-field').addEventListener('change', function () { drawCurves().catch(L.fail); });
  window.addEventListener('hashchange', function () {
    var m = /[#&]sweep=(\d+)/.exec(location.hash);
    if (m && +m[1] !== sw.id) show(+m[1]);
  });
  function poll() {
    var p = [refreshList()];
    if (!$('sweep').hidden && sw.data) {
      var busy = sw.data.trials.some(function (t) { return !TERMINAL[t.state]; });
      if (busy) p.push(load().then(drawCurves));
    }
    Promise.all(p).catch(L.fail).finally(function () { setTimeout(poll, 2000); });
  }
  var m = /[#&]sweep=(\d+)/.exec(location.hash);
  refreshList().then(function () { if (m) return show(+m[1]); }).catch(L.fail)
    .finally(function () { setTimeout(poll, 2000); });
})();
