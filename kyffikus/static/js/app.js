/* Small progressive enhancements for every page. Each page works without them.
 *  - data-confirm="Question?" on a link, a button or a form: ask before going on.
 *  - Forms ignore a second submit for 5 s (double taps at the till). The server's
 *    idempotency keys stay the real protection; this only spares a useless request.
 *    A form with data-allow-resubmit opts out.
 *  - data-print on a button prints the page (no inline onclick under our CSP). */
(function () {
  "use strict";

  var LOCK_MS = 5000;

  function confirmed(element) {
    var question = element.getAttribute("data-confirm");
    return !question || window.confirm(question);
  }

  // Capture phase, so a refusal stops the click before it submits or navigates.
  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest(
      "a[data-confirm], button[data-confirm], input[data-confirm], [data-print]") : null;
    if (!target) { return; }
    if (target.hasAttribute("data-print")) {
      event.preventDefault();
      window.print();
      return;
    }
    if (!confirmed(target)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // Bubble phase, so a page script that refused the submit (preventDefault) is seen here.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || form.hasAttribute("data-allow-resubmit")) { return; }
    if (form.hasAttribute("data-confirm") && !confirmed(form)) {
      event.preventDefault();
      return;
    }
    if (form.getAttribute("data-submitting") === "1") {
      event.preventDefault();
      return;
    }
    // Buttons are marked busy, not disabled: a disabled submitter would drop its
    // name=value from the request.
    form.setAttribute("data-submitting", "1");
    var buttons = form.querySelectorAll("button, input[type=submit]");
    Array.prototype.forEach.call(buttons, function (button) {
      button.setAttribute("aria-disabled", "true");
    });
    window.setTimeout(function () { unlock(form); }, LOCK_MS);
  });

  function unlock(form) {
    form.removeAttribute("data-submitting");
    Array.prototype.forEach.call(form.querySelectorAll("[aria-disabled]"), function (button) {
      button.removeAttribute("aria-disabled");
    });
  }

  // Coming back through the back/forward cache must not leave forms locked.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) { return; }
    Array.prototype.forEach.call(document.querySelectorAll("form[data-submitting]"), unlock);
  });
})();
