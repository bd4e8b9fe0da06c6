/* scopes.test.js — the dashboard with scoped tokens in headless Chromium, driven by
 * Playwright. Run by tests/e2e/security_scopes.sh, which starts the daemon with a tokens
 * file and a running job, and sets:
 *   VAED_URL     http://127.0.0.1:PORT
 *   JOB_RUNNING  a job that is training
 *   TOKEN_READ, TOKEN_CONTROL, TOKEN_ADMIN  secrets of a read, control and admin token
 *   CHROMIUM     the browser binary (default /usr/bin/chromium)
 * For no token and each token (put in sessionStorage before the page loads, as the
 * page's Token button does), the page must show the curves and hide exactly the controls
 * the token's scope does not reach: the submit box (admin), the job buttons, the
 * schedule's Apply and the evaluation form (control). The Token button shows unless the
 * token is admin. No console errors: a hidden control is never tried (no 401, no 403). */
'use strict';
const { check, run } = require('./lib.js');

const URL = process.env.VAED_URL;
const RUNNING = +process.env.JOB_RUNNING;

const CASES = [
  { who: 'no token', token: '', scope: null },
  { who: 'read token', token: process.env.TOKEN_READ, scope: 'read' },
  { who: 'control token', token: process.env.TOKEN_CONTROL, scope: 'control' },
  { who: 'admin token', token: process.env.TOKEN_ADMIN, scope: 'admin' },
];
const RANK = { read: 1, control: 2, admin: 3 };
const CONTROLS = [
  ['#submit-box', 'admin'],
  ['button[data-act="pause"]', 'control'],
  ['button[data-act="cancel"]', 'control'],
  ['button[data-act="checkpoints"]', 'control'],
  ['#sched-form button[type="submit"]', 'control'],
  ['#eval-form', 'control'],
];

run('scopes browser test', {}, async (page) => {
  await page.goto(URL + '/#job=' + RUNNING);
  for (const c of CASES) {
    /* the token as the Token button leaves it, then the page loaded again with it */
    await page.evaluate((t) => {
      sessionStorage.clear();
      if (t) sessionStorage.setItem('vaed_token', t);
    }, c.token);
    await page.reload();
    await page.waitForFunction(() => window.vaed && window.vaed.who && window.vaed.charts.loss &&
                                     window.vaed.charts.loss.numRows() > 0);
    const who = await page.evaluate(() => window.vaed.who);
    check(who.scope === c.scope, `${c.who}: whoami scope ${who.scope} (want ${c.scope})`);
    const held = RANK[c.scope] || 0;
    for (const [sel, need] of CONTROLS) {
      const visible = await page.isVisible(sel);
      check(visible === held >= RANK[need],
            `${c.who}: ${sel} (needs ${need}) ${visible ? 'shown' : 'hidden'}`);
    }
    check(await page.isVisible('#token-btn') === held < RANK.admin,
          `${c.who}: the Token button ${held < RANK.admin ? 'shown' : 'hidden'}`);
    check(await page.isVisible('#chart-loss'), `${c.who}: the curves show`);
  }
});
