// Checkout helpers: a live countdown to expiry, and auto-submitting gateway hand-off forms.
(function () {
  var el = document.querySelector('[data-countdown]');
  if (el) {
    var text = el.querySelector('[data-countdown-text]');
    var deadline = Date.now() + parseInt(el.getAttribute('data-countdown'), 10) * 1000;
    var tick = function () {
      var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      text.textContent = h > 0 ? h + 'h ' + (m < 10 ? '0' : '') + m + 'm' : m + ':' + (s < 10 ? '0' : '') + s;
      el.classList.toggle('urgent', left <= 60);
      if (left === 0) {
        el.classList.add('expired');
        text.textContent = 'expired';
        var buttons = document.querySelectorAll('form.methods button');
        for (var i = 0; i < buttons.length; i++) buttons[i].disabled = true;
        setTimeout(function () { window.location.reload(); }, 1500);
        return;
      }
      setTimeout(tick, 1000);
    };
    tick();
  }
  var form = document.querySelector('form[data-autosubmit]');
  if (form) form.submit();
})();
