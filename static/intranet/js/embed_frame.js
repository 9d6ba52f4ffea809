// The iframe page's sign-in (templates/intranet/embed/connect.html and hand_off.html). No inline
// scripts: Beacon's CSP allows none. Tokens travel by postMessage and in an Authorization header,
// never in a URL (URLs land in logs and in the Referer).
(function () {
  "use strict";
  var TOKEN = "beacon:token";

  // In the sign-in window: hand the token to the framed Beacon page that opened it, and only to
  // Beacon's own origin (whoever else opened this window gets nothing).
  var handOff = document.querySelector("[data-hand-off]");
  if (handOff) {
    var token = handOff.getAttribute("data-token");
    handOff.removeAttribute("data-token");
    var note = handOff.querySelector("[role=status]");
    if (window.opener && token) {
      window.opener.postMessage({ type: TOKEN, token: token }, window.location.origin);
      note.textContent = "You are signed in. This window closes by itself.";
      window.setTimeout(function () { window.close(); }, 500);
    } else {
      // Signing in on the way here may cut this window off from the page (its opener is gone).
      note.textContent = "You are signed in. Close this window and press Sign in on the page once more.";
    }
    return;
  }

  var connect = document.querySelector("[data-embed-connect]");
  if (!connect) {
    return;
  }
  var origins = (connect.getAttribute("data-origins") || "").split(" ").filter(Boolean);
  var status = connect.querySelector("[data-embed-status]");
  var popup = null;
  var busy = false;

  function exchange(token) {
    if (busy) {
      return;
    }
    busy = true;
    status.textContent = "Signing you in…";
    fetch(connect.getAttribute("data-session-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { Authorization: "Bearer " + token },
    }).then(function (response) {
      if (response.status === 204) {
        window.location.reload();
        return;
      }
      return response.json().then(function (data) {
        throw new Error((data.error && data.error.message) || "You are not signed in.");
      });
    }).catch(function (error) {
      busy = false;
      status.textContent = error.message || "You are not signed in; try again.";
    });
  }

  window.addEventListener("message", function (event) {
    var data = event.data;
    if (!data || data.type !== TOKEN || typeof data.token !== "string") {
      return;
    }
    var fromHost = event.source === window.parent && origins.indexOf(event.origin) !== -1;
    var fromSignIn = popup !== null && event.source === popup && event.origin === window.location.origin;
    if (fromHost || fromSignIn) {
      exchange(data.token);
    }
  });

  connect.querySelector("[data-sign-in]").addEventListener("click", function () {
    popup = window.open(connect.getAttribute("data-hand-off-url"), "beacon-sign-in", "popup,width=520,height=680");
    if (!popup) {
      status.textContent = "Your browser blocked the sign-in window; allow pop-ups for this page and try again.";
    }
  });

  // A framing page that mints embed tokens answers this with one. It goes only to allowed origins
  // (postMessage drops a message whose target origin is not the parent's).
  if (window.parent !== window) {
    origins.forEach(function (origin) {
      window.parent.postMessage({ type: "beacon:ready" }, origin);
    });
  }
})();
