// Rating forms (templates/intranet/feed/_rating.html): each choice is saved at once through the
// JSON API, and the status line (a live region) says what happened. Without this script the same
// forms post to the page route and come back. No inline scripts: Beacon's CSP allows none.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";

  function describe(rating) {
    if (!rating) {
      return "Rating removed.";
    }
    if (rating.stars) {
      return "Saved: you rated it " + rating.stars + " of 5.";
    }
    return "Saved: you found it " + (rating.thumb === "up" ? "helpful." : "not helpful.");
  }

  function send(form, body) {
    var status = form.querySelector(".rating-status");
    var url = form.getAttribute("data-rating-url");
    status.textContent = "Saving…";
    return fetch(url, {
      method: body ? "PUT" : "DELETE",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: body ? JSON.stringify(body) : undefined,
    }).then(function (response) {
      if (response.status === 204) {
        return null;
      }
      return response.json().then(function (data) {
        if (!response.ok) {
          var wait = response.headers.get("Retry-After");
          throw new Error((data.error && data.error.message) || "Not saved." + (wait ? " Try again in " + wait + " s." : ""));
        }
        return data;
      });
    }).then(function (rating) {
      status.textContent = describe(rating);
      form.classList.toggle("rated", !!rating);
      return rating;
    }, function (error) {
      status.textContent = error.message || "Not saved; check your connection and try again.";
      return undefined;
    });
  }

  function extras(form, body) {
    // The post page shows the comment fields; the feed's compact form carries the person's
    // comment in hidden fields, so changing the stars there keeps it.
    var comment = form.querySelector("[name=comment]");
    if (comment) {
      body.comment = comment.value.trim() || null;
      var signed = form.querySelector("input[name=signed]");
      body.signed = !!signed && (signed.type === "checkbox" ? signed.checked : signed.value === "1");
    }
    return body;
  }

  function clearStars(form) {
    form.querySelectorAll("input[name=stars]").forEach(function (radio) { radio.checked = false; });
  }

  function setThumbs(form, value) {
    form.querySelectorAll("button.thumb").forEach(function (button) {
      button.setAttribute("aria-pressed", button.value === value ? "true" : "false");
    });
  }

  document.querySelectorAll("form.rating[data-rating-url]").forEach(function (form) {
    form.classList.add("enhanced");
    var hasComment = !!form.querySelector("textarea[name=comment]");
    var timer = null;
    form.addEventListener("change", function (event) {
      if (event.target.name === "stars") {
        // Arrow keys walk through the stars one change at a time: save where the person stops.
        window.clearTimeout(timer);
        timer = window.setTimeout(function () {
          var checked = form.querySelector("input[name=stars]:checked");
          if (checked) {
            send(form, extras(form, { stars: parseInt(checked.value, 10) }));
          }
        }, 400);
      }
    });
    form.addEventListener("click", function (event) {
      var button = event.target.closest("button");
      if (!button || !form.contains(button)) {
        return;
      }
      event.preventDefault();
      if (button.name === "withdraw") {
        send(form, null).then(function (rating) {
          if (rating === null) {
            clearStars(form);
            setThumbs(form, null);
          }
        });
      } else if (button.name === "thumb") {
        // A toggle: pressing the pressed thumb takes it back.
        var undo = button.getAttribute("aria-pressed") === "true" && !hasComment;
        send(form, undo ? null : extras(form, { thumb: button.value })).then(function (rating) {
          if (rating !== undefined) {
            setThumbs(form, rating ? rating.thumb : null);
          }
        });
      } else {
        var checked = form.querySelector("input[name=stars]:checked");
        var pressed = form.querySelector("button.thumb[aria-pressed=true]");
        if (checked) {
          send(form, extras(form, { stars: parseInt(checked.value, 10) }));
        } else if (pressed) {
          send(form, extras(form, { thumb: pressed.value }));
        } else {
          form.querySelector(".rating-status").textContent = "Choose a rating first.";
        }
      }
    });
  });
})();
