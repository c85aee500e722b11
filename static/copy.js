// A "Copy" button for a read-only field (the new API token). The page works without
// this script: the field can be selected and copied by hand; the button only appears here.
(function () {
  "use strict";
  Array.prototype.forEach.call(document.querySelectorAll("button[data-copy]"), function (button) {
    var field = document.getElementById(button.dataset.copy);
    var status = document.getElementById("copy-status");
    if (!field) { return; }
    button.hidden = false;

    function done(ok) {
      button.textContent = ok ? "Copied" : "Copy";
      if (status) {
        status.textContent = ok ? "Copied to the clipboard." :
          "Could not copy: select the token and copy it by hand.";
      }
    }

    button.addEventListener("click", function () {
      field.focus();
      field.select();
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(field.value).then(function () { done(true); }, function () {
          done(document.execCommand && document.execCommand("copy"));
        });
      } else {
        done(document.execCommand && document.execCommand("copy"));
      }
    });
  });
}());
