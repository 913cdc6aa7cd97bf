// errand dashboard: the only script, no build step. Everything works without it; it adds
// live progress on the task page (SSE), periodic refresh of the overview, queues and
// workers, confirmation of bulk actions, and `/` to jump to the task search.
"use strict";
(function () {
  var main = document.getElementById("main");
  if (!main) return;
  var TERMINAL = { succeeded: 1, failed: 1, cancelled: 1 };

  // Task page: follow the task until it ends, then reload once for its result and buttons.
  var task = main.getAttribute("data-task");
  var state = main.getAttribute("data-state");
  if (task && window.EventSource && !TERMINAL[state]) {
    var es = new EventSource("/ui/tasks/" + encodeURIComponent(task) + "/events");
    es.onmessage = function (e) {
      var d = JSON.parse(e.data);
      var bar = document.getElementById("progress");
      var text = document.getElementById("progress-text");
      if (bar) { bar.value = d.percent; bar.setAttribute("aria-valuenow", d.percent); }
      if (text) { text.textContent = d.percent + " %" + (d.message ? " \u2014 " + d.message : ""); }
      var badge = main.querySelector("[data-badge]");
      if (badge) { badge.textContent = d.state; badge.className = "badge " + d.state; }
      main.setAttribute("data-state", d.state);
      if (TERMINAL[d.state]) { es.close(); setTimeout(function () { location.reload(); }, 300); }
    };
    es.addEventListener("gone", function () { es.close(); });
  }

  // Pages that show live figures: swap in a fresh copy of <main> every few seconds, unless
  // the user is in the middle of something on it (focus inside a form field).
  var every = parseInt(main.getAttribute("data-refresh"), 10);
  if (every > 0 && window.fetch && window.DOMParser) {
    setInterval(function () {
      var a = document.activeElement;
      if (document.hidden || (a && main.contains(a) && /INPUT|SELECT|TEXTAREA/.test(a.tagName))) return;
      fetch(location.href, { credentials: "same-origin" }).then(function (r) {
        return r.ok ? r.text() : null;
      }).then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        if (fresh) { main.innerHTML = fresh.innerHTML; }
      }).catch(function () {});
    }, every * 1000);
  }

  document.addEventListener("submit", function (e) {
    var msg = e.target.getAttribute && e.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) e.preventDefault();
  });

  document.addEventListener("keydown", function (e) {
    var t = e.target.tagName;
    if (e.key === "/" && !/INPUT|SELECT|TEXTAREA/.test(t) && !e.ctrlKey && !e.metaKey) {
      var id = document.getElementById("id");
      if (id) { e.preventDefault(); id.focus(); } else { location.href = "/ui/tasks#id"; }
    }
  });
})();
