// Reading events: feed impressions, post opens, visible dwell time and digest clicks, batched and
// sent with navigator.sendBeacon (which survives page unload). sendBeacon cannot set headers, so
// the CSRF token travels in the body. No inline script: the CSP allows only Beacon's own files.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var script = document.currentScript;
  var endpoint = (script && script.getAttribute("data-events-url")) || "/api/v1/events";
  var queue = [];
  var seen = {};

  function uid() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }

  function push(kind, postId, extra) {
    var event = { id: uid(), kind: kind, post_id: postId || null, occurred_at: new Date().toISOString(), dwell_ms: null };
    for (var key in extra || {}) { event[key] = extra[key]; }
    queue.push(event);
    if (queue.length >= 50) { flush(); }
  }

  function flush() {
    if (!queue.length) { return; }
    var body = JSON.stringify({ csrf_token: csrf, events: queue.splice(0, 50) });
    var blob = new Blob([body], { type: "text/plain;charset=UTF-8" });
    if (!(navigator.sendBeacon && navigator.sendBeacon(endpoint, blob))) {
      fetch(endpoint, { method: "POST", credentials: "same-origin", keepalive: true, body: body,
                        headers: { "Content-Type": "text/plain;charset=UTF-8" } });
    }
  }

  // Feed impressions: an item at least half visible for a second, once per page view.
  var items = document.querySelectorAll("[data-post-id]");
  if (items.length && "IntersectionObserver" in window) {
    var timers = {};
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        var id = parseInt(entry.target.getAttribute("data-post-id"), 10);
        if (entry.isIntersecting && !seen[id]) {
          timers[id] = setTimeout(function () {
            seen[id] = true;
            var position = Array.prototype.indexOf.call(items, entry.target);
            push("impression", id, { surface: "feed", position: position });
          }, 1000);
        } else if (!entry.isIntersecting) {
          clearTimeout(timers[id]);
        }
      });
    }, { threshold: 0.5 });
    items.forEach(function (item) { observer.observe(item); });
  }

  // A post page: the open, a digest click (links carry ?d=<delivery>&c=<channel>), visible dwell time.
  var article = document.querySelector("article[data-read-url]");
  if (article) {
    var match = /\/posts\/(\d+)/.exec(window.location.pathname);
    var postId = match ? parseInt(match[1], 10) : null;
    var params = new URLSearchParams(window.location.search);
    var delivery = parseInt(params.get("d") || "", 10);
    var channel = params.get("c");
    push("open", postId, { surface: delivery ? "digest" : "page" });
    if (delivery) {
      push("digest_click", postId, { delivery_id: delivery, channel: channel === "teams" ? "teams" : "email" });
    }
    var visibleSince = document.visibilityState === "visible" ? Date.now() : null;
    var dwell = 0;
    var reported = false;
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") {
        if (visibleSince) { dwell += Date.now() - visibleSince; visibleSince = null; }
        if (!reported && dwell > 0) { reported = true; push("read", postId, { dwell_ms: dwell }); }
        flush();
      } else {
        visibleSince = Date.now();
      }
    });
  }

  // One session event per browser session (per tab), not per page.
  try {
    if (!window.sessionStorage.getItem("beacon-session")) {
      window.sessionStorage.setItem("beacon-session", "1");
      push("session", null, { surface: article ? "page" : "feed" });
    }
  } catch (e) { /* storage disabled: no session events */ }
  setTimeout(flush, 2000);
  window.addEventListener("pagehide", flush);
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "hidden") { flush(); } });
})();
