/* access.js — what the dashboard shows for the token it holds (loaded before app.js).
 *
 * app.js asks GET /v1/whoami first and hands the answer to vaedAccess.apply, which hides
 * every element whose data-scope the token does not reach (read < control < admin), so a
 * read token sees the curves and images but not the buttons that would answer 403. With
 * no tokens configured the daemon says scope "admin" and everything shows. With tokens
 * and none held, scope is null: reads still work when they are free, but the page makes
 * no POST at all, not even those that change nothing (schedule preview, decode for the
 * latent traversals): every POST needs a token (docs/operations.md, "Tokens and scopes").
 * The header names the token; its Token button takes another (kept for the tab in
 * sessionStorage, as app.js's 401 prompt does) and reloads the page with it. */
(function () {
  'use strict';
  var RANK = { read: 1, control: 2, admin: 3 };
  var who = null;

  function apply(w) {
    who = w;
    var st = window.vaed;
    if (st) {
      st.who = w;                       /* for the browser test and the console */
      if (w.reads_need_token) st.readsNeedToken = true;
    }
    var held = RANK[w.scope] || 0;
    document.querySelectorAll('[data-scope]').forEach(function (e) {
      e.hidden = (RANK[e.getAttribute('data-scope')] || 4) > held;
    });
    document.getElementById('whoami').textContent = !w.tokens ? ''
      : w.name ? 'token ' + w.name + ' (' + w.scope + ')' : 'no token: read only';
    document.getElementById('token-btn').hidden = !w.tokens || held >= RANK.admin;
    return w;
  }

  /* Does the token reach scope? Not before whoami has answered. */
  function can(scope) {
    return !!who && (RANK[who.scope] || 0) >= RANK[scope];
  }

  document.addEventListener('DOMContentLoaded', function () {
    document.getElementById('token-btn').addEventListener('click', function () {
      var t = window.prompt('Access token for this vaed server:');
      if (!t) return;
      sessionStorage.setItem('vaed_token', t.trim());
      location.reload();
    });
  });

  window.vaedAccess = { apply: apply, can: can };
})();
