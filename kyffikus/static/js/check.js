/* Provider check page: typo check for the typed pass number, and QR scanning
 * with the phone camera. Needs passnumber.js and, for scanning, jsQR (both
 * loaded before this file). Every message comes from data attributes set by
 * the template, so this file holds no user-facing text. */
(function () {
  "use strict";

  // (a) Typed pass number: refuse a number whose check character does not fit.
  function setupNumberForm() {
    var form = document.getElementById("number-form");
    var input = document.getElementById("pass-number");
    var error = document.getElementById("pass-number-error");
    var passNumber = window.KyffikusPassNumber;
    if (!form || !input || !error || !passNumber) { return; }

    function describedBy(add) {
      var ids = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(function (id) {
        return id && id !== error.id;
      });
      if (add) { ids.push(error.id); }
      if (ids.length) { input.setAttribute("aria-describedby", ids.join(" ")); }
      else { input.removeAttribute("aria-describedby"); }
    }

    // The live region must be rendered (empty) before the message arrives, or
    // screen readers may not announce it; so it is never hidden, only emptied.
    error.hidden = false;
    if (!error.hasAttribute("aria-live")) { error.setAttribute("aria-live", "assertive"); }

    function clearError() {
      if (input.getAttribute("aria-invalid") !== "true") { return; }
      error.textContent = "";
      input.removeAttribute("aria-invalid");
      describedBy(false);
    }

    form.addEventListener("submit", function (event) {
      var value = input.value;
      // An empty field is left to the browser's "required" check and to the server.
      if (!passNumber.normalise(value)) { return; }
      if (passNumber.isValid(value)) {
        input.value = passNumber.format(value);
        return;
      }
      event.preventDefault();
      // Empty first, then fill: the same message twice in a row is announced again.
      error.textContent = "";
      window.setTimeout(function () {
        error.textContent = form.getAttribute("data-msg-typo") || "";
      }, 50);
      input.setAttribute("aria-invalid", "true");
      describedBy(true);
      input.focus();
    });
    input.addEventListener("input", clearError);
  }

  // (b) Camera scanning with jsQR.
  function setupScanner() {
    var scanner = document.getElementById("scanner");
    var startButton = document.getElementById("scan-start");
    var stopButton = document.getElementById("scan-stop");
    var video = document.getElementById("scan-video");
    var status = document.getElementById("scan-status");
    var codeForm = document.getElementById("code-form");
    var codeInput = codeForm && codeForm.elements.namedItem("code");
    if (!scanner || !startButton || !video || !status || !codeInput) { return; }
    var view = video.closest(".scanner-view") || video;
    var canvas = document.createElement("canvas");
    var context = null;
    var stream = null;
    var frameRequest = 0;
    var lastScan = 0;
    var scanCount = 0;
    var SCAN_INTERVAL_MS = 100;   // about 10 decodes per second is plenty and spares the battery
    var MAX_WIDTH = 640;          // decode a downscaled frame: faster, and QR codes stay readable

    window.kyffikusScanTiming = { started: null, firstFrame: null, found: null };
    // Without JavaScript the scanner would be a dead button, so templates may ship it hidden.
    scanner.hidden = false;

    function say(name) {
      var text = scanner.getAttribute("data-msg-" + name);
      if (name === "error" && !text) { text = scanner.getAttribute("data-msg-absent"); }
      status.textContent = text || "";
    }

    function stop() {
      if (frameRequest) { window.cancelAnimationFrame(frameRequest); frameRequest = 0; }
      if (stream) {
        stream.getTracks().forEach(function (track) { track.stop(); });
        stream = null;
      }
      video.pause();
      video.srcObject = null;
      view.hidden = true;
      startButton.disabled = false;
      if (stopButton) { stopButton.hidden = true; }
    }

    function found(text) {
      window.kyffikusScanTiming.found = window.performance.now();
      // Kept across the navigation that follows, for the browser test's timing report.
      try {
        window.sessionStorage.setItem("kyffikusScanTiming", JSON.stringify(window.kyffikusScanTiming));
      } catch (ignored) { /* storage may be disabled; the timing is only informative */ }
      stop();
      say("found");
      startButton.disabled = true;   // navigation follows; a second scan would only race it
      codeInput.value = text;
      codeForm.submit();
    }

    function tick(now) {
      frameRequest = window.requestAnimationFrame(tick);
      if (!stream || video.readyState < 2 || !video.videoWidth) { return; }
      if (now - lastScan < SCAN_INTERVAL_MS) { return; }
      lastScan = now;
      var scale = Math.min(1, MAX_WIDTH / video.videoWidth);
      var width = Math.round(video.videoWidth * scale);
      var height = Math.round(video.videoHeight * scale);
      if (canvas.width !== width || canvas.height !== height) {
        canvas.width = width;
        canvas.height = height;
      }
      context.drawImage(video, 0, 0, width, height);
      if (window.kyffikusScanTiming.firstFrame === null) {
        window.kyffikusScanTiming.firstFrame = window.performance.now();
      }
      var image = context.getImageData(0, 0, width, height);
      // Most frames try normal polarity only; every other one also tries inverted codes.
      scanCount += 1;
      var code = window.jsQR(image.data, width, height, {
        inversionAttempts: scanCount % 2 ? "dontInvert" : "attemptBoth"
      });
      if (code && code.data) { found(code.data); }
    }

    function start() {
      var media = navigator.mediaDevices;
      if (!window.isSecureContext || !media || !media.getUserMedia || typeof window.jsQR !== "function") {
        say("absent");
        return;
      }
      if (stream) { return; }
      context = context || canvas.getContext("2d", { willReadFrequently: true });
      window.kyffikusScanTiming = { started: window.performance.now(), firstFrame: null, found: null };
      startButton.disabled = true;
      say("starting");
      media.getUserMedia({ video: { facingMode: { ideal: "environment" } }, audio: false })
        .then(function (mediaStream) {
          stream = mediaStream;
          video.srcObject = mediaStream;
          video.setAttribute("playsinline", "");
          video.muted = true;
          view.hidden = false;
          if (stopButton) { stopButton.hidden = false; }
          return video.play();
        })
        .then(function () {
          if (!stream) { return; }
          say("scanning");
          lastScan = 0;
          frameRequest = window.requestAnimationFrame(tick);
        })
        .catch(function (err) {
          stop();
          var name = err && err.name;
          if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
            say("denied");
          } else if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") {
            say("absent");
          } else {
            say("error");   // e.g. NotReadableError: the camera is in use by another app
          }
        });
    }

    startButton.addEventListener("click", start);
    if (stopButton) {
      stopButton.addEventListener("click", function () {
        stop();
        status.textContent = "";
        startButton.focus();
      });
    }
    // Never leave the camera running behind a hidden tab or a page in the back/forward cache.
    document.addEventListener("visibilitychange", function () {
      if (document.hidden && stream) { stop(); status.textContent = ""; }
    });
    window.addEventListener("pagehide", stop);
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) { startButton.disabled = false; status.textContent = ""; }
    });
  }

  setupNumberForm();
  setupScanner();
})();
