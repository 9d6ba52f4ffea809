// The publishing desk's live audience count. The audience builder is a plain form (it works
// without JavaScript: saving shows the count); this script rebuilds the audience JSON from the
// same fields whenever one changes, debounced, and asks POST /api/v1/audiences/preview for the
// exact headcount and breakdown. Only comms managers may call that endpoint: for anyone else the
// first 403 turns the live count off. Everything is written with textContent: no HTML is built
// from strings.
(function () {
  "use strict";

  var form = document.querySelector("form[data-audience-preview-url]");
  if (!form) {
    return;
  }
  var url = form.getAttribute("data-audience-preview-url");
  var countEl = document.getElementById("audience-count");
  var errorEl = document.getElementById("audience-error");
  var breakdownEl = document.getElementById("audience-breakdown");
  var DIMENSIONS = ["departments", "divisions", "regions", "countries", "offices", "groups"];
  var DELAY_MS = 300;
  var timer = null;
  var latest = 0;
  // The page says whether this person may count live (comms managers); asking anyway would only
  // collect a 403 and a console error.
  var disabled = form.getAttribute("data-live-count") === "off";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function segments(prefix) {
    var out = [];
    form.querySelectorAll('fieldset[data-segment^="' + prefix + '-"]').forEach(function (fieldset) {
      var id = fieldset.getAttribute("data-segment");
      var segment = {};
      DIMENSIONS.forEach(function (dimension) {
        var select = fieldset.querySelector('[name="' + id + "-" + dimension + '"]');
        var values = select ? Array.prototype.map.call(select.selectedOptions, function (o) { return o.value; }) : [];
        if (values.length) {
          segment[dimension] = values;
        }
      });
      ["level_min", "level_max"].forEach(function (bound) {
        var input = fieldset.querySelector('[name="' + id + "-" + bound + '"]');
        if (input && input.value.trim() !== "") {
          segment[bound] = parseInt(input.value, 10);
        }
      });
      if (Object.keys(segment).length) {
        out.push(segment);
      }
    });
    return out;
  }

  function audience() {
    var result = {};
    var all = form.querySelector('[name="all_staff"]');
    if (all && all.checked) {
      result.all = true;
    } else {
      var include = segments("inc");
      if (include.length) {
        result.segments = include;
      }
    }
    var exclude = segments("exc");
    if (Object.keys(result).length && exclude.length) {
      result.exclude = exclude;
    }
    return Object.keys(result).length ? result : null;
  }

  function renderBreakdown(data) {
    breakdownEl.replaceChildren();
    [["by_department", "Department"], ["by_region", "Region"], ["by_level", "Level"]].forEach(function (pair) {
      var box = document.createElement("div");
      var heading = document.createElement("h3");
      heading.textContent = pair[1];
      var list = document.createElement("ul");
      Object.keys(data[pair[0]] || {}).forEach(function (key) {
        var item = document.createElement("li");
        item.textContent = key + ": " + data[pair[0]][key];
        list.appendChild(item);
      });
      box.appendChild(heading);
      box.appendChild(list);
      breakdownEl.appendChild(box);
    });
  }

  function refresh() {
    var wanted = audience();
    errorEl.textContent = "";
    if (!wanted) {
      countEl.textContent = "—";
      breakdownEl.replaceChildren();
      return;
    }
    var ticket = ++latest;
    countEl.setAttribute("aria-busy", "true");
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ audience: wanted }),
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        return { status: response.status, body: body };
      });
    }).then(function (answer) {
      if (ticket !== latest) {
        return; // a newer request is on its way; never show stale counts
      }
      countEl.removeAttribute("aria-busy");
      if (answer.status === 200) {
        countEl.textContent = String(answer.body.count);
        renderBreakdown(answer.body);
      } else if (answer.status === 403) {
        disabled = true;
      } else {
        countEl.textContent = "—";
        breakdownEl.replaceChildren();
        errorEl.textContent = (answer.body.error && answer.body.error.message) || "The audience could not be counted.";
      }
    }).catch(function () {
      if (ticket === latest) {
        countEl.removeAttribute("aria-busy");
        errorEl.textContent = "The audience could not be counted (network error).";
      }
    });
  }

  function schedule(event) {
    if (disabled || !event.target.closest("fieldset.segment, #all-staff")) {
      return;
    }
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, DELAY_MS);
  }

  form.addEventListener("change", schedule);
  form.addEventListener("input", schedule);
})();
