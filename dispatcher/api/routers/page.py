"""`GET /` in local mode: a page to talk to a local bot from the browser, on Pipecat's official
client (web/src/page.js, bundled into dispatcher/api/static/talk.js by `npm run build` in web/).

Everything it needs is served from here (no CDN, no fonts, no analytics); the Content Security
Policy makes any request to another host fail rather than leak.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parents[1] / "static"
# `blob:` scripts: the client's audio worklets are built in the page (URL.createObjectURL).
PAGE_CSP = (
    "default-src 'none'; script-src 'self' blob:; style-src 'self'; connect-src 'self'; "
    "media-src 'self' blob: mediastream:; img-src 'self' data:; base-uri 'none'; form-action 'none'"
)


def mount(app: FastAPI) -> None:
    # The page and its assets are public and hold nothing secret: with DISPATCHER_API_KEYS set,
    # the page asks for a key and sends it as a bearer token on every API call.
    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Content-Security-Policy": PAGE_CSP})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
