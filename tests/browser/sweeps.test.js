/* sweeps.test.js — the dashboard's sweep page (web/sweeps.js) in headless Chromium,
 * driven by Playwright. Run by tests/e2e/dashboard_sweeps.sh, which sets:
 *   VAED_URL     http://127.0.0.1:PORT
 *   SWEEP        a sweep whose trials have all completed
 *   LIVE_SWEEP   a sweep with trials still queued or running
 *   LIVE_JOB     its one trial's job, paused: this test resumes it once the page watches
 *   PBT_SWEEP    a finished PBT sweep (4 members, epochs 4, a boundary at epoch 2)
 *   SHOT, CHROMIUM
 * Checks, each failing loudly with what it saw, against the REST API read here:
 *   - #sweep=ID opens the page with no console error; the sweep list names both sweeps;
 *   - the table has one row per trial, with the API's state and ELBO for each, best
 *     objective first; clicking the elbo header sorts ascending, again descending;
 *   - the rate–distortion chart has a point per trial, and the trials it marks as the
 *     Pareto front are those no other trial dominates (lower or equal KL and xent, one
 *     lower), computed here by the definition, not by the page's sweep;
 *   - the curves chart has a series per trial, and choosing xent draws, for a trial,
 *     the values GET /v1/sweeps/{id}/metrics?field=xent gives;
 *   - clicking a row opens that trial's job;
 *   - the running sweep's table fills in: its paused trial, resumed here, shows completed;
 *   - the PBT sweep's family tree has, per member and column, one edge from the node whose
 *     state it carried on: the donor's where the API's decision names one (orange), its
 *     own otherwise; the tree is hidden on a sweep without PBT. */
'use strict';
const { check, run, SLOW } = require('./lib.js');

const URL = process.env.VAED_URL;
const SWEEP = +process.env.SWEEP;
const LIVE = +process.env.LIVE_SWEEP;
const LIVE_JOB = +process.env.LIVE_JOB;
const PBT = +process.env.PBT_SWEEP;
const SHOT = process.env.SHOT || 'test-output/dashboard_sweeps.png';

async function get(p) {
  const r = await fetch(URL + p);
  if (!r.ok) throw new Error(p + ': HTTP ' + r.status);
  return r.json();
}
/* the Pareto front by its definition: no other trial at most as bad in both, better in one */
function front(trials) {
  const pts = trials.filter((t) => t.kl !== null && t.xent !== null);
  return pts.filter((a) => !pts.some((b) => b !== a && b.kl <= a.kl && b.xent <= a.xent &&
                                             (b.kl < a.kl || b.xent < a.xent)))
    .map((t) => t.trial).sort((x, y) => x - y);
}

