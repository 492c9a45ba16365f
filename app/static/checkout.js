// Checkout helpers: a live countdown to expiry (in the page's language), and auto-submitting gateway hand-off forms.
(function () {
  var el = document.querySelector('[data-countdown]');
  if (el) {
    var text = el.querySelector('[data-countdown-text]');
    // The page's words for days and hours (data-fmt-*, translated on the server), filled in here.
    var words = function (name, d, h, m) {
      return (el.getAttribute('data-fmt-' + name) || '').replace('{d}', d).replace('{h}', h)
        .replace('{mm}', (m < 10 ? '0' : '') + m);
    };
    var deadline = Date.now() + parseInt(el.getAttribute('data-countdown'), 10) * 1000;
    var tick = function () {
      var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      var d = Math.floor(left / 86400), h = Math.floor((left % 86400) / 3600), m = Math.floor((left % 3600) / 60),
          s = left % 60;
      text.textContent = d > 0 ? words((d === 1 ? 'day' : 'days') + (h === 0 ? '0' : ''), d, h, m)
        : h > 0 ? words('hours', d, h, m) : m + ':' + (s < 10 ? '0' : '') + s;
      el.classList.toggle('urgent', left <= 60);
      if (left === 0) {
        el.classList.add('expired');
        text.textContent = el.getAttribute('data-fmt-expired') || 'expired';
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
