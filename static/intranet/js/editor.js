// Beacon's rich-text editor: turns <div data-editor-for="FIELD"> into a Quill editor and keeps
// the form field named FIELD (a textarea or hidden input in the same form) in sync, so a plain
// form submit sends the HTML. Without JavaScript the textarea stays visible and still works.
// The server sanitizes the HTML on save (intranet/sanitize.py): nothing here is trusted.
//
//   <textarea name="body_html">{{ post.body_html }}</textarea>
//   <div data-editor-for="body_html" data-upload-url="{{ url_for(...) }}"></div>
//
// data-upload-url is optional: with it the toolbar gets an image button that POSTs the chosen
// file (multipart field "file") with the X-CSRFToken header from <meta name="csrf-token"> and
// inserts the image at the URL the server answers with, as {"url": "/..."}.
//
// Load order: vendor/quill.js (and vendor/quill.snow.css), then this file.
(function () {
  "use strict";

  var IMAGE_TYPES = "image/png,image/jpeg,image/gif,image/webp";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // Quill 2.0.3's getSemanticHTML() writes every space as &nbsp; (slab/quill#4509): undo that,
  // so stored bodies stay small and wrap normally. Lists come out as real <ul>/<ol> this way.
  function semanticHtml(quill) {
    if (quill.getLength() <= 1) {
      return "";
    }
    return quill.getSemanticHTML().replace(/&nbsp;/g, " ");
  }

  function fieldFor(container, name) {
    var scope = container.closest("form") || document;
    var field = scope.querySelector('[name="' + CSS.escape(name) + '"]');
    if (!field) {
      field = document.createElement("input");
      field.type = "hidden";
      field.name = name;
      container.insertAdjacentElement("afterend", field);
    }
    return field;
  }

  // POST the file to `url`; resolve with the image URL from the JSON answer.
  function upload(url, file) {
    var body = new FormData();
    body.append("file", file);
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
      body: body,
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("upload failed with HTTP " + response.status);
      }
      return response.json();
    }).then(function (answer) {
      if (!answer || typeof answer.url !== "string") {
        throw new Error("the upload answer has no url");
      }
      return answer.url;
    });
  }

  // Toolbar handler for the image button: choose a file, upload it, insert it at the cursor.
  function imageHandler(quill, uploadUrl) {
    return function () {
      var picker = document.createElement("input");
      picker.type = "file";
      picker.accept = IMAGE_TYPES;
      picker.addEventListener("change", function () {
        var file = picker.files && picker.files[0];
        if (!file) {
          return;
        }
        var range = quill.getSelection(true);
        upload(uploadUrl, file).then(function (src) {
          quill.insertEmbed(range.index, "image", src, "user");
          quill.setSelection(range.index + 1, 0, "silent");
        }).catch(function (error) {
          console.error("Beacon editor: %s", error);
          window.alert("The image could not be uploaded. Please try again.");
        });
      });
      picker.click();
    };
  }

  function toolbar(withImage) {
    var groups = [
      [{ header: [2, 3, false] }],
      ["bold", "italic", "underline"],
      ["link", "blockquote", "code"],
      [{ list: "ordered" }, { list: "bullet" }],
      ["clean"],
    ];
    if (withImage) {
      groups.splice(3, 0, ["image"]);
    }
    return groups;
  }

  function attach(container) {
    var name = container.getAttribute("data-editor-for");
    var uploadUrl = container.getAttribute("data-upload-url");
    var field = fieldFor(container, name);
    var quill = new window.Quill(container, {
      theme: "snow",
      modules: { toolbar: toolbar(Boolean(uploadUrl)) },
      placeholder: container.getAttribute("data-placeholder") || "",
    });
    // Quill's style picker is a role="button" span with no name; screen readers announce it blank.
    container.parentNode.querySelectorAll(".ql-picker-label").forEach(function (label) {
      label.setAttribute("aria-label", "Text style");
    });
    if (uploadUrl) {
      // Replaces Quill's default, which would inline the picture as a data: URL.
      quill.getModule("toolbar").addHandler("image", imageHandler(quill, uploadUrl));
    }
    if (field.value) {
      quill.setContents(quill.clipboard.convert({ html: field.value }), "silent");
    }
    if (field.tagName === "TEXTAREA") {
      field.hidden = true;
    }
    var sync = function () { field.value = semanticHtml(quill); };
    quill.on("text-change", sync);
    if (field.form) {
      field.form.addEventListener("submit", sync);
    }
    container.beaconEditor = quill;
    return quill;
  }

  function attachAll() {
    if (!window.Quill) {
      console.error("Beacon editor: Quill is not loaded; include vendor/quill.js first");
      return;
    }
    Array.prototype.forEach.call(
      document.querySelectorAll("div[data-editor-for]:not(.ql-container)"), attach
    );
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", attachAll);
  } else {
    attachAll();
  }
})();
