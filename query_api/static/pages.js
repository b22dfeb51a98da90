// Small helps on every page: times in the reader's own time zone (UTC, to the second, on hover),
// and the search hits' "Copy link" buttons. Without script the pages show UTC and no copy buttons.
(function () {
  "use strict";

  function pad(n) { return String(n).padStart(2, "0"); }

  function localText(date, form) {
    var time = pad(date.getHours()) + ":" + pad(date.getMinutes());
    if (form === "time") { return time + ":" + pad(date.getSeconds()); }
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " + time;
  }

  function showLocalTimes() {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
    document.querySelectorAll("time[data-local]").forEach(function (element) {
      var date = new Date(element.getAttribute("datetime"));
      if (isNaN(date.getTime())) { return; }
      element.textContent = localText(date, element.dataset.local);
      element.title = (element.title || "") + " (shown in " + zone + ")";
    });
    document.querySelectorAll(".time-zone-name").forEach(function (element) {
      element.textContent = zone;
    });
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var done = document.execCommand("copy");
    document.body.removeChild(area);
    return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function enableCopyLinks() {
    document.querySelectorAll("button.copy-link").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var url = new URL(button.dataset.href, window.location.href).href;
        copy(url).then(function () { button.textContent = "Link copied"; },
                       function () { window.prompt("Copy this link:", url); });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    showLocalTimes();
    enableCopyLinks();
  });
})();
