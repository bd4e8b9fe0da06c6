/* lib.js — what every browser test here shares: loud checks, and Debian's headless
 * Chromium started through Playwright with the flags this closed network needs, a
 * fresh profile, and every console error and uncaught exception collected.
 *   check(ok, what)            prints "ok   what" or "FAIL what", counts failures
 *   run(name, opts, body)      starts the browser (opts: Playwright's context options,
 *                              e.g. viewport, ignoreHTTPSErrors), calls body(page),
 *                              closes it, checks that no error was logged, prints the
 *                              verdict and exits 0 or 1. An exception in body fails. */
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

let failures = 0;
function check(ok, what) {
  if (ok) console.log('ok   ' + what);
  else { failures++; console.log('FAIL ' + what); }
}

async function run(name, opts, body) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'vaed-chromium-'));
  const errors = [];
  let ctx = null;
  try {
    ctx = await chromium.launchPersistentContext(profile, Object.assign({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    }, opts));
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push('console: ' + m.text() + ' @ ' + (m.location().url || ''));
    });
    page.on('pageerror', (e) => errors.push('exception: ' + e.message));
    page.setDefaultTimeout(30000);
    await body(page);
  } catch (e) {
    check(false, 'the browser test could not go on: ' + (e && e.stack || e));
  } finally {
    if (ctx) await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  check(errors.length === 0, 'no console errors or exceptions' +
        (errors.length ? ':\n       ' + errors.join('\n       ') : ''));
  console.log(`${name}: ${failures ? failures + ' FAILED' : 'all ok'}`);
  process.exit(failures ? 1 : 0);
}

module.exports = { check, run };
