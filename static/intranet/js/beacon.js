// Beacon's page behaviour. No inline scripts: the CSP allows only scripts served by Beacon.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";

  window.Beacon = window.Beacon || {};
  window.Beacon.post = function (url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body || {}),
    });
  };

  // Opening a post records the read through a POST (a GET never changes state).
  var article = document.querySelector("article[data-read-url]");
  if (article) {
    window.Beacon.post(article.getAttribute("data-read-url"));
  }
})();

// On a phone the navigation is one sideways-scrolling row: keep the current page's link in view.
(function () {
  "use strict";
  var current = document.querySelector(".topbar .nav [aria-current]");
  var nav = current && current.parentNode;
  if (nav && nav.scrollWidth > nav.clientWidth) {
    nav.scrollLeft = Math.max(0, current.offsetLeft - nav.offsetLeft - 16);
  }
})();

// Search forms marked data-live-search (people pickers): the results follow the typing. The page
// itself is fetched again with ?q= and its results area swapped in, so the server renders the same
// escaped markup as without this script; the address keeps the query for Back and reload.
(function () {
  "use strict";
  document.querySelectorAll("form[data-live-search]").forEach(function (form) {
    var selector = form.getAttribute("data-live-search");
    var target = document.querySelector(selector);
    var input = form.querySelector('input[type="search"]');
    if (!target || !input) {
      return;
    }
    var timer = null;
    var latest = 0;
    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        var ticket = ++latest;
        var url = new URL(form.action, window.location.href);
        var query = input.value.trim();
        if (query) {
          url.searchParams.set("q", query);
        }
        fetch(url.toString(), { credentials: "same-origin", headers: { Accept: "text/html" } })
          .then(function (response) { return response.ok ? response.text() : null; })
          .then(function (html) {
            if (html === null || ticket !== latest) {
              return; // a newer search is on its way, or this one failed: the Search button still works
            }
            var fresh = new DOMParser().parseFromString(html, "text/html").querySelector(selector);
            if (fresh) {
              target.replaceChildren.apply(target, Array.prototype.slice.call(fresh.childNodes));
              window.history.replaceState(null, "", url.toString());
            }
          })
          .catch(function () { /* offline: the Search button still works */ });
      }, 250);
    });
  });
})();

// Installable app: the service worker keeps the last feed for offline use; signing out forgets it.
(function () {
  "use strict";
  var script = document.querySelector("script[data-service-worker]");
  if ("serviceWorker" in navigator && script) {
    // Installed once the page has settled: the worker's first downloads never compete with the
    // page's own requests (its reading events are sent as people move on).
    window.addEventListener("load", function () {
      window.setTimeout(function () {
        navigator.serviceWorker.register(script.getAttribute("data-service-worker")).catch(function (error) {
          console.warn("Beacon works without offline support here:", error.message);
        });
      }, 3000);
    });
  }
  var note = document.querySelector(".offline-note");
  function showConnection() { if (note) { note.hidden = navigator.onLine; } }
  window.addEventListener("online", showConnection);
  window.addEventListener("offline", showConnection);
  showConnection();
  document.querySelectorAll("form[data-forget-offline]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.caches) { return; }
      event.preventDefault();  // sign out only once the kept feed is gone
      window.caches.delete("beacon-feed").finally(function () { form.submit(); });
    });
  });
})();