run('sweeps browser test', { viewport: { width: 1500, height: 1600 } }, async (page) => {
  const api = await get('/v1/sweeps/' + SWEEP + '?sort=objective');
  await page.goto(URL + '/#sweep=' + SWEEP);
  await page.waitForFunction((n) => document.querySelectorAll('#sweep-table tbody tr').length === n &&
                                    window.vaed.sweep.charts.rd && window.vaed.sweep.charts.curves,
                             api.trials.length);
  check(await page.isVisible('#sweep') && !(await page.isVisible('#job')), 'the sweep page is shown, not a job');
  const listed = await page.$$eval('#sweeps tbody tr', (rs) => rs.map((r) => +r.getAttribute('data-id')));
  check(listed.includes(SWEEP) && listed.includes(LIVE), `the sweep list names both sweeps (${listed})`);

  // the table: the API's trials, best objective first
  const col = async (name) => page.$$eval('#sweep-table tbody tr', (rs, name) => {
    const hs = [...document.querySelectorAll('#sweep-table thead th')].map((h) => h.getAttribute('data-key'));
    const k = hs.indexOf(name);
    return rs.map((r) => r.children[k].textContent);
  }, name);
  const trials = (await col('trial')).map(Number);
  check(JSON.stringify(trials) === JSON.stringify(api.trials.map((t) => t.trial)),
        `rows in the API's objective order: ${trials} vs ${api.trials.map((t) => t.trial)}`);
  const elbo = (await col('elbo')).map(Number);
  check(api.trials.every((t, i) => Math.abs(t.elbo - elbo[i]) < 1e-3 + 1e-6 * Math.abs(t.elbo)),
        `each row's ELBO is the API's (${elbo.slice(0, 3)}…)`);
  check((await col('state')).every((s) => s === 'completed'), 'every trial completed');
  await page.click('#sweep-table th[data-key=elbo]');
  const up = (await col('elbo')).map(Number);
  check(up.every((v, i) => i === 0 || up[i - 1] <= v), `the elbo header sorts ascending: ${up}`);
  await page.click('#sweep-table th[data-key=elbo]');
  const down = (await col('elbo')).map(Number);
  check(down.every((v, i) => i === 0 || down[i - 1] >= v), `again: descending: ${down}`);

  // the rate–distortion plane
  const want = front(api.trials);
  const got = (await page.evaluate(() => window.vaed.sweep.front)).slice().sort((x, y) => x - y);
  check(JSON.stringify(got) === JSON.stringify(want), `Pareto front: page ${got}, by definition ${want}`);
  const rd = await page.evaluate(() => {
    const g = window.vaed.sweep.charts.rd;
    let pts = 0, fr = 0;
    for (let i = 0; i < g.numRows(); i++) { if (g.getValue(i, 1) !== null) pts++; if (g.getValue(i, 2) !== null) fr++; }
    return { pts, fr, labels: g.getLabels() };
  });
  check(rd.pts === api.trials.length && rd.fr === want.length,
        `the chart: ${rd.pts} points, ${rd.fr} on the front (${rd.labels})`);
  const marked = await page.$$eval('#sweep-table tbody tr.front', (rs) => rs.map((r) => +r.getAttribute('data-trial')).sort((x, y) => x - y));
  check(JSON.stringify(marked) === JSON.stringify(want), `the table marks the front's rows: ${marked}`);

  // the curves: one series per trial; xent as the metrics route gives it
  const ser = await page.evaluate(() => window.vaed.sweep.charts.curves.getLabels().length - 1);
  check(ser === api.trials.length, `curves: ${ser} series for ${api.trials.length} trials`);
  await page.selectOption('#sweep-field', 'xent');
  await page.waitForFunction(() => window.vaed.sweep.curves && window.vaed.sweep.curves.field === 'xent');
  const m = await get('/v1/sweeps/' + SWEEP + '/metrics?field=xent&max_points=400');
  const t0 = m.trials[0];
  const drawn = await page.evaluate((label) => {
    const g = window.vaed.sweep.charts.curves, k = g.getLabels().indexOf(label), out = [];
    for (let i = 0; i < g.numRows(); i++) if (g.getValue(i, k) !== null) out.push([g.getValue(i, 0), g.getValue(i, k)]);
    return out;
  }, 'trial ' + t0.trial);
  check(drawn.length === t0.step.length && drawn.every((p, i) => p[0] === t0.step[i] && p[1] === t0.xent[i]),
        `trial ${t0.trial}'s xent curve is the route's ${t0.step.length} points (drew ${drawn.length})`);
  await page.screenshot({ path: SHOT, fullPage: true });

  // a row opens its trial's job
  const first = api.trials[0];
  await page.click(`#sweep-table tbody tr[data-trial="${first.trial}"] td:nth-child(1)`);
  await page.waitForFunction((j) => window.vaed.job && window.vaed.job.id === j && !document.getElementById('job').hidden, first.job);
  check(await page.isHidden('#sweep'), `clicking trial ${first.trial} opened job ${first.job}`);

  // the running sweep fills in
  await page.click(`#sweeps tbody tr[data-id="${LIVE}"]`);
  await page.waitForFunction((id) => window.vaed.sweep.data && window.vaed.sweep.data.id === id, LIVE);
  const before = await page.evaluate(() => window.vaed.sweep.data.counts.completed || 0);
  check(before === 0, `the live sweep has no completed trial while its trial is paused (${before})`);
  const r = await fetch(URL + '/v1/jobs/' + LIVE_JOB + '/resume', { method: 'POST' });
  check(r.ok, `resuming job ${LIVE_JOB}: HTTP ${r.status}`);
  await page.waitForFunction((b) => (window.vaed.sweep.data.counts.completed || 0) > b &&
                                    [...document.querySelectorAll('#sweep-table tbody td')].some((td) => td.textContent === 'completed'),
                             before, { timeout: 90000 * SLOW }).catch(() => {});
  const after = await page.evaluate(() => window.vaed.sweep.data.counts.completed || 0);
  check(after > before, `the running sweep's page fills in: ${before} completed, then ${after}`);
  check(await page.isHidden('#sweep-tree'), 'no family tree on a sweep without PBT');

  // the PBT family tree
  const pa = await get('/v1/sweeps/' + PBT + '?sort=trial');
  await page.evaluate((id) => { location.hash = '#sweep=' + id; }, PBT);
  await page.waitForFunction((id) => window.vaed.sweep.data && window.vaed.sweep.data.id === id &&
                                     window.vaed.sweep.tree, PBT);
  const tree = await page.evaluate(() => window.vaed.sweep.tree);
  check(JSON.stringify(tree.columns) === '[0,2,4]', `columns: start, the boundary, the end (${tree.columns})`);
  const wantT = [];
  for (const t of pa.trials) {
    const d = t.pbt.find((x) => x.epoch === 2);
    wantT.push({ trial: t.trial, epoch: 2, from: d.donor ? d.donor.trial : t.trial, exploit: !!d.donor });
    wantT.push({ trial: t.trial, epoch: 4, from: t.trial, exploit: false });
  }
  const key = (e) => `${e.trial}@${e.epoch}<-${e.from}${e.exploit ? '!' : ''}`;
  const gotE = tree.edges.map(key).sort(), wantE = wantT.map(key).sort();
  check(JSON.stringify(gotE) === JSON.stringify(wantE), `tree edges are the API's decisions: ${gotE} vs ${wantE}`);
  const orange = await page.$$eval('#sweep-tree line.exploit', (ls) => ls.length);
  const nx = wantT.filter((e) => e.exploit).length;
  check(orange === nx && nx >= 1, `${orange} orange edges for ${nx} members that took a donor's state`);
  check(await page.isVisible('#sweep-tree svg'), 'the tree is shown');
  await page.screenshot({ path: SHOT.replace(/\.png$/, '') + '_pbt.png', fullPage: true });
});
