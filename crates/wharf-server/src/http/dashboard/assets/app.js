// Wharf dashboard: keeps the page's live regions current from the account's event stream
// (Server-Sent Events). No polling: a region is fetched again only when an event it shows
// arrives. Regions are elements with `data-region` and an id; the events a page cares
// about are listed in <body data-live>.
(function () {
  "use strict";
  var live = (document.body.dataset.live || "").split(" ").filter(Boolean);
  var tail = document.getElementById("tail");
  if (!live.length && !tail) return;
  var state = document.getElementById("live-state");
  var busy = false;
  var again = false;

  function say(text) {
    if (state) state.textContent = text;
  }

  // Fetches this page again and swaps in its regions (forms outside them keep their input).
  function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    fetch(location.href, { credentials: "same-origin" })
      .then(function (r) {
        if (r.redirected || !r.ok) throw new Error("status " + r.status);
        return r.text();
      })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        document.querySelectorAll("[data-region]").forEach(function (old) {
          var fresh = doc.getElementById(old.id);
          if (fresh) old.replaceWith(document.importNode(fresh, true));
        });
      })
      .catch(function () {
        say("Could not refresh; reload the page.");
      })
      .then(function () {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  function append(type, data) {
    var item = document.createElement("li");
    var head = document.createElement("strong");
    head.textContent = type;
    var body = document.createElement("pre");
    try {
      body.textContent = JSON.stringify(JSON.parse(data), null, 2);
    } catch (e) {
      body.textContent = data;
    }
    item.appendChild(head);
    item.appendChild(body);
    tail.insertBefore(item, tail.firstChild);
    while (tail.children.length > 200) tail.removeChild(tail.lastChild);
  }

  var source = new EventSource("/dashboard/stream");
  source.onopen = function () {
    say("Live.");
    document.body.dataset.stream = "open";
    // The stream starts at the account's newest event: what changed between this page's
    // rendering (or a lost connection) and now is fetched once.
    if (live.length) refresh();
  };
  source.onerror = function () {
    say("Live updates interrupted; reconnecting…");
  };
  live.forEach(function (type) {
    source.addEventListener(type, refresh);
  });
  if (tail) {
    (tail.dataset.types || "").split(" ").filter(Boolean).forEach(function (type) {
      source.addEventListener(type, function (e) {
        append(type, e.data);
      });
    });
  }
})();
