// The publishing desk's audience builder and live count.
//
// The builder is a plain form that works without JavaScript: each criterion of a segment is a list
// of checkboxes (PREFIX-INDEX-FIELD), and saving shows the count. This script makes it what people
// expect: each segment becomes chips with one type-ahead search over every criterion's names
// (country and group names shown, codes stored: the checkboxes stay the form's values), segments and
// exclusions can be added and removed, and, for everyone who may write posts, the exact headcount
// and breakdown follow every change (POST /api/v1/audiences/preview, debounced; the first 403 turns it off).
// Everything is built with createElement/textContent: no HTML from strings, no inline styles.
(function () {
  "use strict";

  var form = document.querySelector("form[data-audience-preview-url]");
  if (!form) {
    return;
  }
  var url = form.getAttribute("data-audience-preview-url");
  // The builder's own words, in the person's language, from the page (templates/intranet/publish/edit.html).
  var wordsEl = document.getElementById("publish-words");
  var WORDS = wordsEl ? JSON.parse(wordsEl.textContent) : {};
  function say(key, fallback, values) {
    var text = WORDS[key] || fallback;
    Object.keys(values || {}).forEach(function (name) { text = text.split("%(" + name + ")s").join(values[name]); });
    return text;
  }
  var summary = document.getElementById("audience-summary");
  var countEl = document.getElementById("audience-count");
  var errorEl = document.getElementById("audience-error");
  var breakdownEl = document.getElementById("audience-breakdown");
  var DIMENSIONS = ["departments", "divisions", "regions", "countries", "offices", "groups", "reports_to"];
  var DELAY_MS = 300;
  var MAX_RESULTS = 50;
  var timer = null;
  var latest = 0;
  var uid = 0;
  // The page says whether this person may count live (people who may write posts); asking anyway would only
  // collect a 403 and a console error.
  var live = form.getAttribute("data-live-count") === "on";
  var editable = !form.querySelector("fieldset[disabled]");

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function fold(text) {
    return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }

  // ------------------------------------------------------------------------------------------
  // Reading the builder: the same fields publish.py reads
  // ------------------------------------------------------------------------------------------

  function segmentValue(fieldset) {
    var id = fieldset.getAttribute("data-segment");
    var segment = {};
    DIMENSIONS.forEach(function (dimension) {
      var boxes = fieldset.querySelectorAll('input[name="' + id + "-" + dimension + '"]:checked');
      if (boxes.length) {
        segment[dimension] = Array.prototype.map.call(boxes, function (box) { return box.value; });
      }
    });
    ["level_min", "level_max", "hired_within_days"].forEach(function (bound) {
      var input = fieldset.querySelector('[name="' + id + "-" + bound + '"]');
      if (input && /^\d+$/.test(input.value.trim())) {
        segment[bound] = parseInt(input.value, 10);
      }
    });
    return segment;
  }

  function segments(prefix) {
    var out = [];
    form.querySelectorAll('fieldset[data-segment^="' + prefix + '-"]').forEach(function (fieldset) {
      var segment = segmentValue(fieldset);
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

  // ------------------------------------------------------------------------------------------
  // The count panel: state "empty" (nothing chosen), "chosen" (not counted yet), "counted"
  // ------------------------------------------------------------------------------------------

  function setState(state) {
    summary.setAttribute("data-state", state);
  }

  function renderBreakdown(data) {
    breakdownEl.replaceChildren();
    [["by_department", say("department", "Department")], ["by_region", say("region", "Region")],
     ["by_level", say("level", "Level")]].forEach(function (pair) {
      var box = el("div");
      box.appendChild(el("h3", "", pair[1]));
      var list = el("ul");
      Object.keys(data[pair[0]] || {}).forEach(function (key) {
        var item = el("li");
        item.appendChild(el("span", "", pair[0] === "by_level" && key !== "unknown" ? say("level_n", "Level %(level)s", { level: key })
                                        : key === "unknown" ? say("unknown", "unknown") : key));
        item.appendChild(el("span", "n", String(data[pair[0]][key])));
        list.appendChild(item);
      });
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
      setState("empty");
      return;
    }
    if (!live) {
      setState("chosen");
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
        setState("counted");
      } else if (answer.status === 403) {
        live = false;
        setState("chosen");
      } else {
        countEl.textContent = "—";
        breakdownEl.replaceChildren();
        setState("error");
        errorEl.textContent = (answer.body.error && answer.body.error.message) || say("count_failed", "The audience could not be counted.");
      }
    }).catch(function () {
      if (ticket === latest) {
        countEl.removeAttribute("aria-busy");
        setState("error");
        errorEl.textContent = say("count_network", "The audience could not be counted (network error).");
      }
    });
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, DELAY_MS);
  }

  // ------------------------------------------------------------------------------------------
  // Chips with type-ahead, one search box per segment
  // ------------------------------------------------------------------------------------------

  function changed(box) {
    box.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function enhance(fieldset) {
    var boxes = Array.prototype.slice.call(fieldset.querySelectorAll(".criterion input[type=checkbox]"));
    var options = boxes.map(function (box) {
      var criterion = box.closest(".criterion");
      var kind = criterion.getAttribute("data-dimension-label");
      var label = box.getAttribute("data-label") || box.value;
      return { box: box, label: label, kind: kind, key: fold(label + " " + box.value + " " + kind) };
    });
    var id = "picker-" + (++uid);
    var picker = el("div", "picker");
    var chips = el("ul", "chips");
    chips.setAttribute("aria-label", say("chosen", "Chosen"));
    var combo = el("div", "combo");
    var input = el("input", "picker-search");
    input.type = "text";
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", id);
    input.setAttribute("autocomplete", "off");
    input.placeholder = say("search_placeholder", "Search departments, countries, groups…");
    input.setAttribute("aria-label", say("search_label", "%(segment)s: search departments, divisions, regions, countries, offices and groups",
                                         { segment: fieldset.querySelector("legend").textContent.replace(/\s+/g, " ").trim() }));
    var list = el("ul", "picker-results");
    list.id = id;
    list.setAttribute("role", "listbox");
    list.hidden = true;
    combo.appendChild(input);
    combo.appendChild(list);
    picker.appendChild(chips);
    picker.appendChild(combo);
    fieldset.insertBefore(picker, fieldset.querySelector(".criteria"));
    fieldset.classList.add("enhanced");
    var shown = [];
    var active = -1;

    function renderChips() {
      chips.replaceChildren();
      options.forEach(function (o) {
        if (!o.box.checked) { return; }
        var chip = el("li", "chip");
        chip.appendChild(el("span", "chip-kind", o.kind));
        chip.appendChild(el("span", "chip-label", o.label));
        var remove = el("button", "chip-remove", "×");
        remove.type = "button";
        remove.setAttribute("aria-label", say("remove_chip", "Remove %(kind)s %(label)s", { kind: o.kind.toLowerCase(), label: o.label }));
        remove.addEventListener("click", function () {
          o.box.checked = false;
          changed(o.box);
          input.focus();
        });
        chip.appendChild(remove);
        chips.appendChild(chip);
      });
    }

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }

    function highlight(index) {
      var items = list.querySelectorAll("[role=option]");
      items.forEach(function (item, i) { item.setAttribute("aria-selected", i === index ? "true" : "false"); });
      active = index;
      if (index >= 0 && items[index]) {
        input.setAttribute("aria-activedescendant", items[index].id);
        items[index].scrollIntoView({ block: "nearest" });
      }
    }

    function open() {
      var words = fold(input.value).split(/\s+/).filter(Boolean);
      shown = options.filter(function (o) {
        return !o.box.checked && words.every(function (w) { return o.key.indexOf(w) !== -1; });
      }).slice(0, MAX_RESULTS);
      list.replaceChildren();
      if (!shown.length) {
        var none = el("li", "picker-empty", words.length ? say("no_match", "Nothing matches “%(query)s”.", { query: input.value.trim() })
                                                       : say("all_chosen", "Everything is chosen."));
        list.appendChild(none);
      }
      shown.forEach(function (o, i) {
        var item = el("li", "picker-option");
        item.id = id + "-" + i;
        item.setAttribute("role", "option");
        item.appendChild(el("span", "", o.label));
        item.appendChild(el("span", "chip-kind", o.kind));
        // mousedown, not click: the input must not lose focus (and close the list) first.
        item.addEventListener("mousedown", function (event) {
          event.preventDefault();
          choose(o);
        });
        list.appendChild(item);
      });
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      highlight(shown.length && words.length ? 0 : -1);
    }

    function choose(o) {
      o.box.checked = true;
      changed(o.box);
      input.value = "";
      close();
      input.focus();
    }

    input.addEventListener("input", open);
    input.addEventListener("click", open); // browse everything; focusing alone (after a chip is removed) does not
    input.addEventListener("blur", close);
    input.addEventListener("keydown", function (event) {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        if (list.hidden) { open(); }
        var step = event.key === "ArrowDown" ? 1 : -1;
        highlight(Math.max(0, Math.min(shown.length - 1, active + step)));
      } else if (event.key === "Enter") {
        event.preventDefault(); // never submit the post from the search box
        if (active >= 0 && shown[active]) { choose(shown[active]); }
      } else if (event.key === "Escape") {
        close();
      } else if (event.key === "Backspace" && input.value === "") {
        var last = options.filter(function (o) { return o.box.checked; }).pop();
        if (last) {
          last.box.checked = false;
          changed(last.box);
        }
      }
    });
    fieldset.addEventListener("change", renderChips);
    renderChips();
  }

  // ------------------------------------------------------------------------------------------
  // Adding and removing segments
  // ------------------------------------------------------------------------------------------

  function isEmpty(fieldset) {
    return !Object.keys(segmentValue(fieldset)).length;
  }

  function renumber(container) {
    // The same words as the page renders without this script (templates/intranet/publish/_audience.html).
    var words = container === exclude
      ? [say("leave_out", "Leave out people who match"), say("also_leave_out", "Also leave out people who match")]
      : [say("include", "People who match"), say("or_include", "Or people who match")];
    container.querySelectorAll("fieldset.segment").forEach(function (fieldset, i) {
      fieldset.querySelector(".segment-title").textContent = words[i === 0 ? 0 : 1];
    });
  }

  function addRemoveButton(fieldset, container) {
    var remove = el("button", "link remove-segment", say("remove_group", "Remove group"));
    remove.type = "button";
    remove.addEventListener("click", function () {
      fieldset.remove();
      renumber(container);
      syncButtons();
      schedule();
    });
    fieldset.querySelector(".levels").appendChild(remove);
  }

  function nextIndex(prefix) {
    var max = -1;
    form.querySelectorAll('fieldset[data-segment^="' + prefix + '-"]').forEach(function (fieldset) {
      max = Math.max(max, parseInt(fieldset.getAttribute("data-segment").split("-")[1], 10));
    });
    return max + 1;
  }

  function addSegment(prefix, container, template) {
    var index = String(nextIndex(prefix));
    var fragment = template.content.cloneNode(true);
    fragment.querySelectorAll("[name], [data-segment]").forEach(function (node) {
      ["name", "data-segment"].forEach(function (attr) {
        if (node.hasAttribute(attr)) {
          node.setAttribute(attr, node.getAttribute(attr).replace("-__i__", "-" + index));
        }
      });
    });
    var fieldset = fragment.querySelector("fieldset.segment");
    container.appendChild(fragment);
    setUp(fieldset, container);
    renumber(container);
    syncButtons();
    fieldset.querySelector(".picker-search").focus();
    return fieldset;
  }

  function setUp(fieldset, container) {
    enhance(fieldset);
    addRemoveButton(fieldset, container);
  }

  var include = document.getElementById("include-segments");
  var exclude = document.getElementById("exclude-segments");
  var addInclude = document.getElementById("add-include");
  var addExclude = document.getElementById("add-exclude");

  function syncButtons() {
    // One include segment always stays (the place to start); removing the last one is pointless.
    var includes = include.querySelectorAll("fieldset.segment");
    includes.forEach(function (fieldset) {
      var remove = fieldset.querySelector(".remove-segment");
      if (remove) { remove.hidden = includes.length < 2; }
    });
    if (addExclude) {
      addExclude.textContent = exclude.querySelector("fieldset.segment") ? say("leave_out_more", "Leave out more people")
                                                                         : say("leave_out_some", "Leave out some people");
    }
  }

  if (editable && include && exclude) {
    // The page renders one blank segment of each kind for browsers without this script; here
    // blank ones are dropped (keeping one include segment) and come back with the add buttons.
    [include, exclude].forEach(function (container) {
      container.querySelectorAll("fieldset.segment").forEach(function (fieldset) {
        var keepOne = container === include && container.querySelectorAll("fieldset.segment").length === 1;
        if (isEmpty(fieldset) && !keepOne) {
          fieldset.remove();
        }
      });
      container.querySelectorAll("fieldset.segment").forEach(function (fieldset) { setUp(fieldset, container); });
      renumber(container);
    });
    if (addInclude) {
      addInclude.hidden = false;
      addInclude.addEventListener("click", function () {
        addSegment("inc", include, document.getElementById("segment-template-inc"));
      });
    }
    if (addExclude) {
      addExclude.hidden = false;
      addExclude.addEventListener("click", function () {
        addSegment("exc", exclude, document.getElementById("segment-template-exc"));
      });
    }
    syncButtons();
  }

  form.addEventListener("change", function (event) {
    if (event.target.closest("fieldset.segment, #all-staff")) { schedule(); }
  });
  form.addEventListener("input", function (event) {
    if (event.target.closest(".levels")) { schedule(); }
  });
  // Beside the criteria there is room for the breakdown; pinned above them on a phone, it stays folded.
  var breakdownBox = document.getElementById("audience-breakdown-box");
  if (breakdownBox && window.matchMedia("(min-width: 761px)").matches) {
    breakdownBox.open = true;
  }
  // A page re-shown after an error keeps the choices: count them now rather than say "no audience".
  if (summary.getAttribute("data-state") === "chosen" && live) {
    refresh();
  }
})();
