// Image Factory web UI: small enhancements on top of pages that work without JavaScript.
// - focus the new step's heading after htmx swaps it in (keyboard and screen reader users);
// - Enter in the extension search filters instead of submitting the step;
// - copy buttons;
// - a download link whose asset is not built yet shows live build progress (server-sent events from
//   /ui/progress) and starts the download once the asset is in the cache.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function revealCopyButtons(root) {
    root.querySelectorAll("button.copy[hidden]").forEach(function (button) {
      if (navigator.clipboard) button.hidden = false;
    });
  }

  document.addEventListener("DOMContentLoaded", function () { revealCopyButtons(document); });
  // htmx does not swap 4xx/5xx answers: show their one-line message instead of doing nothing.
  document.addEventListener("htmx:responseError", function (event) {
    var box = document.getElementById("error");
    if (!box) return;
    box.textContent = (event.detail.xhr.responseText || event.detail.xhr.statusText).trim();
    box.hidden = false;
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var box = document.getElementById("error");
    if (box && event.target.id === "wizard") box.hidden = true;
    revealCopyButtons(event.target);
    if (event.target.id === "wizard") {
      var heading = document.getElementById("step-title");
      if (heading) heading.focus();
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target.id === "search") {
      event.preventDefault();
      if (window.htmx) window.htmx.trigger(event.target, "search");
    }
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.copy");
    if (button) {
      var source = document.getElementById(button.dataset.copy);
      if (!source || !navigator.clipboard) return;
      var label = button.textContent;
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        button.textContent = document.documentElement.dataset.copied || "Copied";
        setTimeout(function () { button.textContent = label; }, 1500);
      });
      return;
    }
    var link = event.target.closest("a.download[data-asset]");
    if (!link || !window.EventSource || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    followBuild(link);
  });

  function followBuild(link) {
    if (link.dataset.busy) return;
    link.dataset.busy = "1";
    var box = link.parentElement.querySelector(".build-status");
    var bar = box.querySelector("progress");
    var text = box.querySelector(".status-text");
    box.hidden = false;
    box.className = "build-status";
    bar.removeAttribute("value");
    text.textContent = link.dataset.label + ": …";
    var query = new URLSearchParams({
      "schematic-id": link.dataset.schematic, version: link.dataset.version, path: link.dataset.asset
    });
    var source = new EventSource("/ui/progress?" + query.toString());
    var finished = false;
    function done() { finished = true; source.close(); delete link.dataset.busy; }
    source.addEventListener("progress", function (e) {
      var data = JSON.parse(e.data);
      if (typeof data.fraction === "number") bar.value = data.fraction; else bar.removeAttribute("value");
      text.textContent = data.message || data.step;
    });
    source.addEventListener("ready", function () {
      done();
      bar.value = 1;
      box.classList.add("ready");
      text.textContent = "✓ " + link.dataset.asset;
      window.location.assign(link.href);
    });
    source.addEventListener("failed", function (e) {
      done();
      box.classList.add("failed");
      text.textContent = JSON.parse(e.data).message;
    });
    source.onerror = function () {
      if (finished) return;
      // The stream could not start (bad request, unknown schematic, …) or broke: let the plain link
      // answer, so the server's own message is what the person sees.
      done();
      box.hidden = true;
      window.location.assign(link.href);
    };
  }
})();
