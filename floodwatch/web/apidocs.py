"""`/docs`: Swagger UI served from the package (the fastapi-offline distribution ships its
assets), so the API documentation works offline and under the strict CSP: the page has
no inline script, its initializer is /static/swagger-init.js. ReDoc is not served (its
bundle needs inline styles)."""

from __future__ import annotations

import html
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_URL = "/static/swagger"

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — API</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" href="{assets}/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script type="application/json" id="swagger-config">{{"url": "/openapi.json"}}</script>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="/static/swagger-init.js"></script>
</body>
</html>
"""


TOKEN_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API token made by `floodwatch token add NAME` (needed when the web "
    "runs with --login-required; a wrong or revoked token is a 401).",
}


def _with_token_scheme(web: FastAPI) -> None:
    """Describe the API token in /openapi.json (Swagger UI's "Authorize" then sends it)."""
    plain = web.openapi

    def openapi() -> dict:
        if web.openapi_schema is None:
            schema = plain()
            schema.setdefault("components", {})["securitySchemes"] = {"apiToken": TOKEN_SCHEME}
            for path, operations in schema["paths"].items():
                if path.startswith("/api/"):
                    for operation in operations.values():
                        operation["security"] = [{"apiToken": []}, {}]  # optional
        return web.openapi_schema

    web.openapi = openapi


def install(web: FastAPI) -> None:
    """Mount the Swagger UI assets, add the /docs page and the token to the OpenAPI."""
    _with_token_scheme(web)
    web.mount(ASSETS_URL, StaticFiles(directory=str(SWAGGER_ASSETS)), name="swagger")
    page = PAGE.format(title=html.escape(web.title), assets=ASSETS_URL)

    @web.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI for the JSON API, from local assets only."""
        return HTMLResponse(page)
