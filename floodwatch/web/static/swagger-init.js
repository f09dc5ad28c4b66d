// Starts Swagger UI on /docs (a file, not an inline script: the CSP allows only 'self').
"use strict";
(function () {
  var config = JSON.parse(document.getElementById("swagger-config").textContent);
  window.ui = SwaggerUIBundle({
    url: config.url,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
})();
