// Page behaviour without inline script (the Content-Security-Policy allows only our own files).
// data-autosubmit: a select that submits its form on change.
// data-select-all: a checkbox that ticks every input[name=ids] of its table.
// data-confirm on a form: asks before submitting.
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("select[data-autosubmit]") && target.form) {
      target.form.submit();
    } else if (target.matches("input[data-select-all]")) {
      var table = target.closest("table");
      if (table) {
        table.querySelectorAll("input[name=ids]").forEach(function (box) {
          box.checked = target.checked;
        });
      }
    }
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches("form[data-confirm]") && !window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });
})();
