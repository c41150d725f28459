// Starts Swagger UI on /docs (an inline script would need the CSP to allow one).
"use strict";
(function () {
  const root = document.getElementById("swagger-ui");
  if (typeof SwaggerUIBundle !== "function") {
    root.textContent = "Swagger UI is not installed here: run scripts/setup.sh. The API's description is at /openapi.json.";
    return;
  }
  SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
