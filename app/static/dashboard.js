// Dashboard: copy buttons (`data-copy="#input-id"`). Everything else works without JavaScript.
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) return;
  var input = document.querySelector(button.getAttribute("data-copy"));
  if (!input) return;
  var done = function () {
    var label = button.textContent;
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = label; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(input.value).then(done, function () { input.select(); });
  } else {
    input.select();
    try { document.execCommand("copy"); done(); } catch (e) { /* selected: the user can copy by hand */ }
  }
});
