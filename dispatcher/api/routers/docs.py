"""`GET /docs`: the OpenAPI explorer, served entirely from here so it renders offline.

Like every route but `/healthz` and the local page, `/docs` and `/openapi.json` need an API key
when keys are configured (keyless local mode serves them on loopback).

FastAPI's default page loads Swagger UI from a CDN (and its favicon from fastapi.tiangolo.com).
Swagger UI 5 — the first to render OpenAPI 3.1, which FastAPI writes — is vendored from npm's
`swagger-ui-dist` (pinned in web/package-lock.json; `npm run build` in web/ refreshes it):
1.9 MB on disk, 0.45 MB gzipped. The PyPI `swagger-ui-bundle` package was measured too: 2.6 MB
wheel, 8.6 MB installed, and Swagger UI 4.15, which cannot render OpenAPI 3.1.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from dispatcher.api.dependencies import caller
from dispatcher.errors import Utf8JSONResponse

ASSETS_DIR = Path(__file__).parents[1] / "docs_assets"
ASSETS_PATH = "/docs-assets"
OPENAPI_PATH = "/openapi.json"
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
)


def mount(app: FastAPI) -> None:
    """Needs `FastAPI(docs_url=None, redoc_url=None, openapi_url=None)`: ReDoc would come from a
    CDN as well, and FastAPI's own document route takes no key."""

    @app.get(OPENAPI_PATH, include_in_schema=False, dependencies=[Depends(caller)])
    async def openapi() -> Utf8JSONResponse:
        return Utf8JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(caller)])
    async def docs() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=OPENAPI_PATH,
            title=f"{app.title} · API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url="data:,",
            # Swagger UI would otherwise send the document to validator.swagger.io for a badge.
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
