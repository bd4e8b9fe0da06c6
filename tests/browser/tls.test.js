/* tls.test.js — the dashboard over HTTPS in headless Chromium, driven by Playwright.
 * Run by tests/e2e/security_tls.sh, which starts the daemon with a self-signed
 * certificate made for the test and a running job, and sets:
 *   VAED_URL     https://127.0.0.1:PORT
 *   JOB_RUNNING  a job that is training (long enough to outlive this test)
 *   CHROMIUM     the browser binary (default /usr/bin/chromium)
 * The certificate is the test's own, so the browser is told to accept it
 * (ignoreHTTPSErrors); what is checked is that the page, its scripts, the JSON routes
 * and the live event stream all work over TLS: the page loads with no console errors,
 * its origin is https, the job list is filled and the running job's curves grow (they
 * grow from the SSE stream). */
'use strict';
const { check, run } = require('./lib.js');

const URL = process.env.VAED_URL;
const RUNNING = +process.env.JOB_RUNNING;

run('tls browser test', { ignoreHTTPSErrors: true }, async (page) => {
  await page.goto(URL + '/#job=' + RUNNING);
  check(await page.title() === 'vaed', 'page title is vaed');
  check(await page.evaluate(() => location.protocol) === 'https:', 'the page came over https');
  await page.waitForFunction(() => window.Dygraph && window.vaed && window.vaed.charts.loss &&
                                   window.vaed.charts.loss.numRows() > 0);
  const listed = await page.$$eval('#jobs tbody tr', (rs) => rs.length);
  check(listed >= 1, `job list shows the job (${listed} rows)`);
  const n0 = await page.evaluate(() => window.vaed.charts.loss.numRows());
  await page.waitForFunction((n) => window.vaed.charts.loss.numRows() > n + 20, n0)
    .catch(() => {});
  const n1 = await page.evaluate(() => window.vaed.charts.loss.numRows());
  check(n1 > n0 + 20, `curves grow over the event stream: ${n0} rows, then ${n1}`);
  console.log('     live updates: ' + await page.textContent('#live'));
});
