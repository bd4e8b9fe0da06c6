/* dashboard.test.js — the vaed dashboard in headless Chromium, driven by Playwright.
 * Run by tests/e2e/dashboard.sh, which starts the daemon and two jobs and sets:
 *   VAED_URL     http://127.0.0.1:PORT
 *   JOB_RUNNING  a job that is training (long enough to outlive this test)
 *   JOB_DONE     a finished job (for the comparison overlay)
 *   SHOT         where to save the screenshot
 *   CHROMIUM     the browser binary (default /usr/bin/chromium)
 * Checks, each failing loudly with what it saw:
 *   - the page loads with no console errors and no uncaught exceptions;
 *   - the running job's curves grow (rows in the chart increase);
 *   - a schedule applied from the form comes back with its effective step, the marker
 *     appears there, and the betas the daemon reports from that step on are the ones
 *     the preview route (POST /v1/schedules/preview) gives for the schedule the server
 *     resolved (so the preview's
 *     formulas agree with vae/sched.c), and the beta chart shows them;
 *   - the reconstruction and sample images load (naturalWidth > 0), and the latent
 *     traversal grid and the interpolation strip are drawn from the decoder;
 *   - the finished job's evaluations (its spec's eval block) are listed with their bounds
 *     and drawn on the ELBO chart at their checkpoints; the Evaluate form queues one;
 *   - the comparison overlay draws both jobs' beta curves. */
'use strict';
const fs = require('fs');
const path = require('path');
const { check, run } = require('./lib.js');

const URL = process.env.VAED_URL;
const RUNNING = +process.env.JOB_RUNNING;
const DONE = +process.env.JOB_DONE;
const SHOT = process.env.SHOT || 'test-output/dashboard.png';


