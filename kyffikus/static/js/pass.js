// The pass page: keep the screen awake while the QR code is shown at a till (where supported).
(function () {
  "use strict";
  if (!("wakeLock" in navigator)) {
    return;
  }
  var lock = null;
  function request() {
    if (document.visibilityState !== "visible") {
      return;
    }
    navigator.wakeLock.request("screen").then(function (sentinel) {
      lock = sentinel;
      sentinel.addEventListener("release", function () {
        lock = null;
      });
    }).catch(function () {
      lock = null; // refused (battery saver, permissions): the page works as before
    });
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && lock === null) {
      request();
    }
  });
  request();
})();
