/* sched.js — beta schedules in the browser, for the schedule form's preview.
 *
 * A line-for-line mirror of vae/sched.c (sched_progress, eval_at, sched_resolve; the
 * formulas are in the README, "Schedules"): the preview must draw the beta the
 * trainer will use, so any change there is made here too. The dashboard test checks
 * the two agree by comparing this module's curve with the betas the daemon reports
 * after a change. The controller depends on the KL the run will see, so its preview
 * is its lower bound `min` (where it starts); capacity reports gamma. */
(function (root) {
  'use strict';

  function sigmoid(x) {
    if (x >= 0) return 1 / (1 + Math.exp(-x));
    var e = Math.exp(x);
    return e / (1 + e);
  }
  function clamp(x, lo, hi) { return x < lo ? lo : x > hi ? hi : x; }
  function floorDiv(a, b) { return Math.floor(a / b); }

  function shapeEval(shape, u) {
    if (shape === 'cosine') return 0.5 * (1 - Math.cos(Math.PI * u));
    if (shape === 'sigmoid') {
      var lo = sigmoid(-6), hi = sigmoid(6);
      return (sigmoid(12 * (u - 0.5)) - lo) / (hi - lo);
    }
    return u;
  }

  /* Every field of a kind with its default (vae/sched.c kind_defaults). */
  var DEFAULTS = {
    constant: { value: 1 },
    linear: { from: 0, to: 1, duration: 10 },
    logistic: { from: 0, to: 1, k: 1, midpoint: 5 },
    cyclical: { from: 0, to: 1, ratio: 0.5, shape: 'linear', period: 0, cycles: 0, duration: 0 },
    piecewise: { points: [[0, 0], [10, 1]] },
    controller: { target_kl: 20, kp: 0.01, ki: 0.0001, min: 0, max: 1 },
    capacity: { gamma: 1000, c_max: 25, duration: 10 }
  };

  /* Fill a schedule object's missing fields with their defaults (a copy). */
  function normalize(s) {
    var out = { kind: s.kind || 'constant', unit: s.unit || 'epochs',
                granularity: s.granularity || 'step', start: s.start || 0 };
    var d = DEFAULTS[out.kind] || {};
    Object.keys(d).forEach(function (k) { out[k] = s[k] !== undefined ? s[k] : d[k]; });
    if (s.origin) out.origin = s.origin;
    return out;
  }

  function progress(s, step, spe) {
    spe = spe > 0 ? spe : 1;
    if (s.granularity === 'epoch') {
      var epoch = floorDiv(step, spe);
      return s.unit === 'steps' ? epoch * spe : epoch;
    }
    return s.unit === 'steps' ? step : step / spe;
  }

  function evalAt(s, t) {
    switch (s.kind) {
      case 'constant': return s.value;
      case 'linear': return s.from + (s.to - s.from) * clamp(t / s.duration, 0, 1);
      case 'logistic':
        return Math.max(0, s.from + (s.to - s.from) * sigmoid(s.k * ((t < 0 ? 0 : t) - s.midpoint)));
      case 'cyclical': {
        if (t < 0) return s.from;
        if (!(s.period > 0) && t >= s.duration) return s.to;
        var p = s.period > 0 ? s.period : s.duration / s.cycles;
        var tau = (t % p) / p;
        if (tau >= s.ratio) return s.to;
        return s.from + (s.to - s.from) * shapeEval(s.shape, tau / s.ratio);
      }
      case 'piecewise': {
        var pts = s.points, n = pts.length;
        if (n <= 0) return 0;
        if (t <= pts[0][0]) return pts[0][1];
        for (var i = 1; i < n; i++) {
          var t0 = pts[i - 1][0], t1 = pts[i][0];
          if (t <= t1) return pts[i - 1][1] + (pts[i][1] - pts[i - 1][1]) * (t - t0) / (t1 - t0);
        }
        return pts[n - 1][1];
      }
      case 'capacity': return s.gamma;
      default: return s.min; /* controller: its starting point */
    }
  }

  /* beta at step (0-based) with spe steps per epoch; s absolute (resolved). */
  function beta(s, step, spe) {
    var b = evalAt(s, progress(s, step, spe) - s.start);
    return isFinite(b) ? b : 0;
  }

  /* The absolute schedule the server will make of s when it takes effect at
   * effStep with betaNow in force (sched_resolve). s is normalized first; a copy. */
  function resolve(s, effStep, spe, betaNow) {
    var r = normalize(s);
    r.points = r.points ? r.points.map(function (p) { return p.slice(); }) : r.points;
    var fromCurrent = s.from === 'current' ||
      (r.kind === 'piecewise' && r.points && r.points.length && r.points[0][1] === 'current');
    if (s.origin === 'now') r.start += progress(r, effStep, spe);
    delete r.origin;
    if (fromCurrent) {
      if (!isFinite(betaNow) || betaNow < 0) betaNow = 0;
      if (r.kind === 'linear' || r.kind === 'cyclical') r.from = betaNow;
      else if (r.kind === 'logistic') {
        var s0 = sigmoid(-r.k * r.midpoint), q = sigmoid(r.k * r.midpoint);
        r.from = q > 1e-9 ? (betaNow - r.to * s0) / q : betaNow;
      } else if (r.kind === 'piecewise') r.points[0][1] = betaNow;
    }
    return r;
  }

  var api = { DEFAULTS: DEFAULTS, normalize: normalize, progress: progress, beta: beta,
              resolve: resolve, KINDS: Object.keys(DEFAULTS) };
  if (typeof module === 'object' && module.exports) module.exports = api;
  else root.VaedSched = api;
})(typeof window !== 'undefined' ? window : this);
