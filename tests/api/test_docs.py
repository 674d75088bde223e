"""The API's documents: the published OpenAPI document is the app's, it states every status each
route can answer, and Swagger UI and ReDoc work with no network beyond the server."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modelseal.registry.catalogue import operations
from modelseal.server.app import openapi_document
from tests.registry.fixtures import open_env
from tests.server.conftest import Running, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"


def test_published_document_is_the_apps() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_openapi", ROOT / "scripts/gen_openapi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.check() is None
    published = json.loads((ROOT / "docs/openapi.json").read_text())
    assert published == json.loads(json.dumps(openapi_document()))


def test_every_operation_documents_its_statuses_and_the_bearer_scheme() -> None:
    document = openapi_document()
    schemes = document["components"]["securitySchemes"]
    assert schemes == {
        "HTTPBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token: `Authorization: Bearer msk_...`",
        }
    }
    for operation in operations():
        route = operation.route
        path = route.path.replace(":path}", "}")
        entry = document["paths"][path][route.method.lower()]
        assert entry["operationId"] == operation.__name__
        assert entry["security"] == [{"HTTPBearer": []}]
        answers = entry["responses"]
        assert "200" in answers
        for status in route.statuses:
            body = answers[str(status)]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/ErrorBody"}, (operation, status)
        # FastAPI's own 422 "validation error" is never sent: invalid requests are 400.
        assert "HTTPValidationError" not in json.dumps(entry)


def test_docs_pages_load_their_assets_from_the_server() -> None:
    from modelseal.server.app import _application

    client = TestClient(_application(None))
    for page, assets in (
        ("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")),
        ("/redoc", ("redoc.standalone.js",)),
    ):
        answer = client.get(page)
        html = answer.text
        assert "http://" not in html and "https://" not in html, page
        # Whatever a bundled script asks for elsewhere, the browser refuses to fetch it.
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        for asset in assets:
            assert f"/docs-assets/{asset}" in html
            answer = client.get(f"/docs-assets/{asset}")
            assert answer.status_code == 200 and len(answer.content) > 10_000


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Running]:
    env = open_env(tmp_path / "home", f"sqlite:///{tmp_path / 'registry.db'}")
    running = start_server(env)
    try:
        yield running
    finally:
        stop_server(running)
        env.registry.close()


def _browser_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed (make test installs the chromium package)"
    if shutil.which("chromium") is None and not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is not executable"
    return None


def test_an_offline_browser_renders_swagger_ui_and_redoc(live_server: Running) -> None:
    problem = _browser_missing()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    from playwright.sync_api import Route, sync_playwright

    outside: list[str] = []

    def only_the_server(route: Route) -> None:
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:  # no network beyond the server: what a page asks for elsewhere is refused
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        try:
            page = browser.new_page()
            page.route("**/*", only_the_server)
            page.goto(f"{live_server.url}/docs")
            page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
            assert "modelseal registry" in page.inner_text(".swagger-ui .info .title")
            page.wait_for_selector(".opblock", timeout=30_000)
            assert page.locator(".opblock").count() >= len(operations())
            page.goto(f"{live_server.url}/redoc")
            page.wait_for_selector("h1", timeout=30_000)
            assert "modelseal registry" in page.inner_text("h1")
            assert page.locator("[data-section-id^='tag/']").count() >= 1
        finally:
            browser.close()
    assert outside == []
