// Beacon's embeddable feed widget, for intranet pages that are not Beacon's (any web page).
//
//   <div id="news"></div>
//   <script src="https://beacon.example.com/_beacon/static/intranet/js/widget.js" defer
//           data-target="#news" data-token-url="/beacon-token"></script>
//
// It draws the signed-in person's feed, with rating controls and the must-read banner, inside a
// Shadow DOM (the host page's styles stay out, its CSS custom properties --beacon-* come in), sized
// to its container. Who is reading: with data-token-url, a token the host's backend mints (fetched
// from the host's own origin, kept in memory, sent as "Authorization: Bearer"); without it, the
// person's Beacon session cookie (the host must be same-site with Beacon). The page's origin must
// be in Beacon's INTRANET_EMBED_ORIGINS. No inline scripts or styles, no eval: it works under a
// strict Content-Security-Policy (add Beacon's origin to script-src, style-src and connect-src).
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src) {
    return;
  }
  var scriptUrl = new URL(script.src);
  var marker = scriptUrl.pathname.indexOf("/_beacon/static/");
  var beaconRoot = scriptUrl.origin + (marker >= 0 ? scriptUrl.pathname.slice(0, marker) : "");
  var apiRoot = beaconRoot + "/api/v1";
  var stylesheet = new URL("../css/widget.css", scriptUrl).href;
  var counter = 0;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) {
        return;
      }
      if (name === "text") {
        node.textContent = value;
      } else if (name === "class") {
        node.className = value;
      } else {
        node.setAttribute(name, value === true ? "" : value);
      }
    });
    (children || []).forEach(function (child) {
      if (child) {
        node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
      }
    });
    return node;
  }

  function hidden(text) {
    return el("span", { class: "bw-sr", text: text });
  }

  // The widget's own words come from Beacon in the reader's language (GET /api/v1/embed/messages);
  // the English here is only what is shown if that request fails.
  var ENGLISH = {
    your_news: "Your news", for_viewer: "for %(name)s", loading: "Loading your news…",
    caught_up: "You're all caught up: nothing for you right now.", more_posts: "More posts", must_read: "Must read",
    acknowledged: "Acknowledged", new_tab: "(opens in a new tab)", sign_in_prompt: "Sign in to see your news.",
    sign_in: "Sign in", no_identity: "This page could not say who you are (%(status)s).",
    went_wrong: "Something went wrong (%(status)s).", saving: "Saving…",
    not_saved: "Not saved; check your connection and try again.", rating_removed: "Rating removed.",
    rated_stars: "Saved: you rated it %(stars)s of 5.", found_helpful: "Saved: you found it helpful.",
    found_not_helpful: "Saved: you found it not helpful.", rate_post: "Rate this post",
    rate_post_titled: "Rate this post: %(title)s", remove_rating: "Remove my rating", helpful: "Helpful",
    not_helpful: "Not helpful", n_of_5: "%(n)s of 5", read_this: "I have read this",
    ack_done: "Acknowledged. The author and admins can see that you did.",
    you_acknowledged: "You acknowledged “%(title)s”.", stars_1: "1 star", stars_2: "2 stars", stars_3: "3 stars",
    stars_4: "4 stars", stars_5: "5 stars",
  };

  function Widget(host, options) {
    this.host = host;
    this.options = options;
    this.id = "bw" + (++counter);
    this.token = null;
    this.csrf = null;
    this.cursor = null;
    this.words = ENGLISH;
    this.language = undefined;  // the browser's, until Beacon says which language the words are in
    var root = host.shadowRoot || host.attachShadow({ mode: "open" });
    root.textContent = "";
    root.appendChild(el("link", { rel: "stylesheet", href: stylesheet }));
    var level = Math.min(Math.max(parseInt(options.headingLevel || "2", 10) || 2, 1), 5);
    this.itemLevel = "h" + (level + 1);
    var titleId = this.id + "-title";
    this.status = el("p", { class: "bw-status", role: "status", "aria-live": "polite" });
    this.bannerList = el("ul", { class: "bw-banner-list" });
    this.banner = el("section", { class: "bw-banner", "aria-labelledby": this.id + "-must", hidden: true }, [
      el(this.itemLevel, { id: this.id + "-must", class: "bw-banner-title", text: "" }),
      this.bannerList,
    ]);
    this.list = el("ol", { class: "bw-feed", "aria-labelledby": titleId });
    this.more = el("button", { type: "button", class: "bw-button bw-secondary bw-more", hidden: true, text: "" });
    this.who = el("span", { class: "bw-who" });
    this.frame = el("section", { class: "bw", "aria-labelledby": titleId, "aria-busy": "true" }, [
      el("div", { class: "bw-head" }, [el("h" + level, { id: titleId, class: "bw-title", text: options.title || "" }), this.who]),
      this.status, this.banner, this.list, this.more,
    ]);
    root.appendChild(this.frame);
    var self = this;
    this.more.addEventListener("click", function () { self.load(self.cursor); });
    this.call("GET", "/embed/messages").then(function (answer) {
      self.words = answer.words;
      self.language = answer.language;
    }, function () { /* keep the English */ }).then(function () {
      self.banner.querySelector(".bw-banner-title").textContent = self.say("must_read");
      self.more.textContent = self.say("more_posts");
      if (!options.title) {
        self.frame.querySelector(".bw-title").textContent = self.say("your_news");
      }
      self.load(null);
    });
  }

  // One of the widget's texts, its %(name)s placeholders filled from *values*.
  Widget.prototype.say = function (key, values) {
    var text = this.words[key] || ENGLISH[key] || key;
    Object.keys(values || {}).forEach(function (name) { text = text.split("%(" + name + ")s").join(values[name]); });
    return text;
  };

  Widget.prototype.describe = function (rating) {
    if (!rating) {
      return this.say("rating_removed");
    }
    if (rating.stars) {
      return this.say("rated_stars", { stars: rating.stars });
    }
    return this.say(rating.thumb === "up" ? "found_helpful" : "found_not_helpful");
  };

  // The token the host's backend minted for its signed-in user (kept in memory only).
  Widget.prototype.getToken = function (fresh) {
    var self = this;
    if (!self.options.tokenUrl && !self.options.getToken) {
      return Promise.resolve(null);
    }
    if (self.token && !fresh) {
      return Promise.resolve(self.token);
    }
    var asked = self.options.getToken ? Promise.resolve(self.options.getToken()) :
      fetch(self.options.tokenUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) {
            throw new Error(self.say("no_identity", { status: response.status }));
          }
          return response.json();
        }).then(function (data) { return data.token; });
    return asked.then(function (token) {
      self.token = token;
      return token;
    });
  };

  Widget.prototype.call = function (method, path, body, retried) {
    var self = this;
    return self.getToken(retried).then(function (token) {
      var headers = { Accept: "application/json" };
      if (body !== undefined) {
        headers["Content-Type"] = "application/json";
      }
      if (token) {
        headers.Authorization = "Bearer " + token;
      } else if (method !== "GET" && self.csrf) {
        headers["X-CSRFToken"] = self.csrf;
      }
      return fetch(apiRoot + path, {
        method: method, headers: headers, mode: "cors",
        // With a token, no cookies: the request is the token's alone (and needs no CSRF token).
        credentials: token ? "omit" : "include",
        body: body === undefined ? undefined : JSON.stringify(body),
      }).then(function (response) {
        if (response.status === 401 && token && !retried) {
          return self.call(method, path, body, true);  // expired: ask the host for a fresh token once
        }
        if (response.status === 204) {
          return null;
        }
        return response.json().then(function (data) {
          if (!response.ok) {
            var error = new Error((data.error && data.error.message) || self.say("went_wrong", { status: response.status }));
            error.status = response.status;
            throw error;
          }
          return data;
        });
      });
    });
  };

  Widget.prototype.load = function (cursor) {
    var self = this;
    self.frame.setAttribute("aria-busy", "true");
    self.status.textContent = self.say("loading");
    return self.call("GET", "/embed/feed" + (cursor ? "?cursor=" + encodeURIComponent(cursor) : ""))
      .then(function (page) {
        self.csrf = page.csrf_token;
        self.cursor = page.next_cursor;
        self.who.textContent = self.say("for_viewer", { name: page.viewer });
        if (!cursor) {
          self.list.textContent = "";
          self.bannerList.textContent = "";
        }
        page.items.forEach(function (item) { self.list.appendChild(self.item(item)); });
        self.refreshBanner();
        self.more.hidden = !page.next_cursor;
        self.status.textContent = page.items.length || cursor ? "" : self.say("caught_up");
      }, function (error) {
        self.status.textContent = "";
        self.status.appendChild(document.createTextNode(
          (error.status === 401 ? self.say("sign_in_prompt") : error.message) + " "));
        if (error.status === 401 && !self.options.tokenUrl) {
          self.status.appendChild(el("a", { href: beaconRoot + "/", target: "_blank", rel: "noopener" },
            [self.say("sign_in"), hidden(" " + self.say("new_tab"))]));
        }
      }).then(function () {
        self.frame.setAttribute("aria-busy", "false");
      });
  };

  Widget.prototype.item = function (post) {
    var self = this;
    var headingId = self.id + "-post-" + post.id;
    var status = el("p", { class: "bw-item-status", role: "status", "aria-live": "polite" });
    var badge = post.must_read ? el("span", {
      class: "bw-badge " + (post.acknowledged ? "bw-ok" : "bw-must"),
      text: post.acknowledged ? self.say("acknowledged") : self.say("must_read"),
    }) : null;
    var published = post.published_at ? el("time", {
      datetime: post.published_at, text: new Date(post.published_at).toLocaleDateString(self.language, { day: "numeric", month: "short" }),
    }) : null;
    var article = el("article", { "aria-labelledby": headingId }, [
      el("p", { class: "bw-meta" }, [el("span", { class: "bw-topic", text: post.topic }), badge, published]),
      el(self.itemLevel, { id: headingId, class: "bw-post-title" }, [
        el("a", { href: post.url, target: "_blank", rel: "noopener" }, [post.title, hidden(" " + self.say("new_tab"))]),
      ]),
      el("p", { class: "bw-summary", text: post.summary }),
      post.rating_style === "thumbs" ? self.thumbs(post, status) : self.stars(post, status),
      status,
    ]);
    var li = el("li", { class: "bw-item" + (post.must_read && !post.acknowledged ? " bw-pinned" : "") + (post.read ? "" : " bw-unread"),
                        "data-post-id": String(post.id) }, [article]);
    li.beaconPost = post;
    li.beaconBadge = badge;
    li.beaconStatus = status;
    return li;
  };

  Widget.prototype.rate = function (post, status, body) {
    var self = this;
    status.textContent = self.say("saving");
    var path = "/posts/" + post.id + "/rating";
    return this.call(body ? "PUT" : "DELETE", path, body || undefined).then(function (rating) {
      post.my_rating = rating;
      status.textContent = self.describe(rating);
      return rating;
    }, function (error) {
      status.textContent = error.message || self.say("not_saved");
      return undefined;
    });
  };

  Widget.prototype.stars = function (post, status) {
    var self = this;
    var name = self.id + "-stars-" + post.id;
    var labels = [];
    var group = el("div", { class: "bw-stars" });
    for (var n = 1; n <= 5; n++) {
      var id = name + "-" + n;
      var checked = post.my_rating && post.my_rating.stars === n;
      group.appendChild(el("input", { type: "radio", class: "bw-sr-input", id: id, name: name, value: String(n), checked: checked }));
      var label = el("label", { for: id, title: self.say("n_of_5", { n: n }) }, [el("span", { "aria-hidden": "true", text: "★" }),
        hidden(self.say("stars_" + n))]);
      labels.push(label);
      group.appendChild(label);
    }
    function paint(value) {
      labels.forEach(function (label, index) { label.classList.toggle("bw-on", index < value); });
    }
    paint(post.my_rating ? post.my_rating.stars || 0 : 0);
    var remove = el("button", { type: "button", class: "bw-link", hidden: !post.my_rating }, [self.say("remove_rating"), hidden(": " + post.title)]);
    var timer = null;
    group.addEventListener("change", function (event) {
      var value = parseInt(event.target.value, 10);
      paint(value);
      // Arrow keys walk through the stars one change at a time: save where the person stops.
      window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        self.rate(post, status, { stars: value }).then(function (rating) {
          if (rating) {
            remove.hidden = false;
          }
        });
      }, 400);
    });
    remove.addEventListener("click", function () {
      self.rate(post, status, null).then(function (rating) {
        if (rating === null) {
          group.querySelectorAll("input").forEach(function (input) { input.checked = false; });
          paint(0);
          remove.hidden = true;
          group.querySelector("input").focus();
        }
      });
    });
    return el("fieldset", { class: "bw-rating" }, [
      el("legend", {}, [self.say("rate_post"), hidden(": " + post.title)]), group, remove,
    ]);
  };

  Widget.prototype.thumbs = function (post, status) {
    var self = this;
    var buttons = [["up", self.say("helpful")], ["down", self.say("not_helpful")]].map(function (choice) {
      var pressed = !!(post.my_rating && post.my_rating.thumb === choice[0]);
      var button = el("button", { type: "button", class: "bw-thumb", "aria-pressed": pressed ? "true" : "false", text: choice[1] });
      button.addEventListener("click", function () {
        // A toggle: pressing the pressed thumb takes it back.
        var undo = button.getAttribute("aria-pressed") === "true";
        self.rate(post, status, undo ? null : { thumb: choice[0] }).then(function (rating) {
          if (rating !== undefined) {
            buttons.forEach(function (other, index) {
              var value = index === 0 ? "up" : "down";
              other.setAttribute("aria-pressed", rating && rating.thumb === value ? "true" : "false");
            });
          }
        });
      });
      return button;
    });
    return el("div", { class: "bw-rating bw-thumbs", role: "group", "aria-label": self.say("rate_post_titled", { title: post.title }) }, buttons);
  };

  // The banner: every unacknowledged must-read on the page, each with its acknowledge button.
  Widget.prototype.refreshBanner = function () {
    var self = this;
    self.bannerList.textContent = "";
    self.list.querySelectorAll(".bw-item.bw-pinned").forEach(function (li) {
      var post = li.beaconPost;
      var button = el("button", { type: "button", class: "bw-button" }, [self.say("read_this"), hidden(": " + post.title)]);
      button.addEventListener("click", function () {
        button.disabled = true;
        li.beaconStatus.textContent = self.say("saving");
        self.call("POST", "/posts/" + post.id + "/acknowledge", {}).then(function () {
          post.acknowledged = true;
          li.classList.remove("bw-pinned");
          li.beaconBadge.className = "bw-badge bw-ok";
          li.beaconBadge.textContent = self.say("acknowledged");
          li.beaconStatus.textContent = self.say("ack_done");
          self.refreshBanner();
          self.status.textContent = self.say("you_acknowledged", { title: post.title });
          var next = self.bannerList.querySelector("button");
          (next || self.list.querySelector("a")).focus();
        }, function (error) {
          button.disabled = false;
          li.beaconStatus.textContent = error.message;
        });
      });
      self.bannerList.appendChild(el("li", {}, [el("span", { class: "bw-banner-post", text: post.title }), button]));
    });
    self.banner.hidden = !self.bannerList.children.length;
  };

  window.BeaconWidget = window.BeaconWidget || {
    /** Draw the widget in *element*; options: tokenUrl or getToken (a function returning a token or its promise), title, headingLevel. */
    mount: function (element, options) {
      return new Widget(element, options || {});
    },
  };

  var target = script.getAttribute("data-target");
  var host = target ? document.querySelector(target) : null;
  if (!host && !script.hasAttribute("data-manual")) {
    host = document.createElement("div");
    script.parentNode.insertBefore(host, script.nextSibling);
  }
  if (host) {
    window.BeaconWidget.mount(host, {
      tokenUrl: script.getAttribute("data-token-url"),
      title: script.getAttribute("data-title"),
      headingLevel: script.getAttribute("data-heading-level"),
    });
  }
})();
