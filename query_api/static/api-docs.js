// Starts the Swagger UI viewer (shipped by the flask-swagger-ui package, served by the archive) on the
// archive's own OpenAPI document. A file rather than an inline script: the pages' CSP allows no inline code.
// Swagger UI leaves its parameter fields unlabelled and points aria-controls at panels it has not drawn;
// a watcher mends both as it renders, so screen readers get names and no dangling references.
(function () {
  "use strict";

  function mend(root) {
    root.querySelectorAll("[aria-controls]").forEach(function (element) {
      if (!document.getElementById(element.getAttribute("aria-controls"))) {
        element.removeAttribute("aria-controls");
      }
    });
    root.querySelectorAll("input:not([aria-label]), select:not([aria-label]), textarea:not([aria-label])").forEach(function (field) {
      var row = field.closest("tr[data-param-name]");
      var name = (row && row.dataset.paramName) || field.getAttribute("placeholder") || field.name;
      if (name && !(field.id && root.querySelector("label[for='" + field.id + "']"))) {
        field.setAttribute("aria-label", name);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("swagger-ui");
    var pending = false;
    new MutationObserver(function () {
      if (pending) { return; }
      pending = true;
      window.requestAnimationFrame(function () { pending = false; mend(root); });
    }).observe(root, { childList: true, subtree: true, attributes: true, attributeFilter: ["aria-controls"] });
    window.chatArchiveApiDocs = SwaggerUIBundle({
      url: root.dataset.spec,
      domNode: root,
      deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout"
    });
  });
})();
