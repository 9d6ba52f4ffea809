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
