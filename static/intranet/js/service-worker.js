// Beacon's service worker: the feed opens without a network, as it was when last seen.
//
// - The feed page: network first; each good copy replaces the one kept for offline use.
// - Other pages: left to the browser, or the offline page when there is no network.
// - Beacon's static files: network first too (an upgrade must show at once), the kept copy offline.
// Signing out deletes the kept feed (beacon.js), so the next person on a shared phone never sees it.
"use strict";

var SHELL = "beacon-shell-v1";
var FEED = "beacon-feed";
var scope = self.registration.scope;  // Beacon's root, ending in "/"
var FEED_URL = scope;
var OFFLINE_URL = new URL("offline", scope).href;
var STATIC_PREFIX = new URL("_beacon/static/", scope).href;
var PRECACHE = [OFFLINE_URL, STATIC_PREFIX + "intranet/css/beacon.css", STATIC_PREFIX + "intranet/js/beacon.js",
                STATIC_PREFIX + "intranet/favicon.svg"];

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(SHELL).then(function (cache) { return cache.addAll(PRECACHE); })
    .then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (name) { return name.indexOf("beacon-shell-") === 0 && name !== SHELL; })
      .map(function (name) { return caches.delete(name); }));
  }).then(function () { return self.clients.claim(); }));
});

function feedFirst(request) {
  return fetch(request).then(function (response) {
    // A sign-in redirect or an error page is not the feed: keep the last good copy instead.
    if (response.ok && !response.redirected) {
      var copy = response.clone();
      caches.open(FEED).then(function (cache) { return cache.put(FEED_URL, copy); });
    }
    return response;
  }, function () {
    return caches.match(FEED_URL, { cacheName: FEED }).then(function (kept) {
      return kept || caches.match(OFFLINE_URL);
    });
  });
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") { return; }
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) { return; }
  if (request.mode === "navigate") {
    if (url.origin + url.pathname === FEED_URL && !url.search) {
      event.respondWith(feedFirst(request));
    } else if (!self.navigator.onLine) {
      // Online, other pages load as if there were no worker (nothing to keep, nothing to slow down).
      event.respondWith(caches.match(OFFLINE_URL));
    }
    return;
  }
  if (request.url.indexOf(STATIC_PREFIX) === 0) {
    event.respondWith(fetch(request).then(function (response) {
      if (response.ok) {
        var copy = response.clone();
        caches.open(SHELL).then(function (cache) { return cache.put(request, copy); });
      }
      return response;
    }, function () {
      return caches.match(request, { ignoreSearch: true });
    }));
  }
});
