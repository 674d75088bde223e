"""The API's documents: the OpenAPI document (cleaned of FastAPI's default 422 answers, which
this API never sends: invalid requests are 400 with the error body) and Swagger UI and ReDoc,
whose scripts are served from an installed package so the pages work on an offline network."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
# The pages may load nothing from anywhere but this server (their inline start-up scripts and
# ReDoc's blob worker aside): offline they render the same, and they leak no visit to a CDN.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'"
)


def install(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets, and the cleaned ``/openapi.json``."""
    static = resources.files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(static)), name="docs-assets")

    def swagger() -> HTMLResponse:
        return _confined(
            get_swagger_ui_html(
                openapi_url="/openapi.json",
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                swagger_css_url=f"{ASSETS}/swagger-ui.css",
                swagger_favicon_url=f"{ASSETS}/favicon.png",
            )
        )

    def redoc() -> HTMLResponse:
        return _confined(
            get_redoc_html(
                openapi_url="/openapi.json",
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{ASSETS}/redoc.standalone.js",
                redoc_favicon_url=f"{ASSETS}/favicon.png",
                with_google_fonts=False,
            )
        )

    app.add_api_route("/docs", swagger, include_in_schema=False)
    app.add_api_route("/redoc", redoc, include_in_schema=False)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = clean(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _confined(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = PAGE_POLICY
    return page


def clean(document: dict[str, Any]) -> dict[str, Any]:
    """Drop FastAPI's default 422 answers and the schemas only they used; state that every
    error answer is the JSON error body (routes that answer text or bytes included)."""
    for path in document.get("paths", {}).values():
        for operation in path.values():
            answers = operation.get("responses", {})
            answer = answers.get("422")
            if answer is not None and "HTTPValidationError" in json.dumps(answer):
                del answers["422"]
            for status, answer in answers.items():
                if int(status) >= 400:
                    schema = {"$ref": "#/components/schemas/ErrorBody"}
                    answer["content"] = {"application/json": {"schema": schema}}
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        rest = {k: v for k, v in document.items() if k != "components"}
        others = {k: v for k, v in schemas.items() if k != name}
        if f'/schemas/{name}"' not in json.dumps([rest, others]):
            schemas.pop(name, None)
    return document
