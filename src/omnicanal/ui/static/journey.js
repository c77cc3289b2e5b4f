// Refreshes the journey page's numbers: every element with data-count="<name>" gets the value of that name
// from the JSON the page names in data-poll. Text only (textContent), never markup.
(function () {
  "use strict";
  var root = document.getElementById("journey");
  if (!root) { return; }
  var url = root.getAttribute("data-poll") + window.location.search;
  var every = 1000 * (parseFloat(root.getAttribute("data-every")) || 3);

  function apply(counts) {
    var shown = root.querySelectorAll("[data-count]");
    for (var i = 0; i < shown.length; i++) {
      var name = shown[i].getAttribute("data-count");
      var value = Object.prototype.hasOwnProperty.call(counts, name) ? counts[name] : 0;
      if (shown[i].textContent !== String(value)) { shown[i].textContent = String(value); }
    }
    root.setAttribute("data-refreshed", new Date().toISOString());
  }

  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); throw new Error("session ended"); }
        return response.json();
      })
      .then(function (body) { apply(body.counts || {}); })
      .catch(function () { /* the next poll tries again */ })
      .then(function () { window.setTimeout(poll, every); });
  }
  window.setTimeout(poll, every);
}());