run('dashboard', { viewport: { width: 1500, height: 1900 } }, async (page) => {
  await page.goto(URL + '/#job=' + RUNNING);
  check(await page.title() === 'vaed', 'page title is vaed');
  await page.waitForFunction(() => window.Dygraph && window.vaed && window.vaed.charts.loss &&
                                   window.vaed.charts.loss.numRows() > 0);
  check(true, 'charts drawn for job ' + RUNNING);
  const listed = await page.$$eval('#jobs tbody tr', (rs) => rs.length);
  check(listed >= 2, `job list shows the jobs (${listed} rows)`);

  // the curves grow
  const n0 = await page.evaluate(() => window.vaed.charts.loss.numRows());
  await page.waitForFunction((n) => window.vaed.charts.loss.numRows() > n + 20, n0)
    .catch(() => {});
  const n1 = await page.evaluate(() => window.vaed.charts.loss.numRows());
  check(n1 > n0 + 20, `curves grow: ${n0} rows, then ${n1}`);
  const live = await page.textContent('#live');
  console.log('     live updates: ' + live);

  // a schedule from the form: linear from the current beta to 0.9 over 400 steps
  await page.selectOption('#sched-form select[name=kind]', 'linear');
  await page.fill('#sched-form input[name=from]', 'current');
  await page.fill('#sched-form input[name=to]', '0.9');
  await page.fill('#sched-form input[name=duration]', '400');
  await page.selectOption('#sched-form select[name=unit]', 'steps');
  await page.selectOption('#sched-form select[name=origin]', 'now');
  await page.waitForFunction(() => window.vaed.preview && window.vaed.preview.length > 10);
  check(true, 'the form draws a preview');
  await page.click('#sched-form button[type=submit]');
  await page.waitForFunction(() => window.vaed.lastApply);
  const applied = await page.evaluate(() => window.vaed.lastApply);
  const eff = applied.effective_step;
  check(/schedule applied at step \d+/.test(await page.textContent('#status')),
        'status says where the schedule took effect: ' + await page.textContent('#status'));
  await page.waitForFunction((e) => (window.vaed.markers || { sched: [] }).sched.indexOf(e) >= 0, eff)
    .catch(() => {});
  const marks = await page.getAttribute('#markers', 'data-sched');
  check(marks.split(',').map(Number).indexOf(eff) >= 0,
        `a schedule marker at the effective step ${eff} (markers: ${marks})`);
  await page.waitForFunction((e) => {
    const r = window.vaed.rows;
    return r.step.length && r.step[r.step.length - 1] >= e + 50;
  }, eff);
  // the daemon's own curve for the schedule it resolved (POST /v1/schedules/preview)
  const pv = await page.evaluate(async (a) => {
    const p = window.vaed.job.progress, tok = window.vaed.token;
    const r = await fetch('/v1/schedules/preview', {
      method: 'POST',
      headers: Object.assign({ 'Content-Type': 'application/json' },
                             tok ? { Authorization: 'Bearer ' + tok } : {}),
      // every step of the 2,000 from the effective one (the schedule is absolute
      // already: resolving it there changes nothing)
      body: JSON.stringify({ schedule: a.schedule, steps_per_epoch: p.steps_per_epoch,
                             effective_step: a.effective_step,
                             total_steps: a.effective_step + 2000,
                             max_points: 2000 })
    });
    const b = await r.json();
    const m = {};
    b.step.forEach((x, i) => { m[x] = b.beta[i]; });
    return m;
  }, applied);
  // the chart redraws a moment after rows arrive: wait until its beta column holds the
  // new betas (its last row alone says nothing: a preview curve can run past the rows)
  await page.waitForFunction((arg) => {
    const a = arg.a, pv = arg.pv, g = window.vaed.charts.beta;
    let shown = 0;
    for (let i = 0; i < g.numRows(); i++) {
      const x = g.getValue(i, 0), b = g.getValue(i, 1);
      if (x >= a.effective_step && (x in pv) && b !== null && Math.abs(b - pv[x]) < 1e-9) shown++;
    }
    window.vaedTestShown = shown;
    return shown >= 50;
  }, { a: applied, pv }).catch(() => {});
  const cmp = await page.evaluate((arg) => {
    const a = arg.a, pv = arg.pv, r = window.vaed.rows;
    let n = 0, maxdiff = 0, first = null;
    for (let i = 0; i < r.step.length; i++) {
      if (r.step[i] < a.effective_step || !(r.step[i] in pv)) continue;
      const want = pv[r.step[i]];
      const d = Math.abs(want - r.beta[i]);
      if (d > maxdiff) { maxdiff = d; first = [r.step[i], r.beta[i], want]; }
      n++;
    }
    return { n, maxdiff, first };
  }, { a: applied, pv });
  // the chart's own beta column holds those rows (counted by the wait above)
  cmp.shown = await page.evaluate(() => window.vaedTestShown);
  check(cmp.n >= 50 && cmp.maxdiff < 1e-9,
        `daemon's beta after the change = the preview route's curve of the resolved schedule over ${cmp.n} steps ` +
        `(maxdiff=${cmp.maxdiff}` + (cmp.first ? `, worst step ${cmp.first[0]}: daemon ${cmp.first[1]}, preview ${cmp.first[2]}` : '') + ')');
  check(cmp.shown >= 50, `the beta chart shows the new betas (${cmp.shown} rows)`);
  // the schedule in force is shown readably: no number with more than 6 significant digits
  await page.waitForFunction(() => /In force: \{/.test(document.getElementById('sched-now').textContent)).catch(() => {});
  const inForce = await page.textContent('#sched-now');
  const longest = Math.max(0, ...(inForce.match(/\d+\.\d+/g) || []).map((x) => x.replace('.', '').replace(/^0+/, '').length));
  check(longest <= 6, `the schedule in force is shown readably: ${inForce}`);
  check(applied.schedule.kind === 'linear' && applied.schedule.to === 0.9 &&
        applied.schedule.unit === 'steps', 'the server resolved the form\'s schedule: ' +
        JSON.stringify(applied.schedule));

  // images (the job checkpoints every 2 s)
  await page.waitForFunction(() => {
    const a = document.getElementById('img-recon'), b = document.getElementById('img-samples');
    return a.complete && b.complete && a.naturalWidth > 0 && b.naturalWidth > 0;
  }).catch(() => {});
  const dims = await page.evaluate(() => ['img-recon', 'img-samples'].map((id) => {
    const i = document.getElementById(id);
    return [i.naturalWidth, i.naturalHeight];
  }));
  check(dims[0][0] > 0 && dims[1][0] > 0, 'images load: ' + JSON.stringify(dims));
  check(dims[0][1] > dims[1][1], 'reconstructions have two rows, samples one');

  // latent traversals (8 dimensions x 9 steps) and the interpolation strip (12)
  await page.waitForFunction(() => document.getElementById('traversal').getAttribute('data-cells') === '72' &&
                                   document.getElementById('interp').getAttribute('data-cells') === '12')
    .catch(() => {});
  const lat = await page.evaluate(() => ['traversal', 'interp'].map((id) => {
    const c = document.getElementById(id), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const seen = new Set();
    for (let i = 0; i < d.length; i += 4 * 7) seen.add(d[i]);
    return { cells: c.getAttribute('data-cells'), w: c.width, h: c.height, shades: seen.size };
  }));
  check(lat[0].cells === '72' && lat[1].cells === '12' && lat[0].shades > 20 && lat[1].shades > 20,
        'latent traversal grid (8 x 9) and interpolation strip (12) drawn from the decoder: ' + JSON.stringify(lat));

  // posterior collapse widgets
  await page.waitForFunction(() => document.querySelectorAll('#kl-bars > div').length > 0)
    .catch(() => {});
  const bars = await page.$$eval('#kl-bars > div', (b) => b.length);
  check(bars === 8, `KL bars, one per latent dimension (${bars})`);

  // the finished job's evaluations: the table, the bound on the ELBO chart, the form
  await page.click(`#jobs tr[data-id="${DONE}"] td:nth-child(2)`);
  await page.waitForFunction(() => document.querySelectorAll('#evals tbody tr.state-completed').length >= 2)
    .catch(() => {});
  const evRows = await page.$$eval('#evals tbody tr.state-completed', (rs) =>
    rs.map((r) => [...r.children].map((td) => td.textContent)));
  check(evRows.length >= 2 && evRows.every((r) => /^-?\d+\.\d+ ± \d+\.\d+$/.test(r[5])),
        'the evaluations table lists the completed evaluations with bound ± se: ' + JSON.stringify(evRows));
  await page.waitForFunction(() => {
    const g = window.vaed.charts.elbo;
    if (!g || g.getLabels().indexOf('test bound (IWAE)') < 0) return false;
    for (let i = 0; i < g.numRows(); i++) if (g.getValue(i, 3) !== null) return true;
    return false;
  }).catch(() => {});
  const bounds = await page.evaluate(() => {
    const g = window.vaed.charts.elbo, out = [];
    if (!g) return out;
    for (let i = 0; i < g.numRows(); i++) if (g.getValue(i, 3) !== null) out.push([g.getValue(i, 0), g.getValue(i, 3)]);
    return out;
  });
  const want = await page.evaluate(() => window.vaed.evals.filter((e) => e.state === 'completed')
    .map((e) => [e.checkpoint.step, e.result.bound]).sort((a, b) => a[0] - b[0]));
  check(bounds.length >= 2 && JSON.stringify(bounds) === JSON.stringify(want),
        'the ELBO chart draws each bound at its checkpoint: ' + JSON.stringify(bounds));
  const nEval = await page.$$eval('#evals tbody tr', (rs) => rs.length);
  await page.fill('#eval-form input[name=k]', '8');
  await page.fill('#eval-form input[name=rows]', '100');
  await page.click('#eval-form button[type=submit]');
  // both: the list's own polling can show the new row before the POST's reply is read
  await page.waitForFunction((n) => window.vaed.lastEval &&
                                    document.querySelectorAll('#evals tbody tr').length > n, nEval)
    .catch(() => {});
  const last = await page.evaluate(() => window.vaed.lastEval);
  check(last && last.k === 8 && last.rows === 100 && /queued|running|completed/.test(last.state) &&
        await page.$$eval('#evals tbody tr', (rs) => rs.length) === nEval + 1,
        'the Evaluate form queues an evaluation: ' + JSON.stringify(last && { id: last.id, k: last.k, state: last.state }));

  // overlay of two jobs
  await page.check(`#jobs tr[data-id="${RUNNING}"] input.cmp`);
  await page.check(`#jobs tr[data-id="${DONE}"] input.cmp`);
  await page.click('#compare-btn');
  await page.waitForFunction(() => window.vaed.charts.cmpBeta).catch(() => {});
  const labels = await page.evaluate(() => window.vaed.charts.cmpBeta &&
                                     window.vaed.charts.cmpBeta.getLabels());
  check(labels && labels.length === 3, 'comparison overlays both jobs: ' + JSON.stringify(labels));

  // log scale and smoothing do not break the charts
  await page.check('#logscale');
  await page.fill('#smooth', '0.9');
  await page.dispatchEvent('#smooth', 'input');
  await page.waitForTimeout(600);
  check(await page.evaluate(() => window.vaed.charts.loss && window.vaed.charts.loss.getOption('logscale') === true),
        'log scale applies');

  fs.mkdirSync(path.dirname(SHOT), { recursive: true });
  await page.screenshot({ path: SHOT, fullPage: true });
  console.log('     screenshot: ' + SHOT);
});
