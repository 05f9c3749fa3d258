// Staff console: progressive enhancement only. Every form and page works without it.
(function () {
  "use strict";

  // "Copy link" buttons stay hidden unless the browser can copy for us.
  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    var input = document.getElementById(button.getAttribute("data-copy-target"));
    var status = document.getElementById(button.getAttribute("data-copy-status"));
    if (!input || !navigator.clipboard || !window.isSecureContext) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(input.value).then(function () {
        if (status) {
          status.textContent = button.getAttribute("data-copied");
        }
      });
    });
  });

  // The claim link is easiest to copy when a click selects all of it.
  document.querySelectorAll("input[readonly], textarea[readonly]").forEach(function (input) {
    input.addEventListener("focus", function () {
      input.select();
    });
  });

  // A verification result lands below the form, below the fold on a phone: move focus
  // (and so the view and a screen reader) to it.
  var result = document.querySelector("[data-focus-on-load]");
  if (result) {
    result.focus();
    result.scrollIntoView({ block: "start" });
  }

  // One submission per form: a double click must not issue two passes.
  document.querySelectorAll("form[data-once]").forEach(function (form) {
    form.addEventListener("submit", function () {
      window.setTimeout(function () {
        form.querySelectorAll("button[type=submit]").forEach(function (button) {
          button.disabled = true;
        });
      }, 0);
    });
  });
})();
