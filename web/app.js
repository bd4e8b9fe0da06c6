/* app.js — the vaed dashboard: job list, live curves, schedule control, posterior
 * collapse and image grids, all through the REST API (README "REST API").
 *
 * Live updates: the job's event stream (GET /v1/jobs/{id}/events) is used as a wake-up
 * — any event makes the page fetch the rows after the last one it has
 * (metrics?since=next_since) — so the curves hold every stored row whatever the
 * stream's pace. Without the stream (not served, or reads need a token, which
 * EventSource cannot send) the page polls the same query once a second.
 *
 * Charts are dygraphs (Debian's libjs-dygraphs, served by the daemon); the only drawing
 * here is the vertical marker lines, in dygraphs' underlay callback. */
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var EXAMPLE = {
    name: 'demo',
    dataset: { name: 'fashion-mnist', limit: 5000 },
    model: { encoder: [128], latent: 8, decoder: [128], likelihood: 'bernoulli' },
    schedule: { kind: 'linear', from: 0, to: 1, duration: 3 },
    train: { epochs: 10, batch_size: 64, seed: 0 },
    checkpoint: { every_seconds: 10 }
  };
  var TERMINAL = { completed: 1, failed: 1, cancelled: 1 };

  var st = {
    kinds: null,
    previewSeq: 0,
    token: sessionStorage.getItem('vaed_token') || '',
    readsNeedToken: false,
    jobs: [],
    cmpSel: {},
    sel: null,          /* selected job id */
    job: null,          /* its object */
    rows: null,         /* {step, beta, kl, xent, elbo} arrays */
    nextSince: -1,
    epochs: [],
    history: [],
    ckpts: [],
    imgStep: -1,
    preview: null,      /* [[step, beta], ...] */
    charts: {},
    es: null,
    live: 'polling',
    fetching: false,
    again: false,
    cmp: null           /* ids compared */
  };
  window.vaed = st;     /* for the browser test and for poking at from the console */
  st.lib = { api: api, el: el, status: status, fail: fail, num: num, select: select }; /* web/sweeps.js */

  /* ---- HTTP ------------------------------------------------------------------------ */

  /* A request; resolves to the parsed JSON (or text), rejects with the server's error
   * message. A 401 asks for the token once (sessionStorage keeps it for the tab) and
   * retries; every request carries it (GET /v1/whoami names its holder from it). */
  function api(method, path, body, raw) {
    var sent = st.token;
    var h = {};
    if (body !== undefined) h['Content-Type'] = 'application/json';
    if (st.token) h.Authorization = 'Bearer ' + st.token;
    return fetch(path, { method: method, headers: h,
                         body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) })
      .then(function (r) {
        if (r.status === 401) {
          if (method === 'GET') st.readsNeedToken = true;
          if (st.token === sent) {
            var t = window.prompt('This vaed server needs its access token:');
            if (!t) throw new Error('a token is required');
            st.token = t.trim();
            sessionStorage.setItem('vaed_token', st.token);
          }
          return api(method, path, body, raw);
        }
        if (raw) return r.ok ? r : r.json().then(function (e) { throw new Error(errMsg(e, r)); });
        var ct = r.headers.get('Content-Type') || '';
        var p = ct.indexOf('json') >= 0 ? r.json() : r.text();
        return p.then(function (b) {
          if (!r.ok) throw new Error(errMsg(b, r));
          return b;
        });
      });
  }
  function errMsg(b, r) {
    return b && b.error ? b.error.message : 'HTTP ' + r.status;
  }

  function status(msg, err) {
    var s = $('status');
    s.textContent = msg;
    s.className = 'status' + (err ? ' err' : '');
  }
  function fail(e) { status(e.message || String(e), true); }

  /* ---- formatting ------------------------------------------------------------------ */

  function num(x, d) {
    if (x === null || x === undefined || !isFinite(x)) return '–';
    return Math.abs(x) >= 1e4 ? x.toExponential(2) : (+x).toFixed(d === undefined ? 3 : d);
  }
  function eta(s) {
    if (!(s >= 0)) return '–';
    if (s < 90) return Math.round(s) + ' s';
    if (s < 5400) return Math.round(s / 60) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fraction(j) {
    if (j.progress) return j.progress.fraction;
    return j.state === 'completed' ? 1 : null;
  }

  /* ---- job list -------------------------------------------------------------------- */

  function refreshJobs() {
    return api('GET', '/v1/jobs?limit=100').then(function (r) {
      st.jobs = r.jobs;
      var tb = $('jobs').tBodies[0];
      tb.textContent = '';
      r.jobs.forEach(function (j) {
        var tr = el('tr', { 'class': 'job' + (j.id === st.sel ? ' sel' : ''), 'data-id': j.id });
        var cb = el('input', { type: 'checkbox', 'class': 'cmp' });
        cb.checked = !!st.cmpSel[j.id];
        cb.addEventListener('click', function (ev) { ev.stopPropagation(); st.cmpSel[j.id] = cb.checked; });
        var td = el('td'); td.appendChild(cb); tr.appendChild(td);
        tr.appendChild(el('td', { 'class': 'num' }, j.id));
        tr.appendChild(el('td', {}, j.name));
        tr.appendChild(el('td', { 'class': 'state-' + j.state }, j.state));
        var f = fraction(j), pc = el('td');
        if (f !== null) {
          var bar = el('span', { 'class': 'bar' }), fill = el('span');
          fill.style.width = (100 * f).toFixed(1) + '%';
          bar.appendChild(fill);
          pc.appendChild(bar);
          pc.appendChild(document.createTextNode(' ' + (100 * f).toFixed(0) + '%'));
        } else {
          pc.textContent = 'step ' + (j.step || 0);
        }
        tr.appendChild(pc);
        tr.appendChild(el('td', { 'class': 'num' }, num(j.beta)));
        tr.appendChild(el('td', { 'class': 'num' }, j.samples_per_sec ? Math.round(j.samples_per_sec) : '–'));
        tr.appendChild(el('td', { 'class': 'num' }, j.state === 'running' ? eta(j.eta_s) : '–'));
        tr.addEventListener('click', function () { select(j.id); });
        tb.appendChild(tr);
      });
    });
  }

  /* ---- the selected job ------------------------------------------------------------ */

  function emptyRows() { return { step: [], beta: [], kl: [], xent: [], elbo: [], capacity: [] }; }

  /* Drop the selected job's charts (not the comparison's); redraw() builds them again. */
  function resetCharts() {
    if (st.sync) { st.sync.detach(); st.sync = null; }
    Object.keys(st.charts).forEach(function (k) {
      if (k.indexOf('cmp') !== 0 && k !== 'au') { st.charts[k].destroy(); delete st.charts[k]; }
    });
  }

  function select(id) {
    if (st.es) { st.es.close(); st.es = null; }
    resetCharts();
    if (st.charts.au) { st.charts.au.destroy(); delete st.charts.au; }
    st.sel = id; st.job = null; st.rows = emptyRows(); st.nextSince = -1;
    st.epochs = []; st.history = []; st.ckpts = []; st.imgStep = -1; st.preview = null;
    st.evals = [];
    $('nojob').hidden = true;
    $('job').hidden = false;
    $('sweep').hidden = true;
    $('images').hidden = true;
    $('kl-bars').textContent = '';
    document.querySelectorAll('tr.job').forEach(function (tr) {
      tr.classList.toggle('sel', +tr.getAttribute('data-id') === id);
    });
    refreshJob()
      .then(fetchRows)
      .then(function () {
        return Promise.all([refreshSchedule(), refreshCkpts(), refreshEpochs(), refreshEvals()]);
      })
      .then(function () { startLive(id); updatePreview(); })
      .catch(fail);
  }

  function refreshJob() {
    var id = st.sel;
    return api('GET', '/v1/jobs/' + id).then(function (j) {
      if (id !== st.sel) return;
      st.job = j;
      $('job-title').textContent = '#' + j.id + ' ' + j.name;
      var p = j.progress, l = j.last || {};
      var parts = ['state ' + j.state];
      if (p) parts.push('step ' + p.step + ' / ' + p.total_steps + ' (epoch ' + num(j.epoch, 2) + ')');
      else parts.push('step ' + j.step);
      parts.push('beta ' + num(j.beta, 4), 'KL ' + num(l.kl, 2), 'xent ' + num(l.xent, 2),
                 'ELBO ' + num(l.elbo, 2));
      if (j.samples_per_sec) parts.push(Math.round(j.samples_per_sec) + ' samples/s');
      if (j.state === 'running') parts.push('ETA ' + eta(j.eta_s));
      if (j.reason) parts.push('reason: ' + j.reason);
      $('job-summary').textContent = parts.join(' · ');
    });
  }

  /* The curves drawn, by the names of the daemon's field table (GET /v1/metrics/fields,
   * vae/metric_fields.h); init() checks each one is there. */
  var FIELDS = 'beta,kl,xent,elbo,capacity';

  /* Rows after the last one held; the first call takes the whole run, downsampled. */
  function fetchRows() {
    if (st.fetching) { st.again = true; return Promise.resolve(); }
    st.fetching = true;
    var id = st.sel;
    var q = st.nextSince < 0 ? '?fields=' + FIELDS + '&max_points=4000'
                             : '?fields=' + FIELDS + '&since=' + st.nextSince;
    return api('GET', '/v1/jobs/' + id + '/metrics' + q).then(function (m) {
      if (id !== st.sel) return;
      var r = st.rows;
      for (var i = 0; i < m.step.length; i++) {
        if (r.step.length && m.step[i] <= r.step[r.step.length - 1]) continue;
        r.step.push(m.step[i]); r.beta.push(m.beta[i]); r.kl.push(m.kl[i]);
        r.xent.push(m.xent[i]); r.elbo.push(m.elbo[i]); r.capacity.push(m.capacity[i]);
      }
      st.nextSince = m.next_since;
      if (m.step.length) redrawSoon();
    }).finally(function () {
      st.fetching = false;
      if (st.again) { st.again = false; fetchRows().catch(fail); }
    });
  }

  function refreshSchedule() {
    var id = st.sel;
    return api('GET', '/v1/jobs/' + id + '/schedule').then(function (s) {
      if (id !== st.sel) return;
      var changed = s.history.length !== st.history.length;
      st.history = s.history;
      st.schedNow = s.schedule;
      $('sched-now').textContent = 'In force: ' + readable(s.schedule) +
        '  ·  changes: ' + s.history.map(function (h) {
          return h.source + '@' + h.effective_step + (h.superseded ? ' (superseded)' : '');
        }).join(', ');
      if (changed) { updateMarkers(); redrawSoon(); }
    });
  }

  function refreshCkpts() {
    var id = st.sel;
    return api('GET', '/v1/jobs/' + id + '/checkpoints').then(function (c) {
      if (id !== st.sel) return;
      var changed = c.checkpoints.length !== st.ckpts.length ||
        (c.checkpoints.length && c.checkpoints[c.checkpoints.length - 1].step !== st.ckpts[st.ckpts.length - 1].step);
      st.ckpts = c.checkpoints;
      if (changed) { updateMarkers(); redrawSoon(); refreshImages(); }
    });
  }

  function refreshEpochs() {
    var id = st.sel;
    return api('GET', '/v1/jobs/' + id + '/epochs').then(function (e) {
      if (id !== st.sel) return;
      if (e.epochs.length === st.epochs.length) return;
      st.epochs = e.epochs;
      drawCollapse();
      redrawSoon();
    });
  }

  /* The job's evaluations (GET /v1/jobs/{id}/evaluations): the table, and the bounds
   * drawn on the ELBO chart at their checkpoints' steps. */
  function refreshEvals() {
    var id = st.sel;
    return api('GET', '/v1/jobs/' + id + '/evaluations').then(function (r) {
      if (id !== st.sel) return;
      var sig = JSON.stringify(r.evaluations.map(function (e) { return [e.id, e.state, e.rows_done]; }));
      if (sig === st.evalsSig) return;
      st.evalsSig = sig;
      st.evals = r.evaluations;
      drawEvals();
      redrawSoon();
    });
  }

  function drawEvals() {
    var tb = $('evals').querySelector('tbody');
    tb.textContent = '';
    st.evals.slice().reverse().forEach(function (e) {
      var res = e.result || {};
      var state = e.state;
      if (e.state === 'running' || e.state === 'queued')
        state += e.rows ? ' ' + Math.floor(100 * e.rows_done / e.rows) + '%' : '';
      if (e.state === 'running' && e.eta_s !== null) state += ' · ETA ' + eta(e.eta_s);
      var tr = el('tr', { 'data-id': String(e.id), 'class': 'eval state-' + e.state });
      [String(e.id), e.checkpoint.step + (e.checkpoint.asked === String(e.checkpoint.step) ? '' :
        ' (' + e.checkpoint.asked + ')'), String(e.k), String(e.rows || ''), state,
       e.result ? num(res.bound, 2) + ' ± ' + num(res.bound_se, 2) : '',
       e.result ? num(res.elbo, 2) : '', e.result ? num(res.kl, 2) : '',
       e.result ? num(res.mi, 3) : '', e.result ? String(res.active_units) : '']
        .forEach(function (t, i) {
          var td = el('td', i > 0 && i !== 4 ? { 'class': 'num' } : {}, t);
          if (i === 4 && e.reason) td.title = e.reason;
          tr.appendChild(td);
        });
      tb.appendChild(tr);
    });
  }

  function updateMarkers() {
    var s = st.history.filter(function (h) { return !h.superseded && h.effective_step > 0; })
      .map(function (h) { return h.effective_step; });
    var c = st.ckpts.map(function (k) { return k.step; });
    st.markers = { sched: s, ckpt: c };
    $('markers').textContent = (s.length ? ' schedule changes at ' + s.join(', ') : '') +
      (c.length ? ' · checkpoints at ' + c.join(', ') : '');
    $('markers').setAttribute('data-sched', s.join(','));
  }

  /* ---- live updates ---------------------------------------------------------------- */

  function startLive(id) {
    var wake = function () { fetchRows().catch(fail); };
    if (window.EventSource && !st.readsNeedToken && st.job && !TERMINAL[st.job.state]) {
      var es = new EventSource('/v1/jobs/' + id + '/events');
      st.es = es;
      es.addEventListener('open', function () { st.live = 'live (events)'; wake(); });
      es.addEventListener('step', wake);
      es.addEventListener('epoch', function () { wake(); refreshEpochs().catch(fail); });
      es.addEventListener('schedule', function () { refreshSchedule().catch(fail); });
      es.addEventListener('checkpoint', function () { refreshCkpts().catch(fail); });
      es.addEventListener('state', function () {
        refreshJob().then(function () {
          if (st.job && TERMINAL[st.job.state]) { es.close(); st.es = null; wake(); }
        }).catch(fail);
      });
      es.onerror = function () {
        /* CLOSED: the stream is refused (not served); polling takes over. */
        if (es.readyState === 2 && st.es === es) { st.es = null; st.live = 'polling'; }
      };
    } else {
      st.live = 'polling';
    }
  }

  var tick = 0;
  function poll() {
    tick++;
    var p = [refreshJobs()];
    if (st.sel !== null && st.job) {
      var done = TERMINAL[st.job.state];
      p.push(refreshJob());
      if (!st.es && (!done || tick % 5 === 0)) p.push(fetchRows());
      if (!st.es || tick % 3 === 0) {
        if (!done || tick % 5 === 0) p.push(refreshSchedule(), refreshCkpts(), refreshEpochs());
      }
      /* evaluations in progress every second, otherwise now and then */
      var evBusy = (st.evals || []).some(function (e) { return e.state === 'queued' || e.state === 'running'; });
      if (evBusy || tick % 5 === 0) p.push(refreshEvals());
      if (st.preview) updatePreview();
    }
    if (st.cmp && tick % 3 === 0) p.push(drawCompare());
    $('live').textContent = st.sel !== null ? st.live : '';
    Promise.all(p).catch(fail).finally(function () { setTimeout(poll, 1000); });
  }

  /* ---- charts ---------------------------------------------------------------------- */

  /* TensorBoard's smoothing: an exponential moving average, debiased so the first
   * points are not pulled toward 0. w = 0 returns the input. */
  function ema(xs, w) {
    if (!(w > 0)) return xs;
    var out = new Array(xs.length), last = 0, n = 0;
    for (var i = 0; i < xs.length; i++) {
      var v = xs[i];
      if (v === null || !isFinite(v)) { out[i] = v; continue; }
      last = last * w + (1 - w) * v;
      n++;
      out[i] = last / (1 - Math.pow(w, n));
    }
    return out;
  }

  /* Vertical lines at schedule changes (orange) and checkpoints (gray). */
  function markerUnderlay(ctx, area, g) {
    var m = st.markers || { sched: [], ckpt: [] };
    var draw = function (xs, color, dash) {
      ctx.save();
      ctx.strokeStyle = color;
      ctx.lineWidth = 1.5;
      ctx.setLineDash(dash);
      xs.forEach(function (x) {
        var px = g.toDomXCoord(x);
        if (px < area.x || px > area.x + area.w) return;
        ctx.beginPath(); ctx.moveTo(px, area.y); ctx.lineTo(px, area.y + area.h); ctx.stroke();
      });
      ctx.restore();
    };
    draw(m.ckpt, '#9e9e9e', [4, 3]);
    draw(m.sched, '#e65100', []);
  }

  function chartOpts(extra) {
    var o = { legend: 'always', labelsSeparateLines: false, xlabel: 'step',
              underlayCallback: markerUnderlay, connectSeparatedPoints: true,
              animatedZooms: false, labelsKMB: false };
    Object.keys(extra).forEach(function (k) { o[k] = extra[k]; });
    return o;
  }

  var redrawPending = false;
  function redrawSoon() {
    if (redrawPending) return;
    redrawPending = true;
    setTimeout(function () { redrawPending = false; redraw(); }, 200);
  }

  function redraw() {
    var r = st.rows;
    if (!r || !r.step.length) return;
    var w = +$('smooth').value, log = $('logscale').checked;
    var kl = ema(r.kl, w), xent = ema(r.xent, w), elbo = ema(r.elbo, w);
    /* Under a capacity objective the weight column holds gamma (on |KL - C|), never a
     * beta: the chart says gamma, and C(t) is drawn beside the KL it steers. */
    var cap = !!(st.schedNow && st.schedNow.kind === 'capacity');
    if (st.charts.beta && st.chartsCap !== cap) resetCharts();
    st.chartsCap = cap;
    var betaData = [], lossData = [], elboData = [];
    for (var i = 0; i < r.step.length; i++) {
      betaData.push([r.step[i], r.beta[i], null]);
      lossData.push(cap ? [r.step[i], kl[i], xent[i], r.capacity[i]] : [r.step[i], kl[i], xent[i]]);
      elboData.push([r.step[i], elbo[i], null, null]);
    }
    if (st.preview) {
      st.preview.forEach(function (p) { betaData.push([p[0], null, p[1]]); });
      betaData.sort(function (a, b) { return a[0] - b[0]; });
    }
    st.epochs.forEach(function (e) {
      if (e.split === 'test' && e.elbo !== null) elboData.push([e.step, null, e.elbo, null]);
    });
    (st.evals || []).forEach(function (e) {
      if (e.state === 'completed' && e.split === 'test' && e.result)
        elboData.push([e.checkpoint.step, null, null, e.result.bound]);
    });
    elboData.sort(function (a, b) { return a[0] - b[0]; });
    var c = st.charts;
    if (!c.beta) {
      c.beta = new Dygraph($('chart-beta'), betaData, chartOpts({
        labels: ['step', cap ? 'gamma' : 'beta', 'preview'], ylabel: cap ? 'gamma (on |KL - C|)' : 'beta',
        axes: { y: { logscale: log, axisLabelWidth: 60 } },
        colors: ['#1565c0', '#e65100'], series: { preview: { strokePattern: [6, 3] } } }));
      c.loss = new Dygraph($('chart-loss'), lossData, chartOpts({
        /* on a log scale KL and xent share one axis (dygraphs' second axis does not
         * take a log scale well); on a linear one xent gets its own */
        labels: cap ? ['step', 'KL', 'xent', 'capacity C(t)'] : ['step', 'KL', 'xent'],
        ylabel: log ? 'KL, xent (nats)' : 'KL (nats)',
        y2label: log ? undefined : 'xent (nats)', logscale: log,
        colors: ['#6a1b9a', '#2e7d32', '#c62828'], series: log ? {} : { xent: { axis: 'y2' } } }));
      c.elbo = new Dygraph($('chart-elbo'), elboData, chartOpts({
        labels: ['step', 'ELBO', 'test ELBO', 'test bound (IWAE)'], ylabel: 'ELBO, bound (nats)',
        colors: ['#37474f', '#d81b60', '#ff8f00'],
        series: { 'test ELBO': { drawPoints: true, pointSize: 4, strokeWidth: 0 },
                  'test bound (IWAE)': { drawPoints: true, pointSize: 5, strokeWidth: 0 } } }));
      if (Dygraph.synchronize) st.sync = Dygraph.synchronize([c.beta, c.loss, c.elbo],
        { selection: true, zoom: true, range: false });
    } else {
      c.beta.updateOptions({ file: betaData, axes: { y: { logscale: log } } });
      c.loss.updateOptions({ file: lossData });
      c.elbo.updateOptions({ file: elboData });
    }
  }

  /* ---- posterior collapse ---------------------------------------------------------- */

  function drawCollapse() {
    var test = st.epochs.filter(function (e) { return e.split === 'test' && e.kl_per_dim; });
    var bars = $('kl-bars');
    bars.textContent = '';
    if (!test.length) {
      bars.appendChild(el('span', { 'class': 'muted' }, 'no held-out epochs yet'));
      return;
    }
    var last = test[test.length - 1], d = last.kl_per_dim;
    var max = Math.max.apply(null, d.concat([1e-9]));
    d.forEach(function (v, j) {
      var b = el('div', { title: 'z' + j + ': ' + num(v, 4) + ' nats', 'class': v < 0.01 ? 'dead' : '' });
      b.style.height = (100 * v / max).toFixed(1) + '%';
      bars.appendChild(b);
    });
    var au = test.map(function (e) { return [e.epoch, e.active_units]; });
    var opts = { labels: ['epoch', 'active units'], xlabel: 'epoch', ylabel: 'active units',
                 drawPoints: true, pointSize: 3, stepPlot: false, legend: 'always',
                 valueRange: [0, d.length + 0.5], colors: ['#00897b'] };
    if (st.charts.au) st.charts.au.updateOptions({ file: au, valueRange: opts.valueRange });
    else st.charts.au = new Dygraph($('chart-au'), au, opts);
  }

  /* ---- images ---------------------------------------------------------------------- */

  function imageJob(j) {
    var sp = j && j.spec;
    if (!sp || !sp.dataset || !sp.model) return false;
    return sp.model.likelihood !== 'categorical' && (sp.dataset.name || sp.dataset.format === 'idx');
  }

  function refreshImages() {
    if (!st.ckpts.length || !imageJob(st.job)) return;
    var step = st.ckpts[st.ckpts.length - 1].step, id = st.sel;
    if (step === st.imgStep) return;
    st.imgStep = step;
    ['reconstructions', 'samples'].forEach(function (name) {
      /* fetched (the token goes along); the newest, not ?step= (retention, see below) */
      var at = step;
      api('GET', '/v1/jobs/' + id + '/images/' + name + '.png', undefined, true)
        .then(function (r) { at = +(r.headers.get('X-Vaed-Step') || step); return r.blob(); })
        .then(function (b) {
          if (id !== st.sel) return;
          var img = $(name === 'samples' ? 'img-samples' : 'img-recon');
          if (img.src) URL.revokeObjectURL(img.src);
          img.src = URL.createObjectURL(b);
          $('images').hidden = false;
          $('img-step').textContent = 'checkpoint at step ' + at;
        }).catch(fail);
    });
    refreshLatent(step);
  }

  /* Decoded images drawn into a canvas: rows × cols cells of side × side pixels, cell
   * (r, c) from params[r * cols + c] (bernoulli probabilities, gaussian means; clamped to
   * [0, 1]). */
  function drawGrid(canvas, params, rows, cols, side) {
    var scale = 2, W = cols * (side + 1) + 1, H = rows * (side + 1) + 1;
    canvas.width = W * scale;
    canvas.height = H * scale;
    var ctx = canvas.getContext('2d'), img = ctx.createImageData(W, H);
    for (var i = 0; i < img.data.length; i += 4) { img.data[i] = img.data[i + 1] = img.data[i + 2] = 200; img.data[i + 3] = 255; }
    params.forEach(function (p, k) {
      var r = Math.floor(k / cols), c = k % cols;
      for (var y = 0; y < side; y++)
        for (var x = 0; x < side; x++) {
          var v = Math.max(0, Math.min(1, p[y * side + x])), o = 4 * ((1 + r * (side + 1) + y) * W + 1 + c * (side + 1) + x);
          img.data[o] = img.data[o + 1] = img.data[o + 2] = Math.round(255 * v);
        }
    });
    var tmp = document.createElement('canvas');
    tmp.width = W; tmp.height = H;
    tmp.getContext('2d').putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tmp, 0, 0, W * scale, H * scale);
    canvas.setAttribute('data-cells', String(params.length));
  }

  /* Latent traversals and an interpolation strip of the newest checkpoint's decoder
   * (POST /v1/jobs/{id}/decode and sample), for square images. "final", not the step: a
   * running job's retention may have replaced that checkpoint by the time a request
   * names it (a 404 the browser would log). */
  function refreshLatent(step) {
    if (!vaedAccess.can('read')) return;  /* POSTs: they need a token (web/access.js) */
    var id = st.sel, sp = st.job.spec, L = 0;
    (Array.isArray(sp.model.latent) ? sp.model.latent : [sp.model.latent])
      .forEach(function (g) { L += g; });
    var STEPS = 9, zs = [];
    for (var j = 0; j < L; j++)
      for (var t = 0; t < STEPS; t++) {
        var z = new Array(L).fill(0);
        z[j] = -3 + 6 * t / (STEPS - 1);
        zs.push(z);
      }
    api('POST', '/v1/jobs/' + id + '/decode', { z: zs, checkpoint: 'final' }).then(function (r) {
      if (id !== st.sel) return;
      var side = Math.round(Math.sqrt(r.params[0].length));
      if (side * side !== r.params[0].length) return;
      drawGrid($('traversal'), r.params, L, STEPS, side);
      return api('POST', '/v1/jobs/' + id + '/sample', { n: 2, seed: step % 1000, checkpoint: 'final' })
        .then(function (s) {
          var a = s.z[0], b = s.z[1], line = [];
          for (var t = 0; t < 12; t++)
            line.push(a.map(function (v, k) { return v + (b[k] - v) * t / 11; }));
          return api('POST', '/v1/jobs/' + id + '/decode', { z: line, checkpoint: 'final' });
        }).then(function (d) {
          if (id !== st.sel) return;
          drawGrid($('interp'), d.params, 1, 12, side);
          st.latentStep = step;
        });
    }).catch(fail);
  }

  /* ---- schedule control ------------------------------------------------------------ */

  var FIELD_ORDER = ['value', 'from', 'to', 'duration', 'k', 'midpoint', 'ratio', 'shape', 'period',
                     'cycles', 'points', 'target_kl', 'kp', 'ki', 'min', 'max', 'gamma', 'c_max'];

  /* Every kind's fields and defaults, from the daemon (GET /v1/schedules/kinds): the
   * formulas and defaults live in vae/sched.c only. */
  function kindDefaults(kind) { return (st.kinds && st.kinds[kind]) || {}; }

  /* A schedule for people: every number to 6 significant digits (the resolved "from" of
   * a change is beta_now, 0.44920127795527154, and shows as 0.449201). */
  function readable(o) {
    return JSON.stringify(o, function (k, v) { return typeof v === 'number' ? +v.toPrecision(6) : v; });
  }

  function buildFields(kind) {
    var box = $('sched-fields'), d = kindDefaults(kind);
    box.textContent = '';
    FIELD_ORDER.forEach(function (k) {
      if (!(k in d)) return;
      var lab = el('label', {}, k + ' '), inp;
      if (k === 'shape') {
        inp = el('select', { name: k });
        ['linear', 'cosine', 'sigmoid'].forEach(function (o) { inp.appendChild(el('option', {}, o)); });
      } else {
        var v = d[k];
        if (k === 'from' && kind !== 'constant') v = 'current';
        if (k === 'points') v = JSON.stringify([[0, 'current'], [2, 1]]);
        if (kind === 'linear' && k === 'duration') v = 2;
        if (kind === 'cyclical' && k === 'cycles') v = 2;
        if (kind === 'cyclical' && k === 'duration') v = 4;
        inp = el('input', { name: k, value: String(v) });
      }
      lab.appendChild(inp);
      box.appendChild(lab);
    });
  }

  /* The PUT body the form describes; throws on a field that is not a number. */
  function formSchedule() {
    var f = $('sched-form'), kind = f.kind.value, s = { kind: kind };
    var fv = function (n) { return f.elements[n] ? f.elements[n].value.trim() : ''; };
    Object.keys(kindDefaults(kind)).filter(function (k) {
      return FIELD_ORDER.indexOf(k) >= 0;
    }).forEach(function (k) {
      var v = fv(k);
      if (v === '') return;
      if (k === 'shape') { s.shape = v; return; }
      if (k === 'points') {
        try { s.points = JSON.parse(v); } catch (e) { throw new Error('points: not JSON: ' + e.message); }
        return;
      }
      if (k === 'from' && v === 'current') { s.from = 'current'; return; }
      var x = Number(v);
      if (!isFinite(x)) throw new Error(k + ': not a number');
      /* cyclical: period, or cycles with duration; a 0 means "not this one" */
      if (kind === 'cyclical' && (k === 'period' || k === 'cycles' || k === 'duration') && x === 0) return;
      s[k] = x;
    });
    if (fv('unit') !== 'epochs') s.unit = fv('unit');
    if (fv('granularity') !== 'step') s.granularity = fv('granularity');
    if (fv('origin') === 'now') s.origin = 'now';
    var start = Number(fv('start'));
    if (fv('start') !== '' && start !== 0) s.start = start;
    return s;
  }

  /* The preview is the daemon's own curve for the proposed schedule, resolved at the
   * job's current step and beta as a PUT would be now (POST /v1/schedules/preview). */
  function updatePreview() {
    var j = st.job;
    var out = $('sched-json');
    var s;
    try { s = formSchedule(); } catch (e) { out.textContent = e.message; st.preview = null; return; }
    out.textContent = 'PUT body: ' + JSON.stringify(s);
    if (!j || !j.progress || TERMINAL[j.state] || !vaedAccess.can('read')) { st.preview = null; redrawSoon(); return; }
    var asked = ++st.previewSeq;
    api('POST', '/v1/schedules/preview', { schedule: s, job: j.id }).then(function (r) {
      if (asked !== st.previewSeq) return;  /* a newer form state was asked for meanwhile */
      st.preview = r.step.map(function (x, i) { return [x, r.beta[i]]; });
      redrawSoon();
    }).catch(function (e) {
      if (asked !== st.previewSeq) return;
      out.textContent = 'PUT body: ' + JSON.stringify(s) + ' — ' + e.message;
      st.preview = null;
      redrawSoon();
    });
  }

  function applySchedule(ev) {
    ev.preventDefault();
    var s;
    try { s = formSchedule(); } catch (e) { fail(e); return; }
    var id = st.sel;
    api('PUT', '/v1/jobs/' + id + '/schedule', s).then(function (r) {
      status('schedule applied at step ' + r.effective_step);
      st.lastApply = r;
      st.preview = null;
      return Promise.all([refreshSchedule(), refreshJob()]);
    }).then(function () { redrawSoon(); }).catch(fail);
  }

  /* ---- compare --------------------------------------------------------------------- */

  function drawCompare() {
    var ids = st.cmp;
    return Promise.all(ids.map(function (id) {
      return api('GET', '/v1/jobs/' + id + '/metrics?fields=beta,kl&max_points=1500');
    })).then(function (ms) {
      if (ids !== st.cmp) return;
      var byStep = {};
      ms.forEach(function (m, k) {
        m.step.forEach(function (s, i) {
          var row = byStep[s] || (byStep[s] = { b: new Array(ids.length).fill(null), k: new Array(ids.length).fill(null) });
          row.b[k] = m.beta[i];
          row.k[k] = m.kl[i];
        });
      });
      var steps = Object.keys(byStep).map(Number).sort(function (a, b) { return a - b; });
      if (!steps.length) return;
      var w = +$('smooth').value;
      var beta = steps.map(function (s) { return [s].concat(byStep[s].b); });
      var kl = steps.map(function (s) { return [s].concat(byStep[s].k); });
      for (var k = 0; k < ids.length; k++) {   /* smooth each job's KL along its own rows */
        var col = ema(kl.map(function (r) { return r[k + 1]; }).filter(function (v) { return v !== null; }), w), q = 0;
        kl.forEach(function (r) { if (r[k + 1] !== null) r[k + 1] = col[q++]; });
      }
      var names = ids.map(function (id) { return '#' + id; });
      var c = st.charts;
      var o = { labels: ['step'].concat(names), connectSeparatedPoints: true, legend: 'always', xlabel: 'step' };
      if (c.cmpBeta) c.cmpBeta.destroy();
      if (c.cmpKl) c.cmpKl.destroy();
      c.cmpBeta = new Dygraph($('chart-cmp-beta'), beta, Object.assign({ ylabel: 'beta' }, o));
      c.cmpKl = new Dygraph($('chart-cmp-kl'), kl, Object.assign({ ylabel: 'KL (nats)', logscale: $('logscale').checked }, o));
    });
  }

  /* ---- wiring ---------------------------------------------------------------------- */

  function control(act) {
    var id = st.sel;
    api('POST', '/v1/jobs/' + id + '/' + act).then(function (r) {
      status(act === 'checkpoints' ? 'checkpoint taken at step ' + r.step : act + ': job is ' + r.state);
      return Promise.all([refreshJob(), refreshCkpts(), refreshJobs()]);
    }).catch(fail);
  }

  function init() {
    $('spec').value = JSON.stringify(EXAMPLE, null, 2);
    var whoDone = api('GET', '/v1/whoami').then(vaedAccess.apply).catch(fail);  /* first: it decides what shows */
    $('submit').addEventListener('click', function () {
      var text = $('spec').value;
      api('POST', '/v1/jobs', text).then(function (j) {
        status('submitted job ' + j.id);
        return refreshJobs().then(function () { select(j.id); });
      }).catch(fail);
    });
    document.querySelectorAll('.controls button').forEach(function (b) {
      b.addEventListener('click', function () { control(b.getAttribute('data-act')); });
    });
    $('eval-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var f = $('eval-form'), body = { checkpoint: f.checkpoint.value, k: +f.k.value };
      if (f.rows.value.trim() !== '') body.rows = +f.rows.value;
      api('POST', '/v1/jobs/' + st.sel + '/evaluations', JSON.stringify(body)).then(function (e) {
        st.lastEval = e;
        status('evaluation ' + e.id + ' of step ' + e.checkpoint.step + ' queued');
        return refreshEvals();
      }).catch(fail);
    });
    $('logscale').addEventListener('change', function () {
      resetCharts();   /* the axes change: build the charts again */
      redraw();
      if (st.cmp) drawCompare().catch(fail);
    });
    $('smooth').addEventListener('input', function () { $('smooth-val').textContent = $('smooth').value; redrawSoon(); });
    var f = $('sched-form');
    api('GET', '/v1/schedules/kinds').then(function (r) {
      st.kinds = r.kinds;
      Object.keys(r.kinds).forEach(function (k) { f.kind.appendChild(el('option', {}, k)); });
      f.kind.value = 'linear';
      buildFields('linear');
    }).catch(fail);
    f.kind.addEventListener('change', function () { buildFields(f.kind.value); updatePreview(); });
    f.addEventListener('input', function (ev) { if (ev.target.name !== 'kind') updatePreview(); });
    f.addEventListener('change', function (ev) { if (ev.target.name !== 'kind') updatePreview(); });
    f.addEventListener('submit', applySchedule);
    $('compare-btn').addEventListener('click', function () {
      var ids = Object.keys(st.cmpSel).filter(function (k) { return st.cmpSel[k]; }).map(Number);
      if (!ids.length) { status('tick the jobs to compare in the first column', true); return; }
      st.cmp = ids;
      $('compare').hidden = false;
      $('compare-ids').textContent = ids.map(function (i) { return '#' + i; }).join(' ');
      drawCompare().catch(fail);
    });
    api('GET', '/healthz').then(function (h) { $('health').textContent = 'v' + h.version; }).catch(function () {});
    api('GET', '/v1/metrics/fields').then(function (r) {
      st.fields = r.fields;
      var names = r.fields.map(function (f) { return f.name; });
      FIELDS.split(',').forEach(function (n) {
        if (names.indexOf(n) < 0) status('the daemon has no metric field ' + n, true);
      });
    }).catch(fail);
    var m = /[#&]job=(\d+)/.exec(location.hash);
    whoDone.then(refreshJobs).then(function () {
      if (m) select(+m[1]);
      else if (st.jobs.length && !/[#&]sweep=/.test(location.hash)) select(st.jobs[0].id);
    }).catch(fail).finally(function () { setTimeout(poll, 1000); });
  }

  init();
})();
