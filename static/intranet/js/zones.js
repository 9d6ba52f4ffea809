// Time-zone pickers (select[data-zone-picker], see templates/intranet/_zone_picker.html): a search
// box above the grouped list narrows it to the zones whose city, country or name match, and picks
// the first match so the choice is visible at once. Without this script the grouped list works alone.
(function () {
  "use strict";

  function fold(text) {
    return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }

  document.querySelectorAll("select[data-zone-picker]").forEach(function (select) {
    if (select.disabled) {
      return;
    }
    var groups = Array.prototype.map.call(select.querySelectorAll("optgroup"), function (group) {
      return {
        label: group.label,
        options: Array.prototype.map.call(group.querySelectorAll("option"), function (option) {
          return { value: option.value, text: option.textContent,
                   key: fold(option.value.replace(/_/g, " ") + " " + option.textContent + " " + group.label) };
        }),
      };
    });
    // Options outside the groups ("as the directory says") are always offered.
    var loose = Array.prototype.slice.call(select.querySelectorAll(":scope > option"));
    var search = document.createElement("input");
    search.type = "search";
    search.className = "zone-search";
    search.placeholder = "Search a city or country";
    search.setAttribute("aria-label", "Search time zones");
    search.setAttribute("aria-controls", select.id);
    select.parentNode.insertBefore(search, select);

    search.addEventListener("input", function () {
      var words = fold(search.value).split(/\s+/).filter(Boolean);
      function hit(o) { return words.every(function (w) { return o.key.indexOf(w) !== -1; }); }
      var any = groups.some(function (group) { return group.options.some(hit); });
      // Nothing matches: keep the whole list (and the current choice) rather than an empty one.
      search.setAttribute("aria-invalid", any ? "false" : "true");
      var current = select.value;
      var first = null;
      var kept = false;
      select.replaceChildren.apply(select, loose);
      kept = !any; // nothing matches: the whole list, and the choice, stay as they were
      groups.forEach(function (group) {
        var box = document.createElement("optgroup");
        box.label = group.label;
        group.options.forEach(function (o) {
          if (any && !hit(o)) {
            return;
          }
          var option = document.createElement("option");
          option.value = o.value;
          option.textContent = o.text;
          box.appendChild(option);
          first = first === null ? o.value : first;
          kept = kept || o.value === current;
        });
        if (box.children.length) {
          select.appendChild(box);
        }
      });
      select.value = kept ? current : first;
    });
    // Enter in the search box picks, it does not submit the form.
    search.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        select.focus();
      }
    });
  });
})();
