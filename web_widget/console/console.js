// The counselor console's only script (no build, no library): refresh the queue every
// minute unless someone is using a filter field, so new urgent reports appear by themselves.
(function () {
  "use strict";
  var seconds = Number(document.body.getAttribute("data-refresh") || 0);
  if (!seconds) return;
  var busy = false;
  document.addEventListener("focusin", function (e) {
    busy = e.target && /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName);
  });
  document.addEventListener("focusout", function () { busy = false; });
  setInterval(function () {
    if (!busy && document.visibilityState === "visible") window.location.reload();
  }, seconds * 1000);
})();
