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
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const URL = process.env.VAED_URL;
const RUNNING = +process.env.JOB_RUNNING;
const EXE = process.env.CHROMIUM || '/usr/bin/chromium';

let failures = 0;
function check(ok, what) {
  if (ok) console.log('ok   ' + what);
  else { failures++; console.log('FAIL ' + what); }
}

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

async function one(ctx, c, errors) {
  const page = await ctx.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(c.who + ': console: ' + m.text());
  });
  page.on('pageerror', (e) => errors.push(c.who + ': exception: ' + e.message));
  page.setDefaultTimeout(30000);
  await page.addInitScript((t) => { if (t) sessionStorage.setItem('vaed_token', t); }, c.token);
  await page.goto(URL + '/#job=' + RUNNING);
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
  await page.close();
}

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'vaed-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: EXE,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const errors = [];
  try {
    for (const c of CASES) await one(ctx, c, errors);
  } catch (e) {
    failures++;
    console.log('FAIL ' + (e && e.stack || e));
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  check(errors.length === 0, 'no console errors or exceptions' +
        (errors.length ? ':\n       ' + errors.join('\n       ') : ''));
  console.log(failures ? `scopes browser test: ${failures} FAILED` : 'scopes browser test: all ok');
  process.exit(failures ? 1 : 0);
}
main();
