"""`GET /` in local mode: a page to talk to a local bot from the browser, on Pipecat's official
client (web/src/page.js, bundled into dispatcher/api/static/talk.js by `npm run build` in web/).

Everything it needs is served from here (no CDN, no fonts, no analytics); the Content Security
Policy makes any request to another host fail rather than leak, but for the session's recording and
transcript where the store serves them itself (a pre-signed URL: its origin alone, api/media_origin.py).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from dispatcher.api.dependencies import app_state
from dispatcher.api.media_origin import MediaOrigin, sources

STATIC_DIR = Path(__file__).parents[1] / "static"


def page_csp(recordings: str | None) -> str:
    """`blob:` scripts: the client's audio worklets are built in the page (URL.createObjectURL).
    `recordings`: the store's origin, where a session's recording and transcript are read from."""
    return (f"default-src 'none'; script-src 'self' blob:; style-src 'self'; connect-src {sources(recordings)}; "
            f"media-src {sources(recordings, 'blob:', 'mediastream:')}; img-src 'self' data:; base-uri 'none'; "
            "form-action 'none'")


def mount(app: FastAPI, bot_file: Path | None = None) -> None:
    # The page and its assets are public and hold nothing secret: with DISPATCHER_API_KEYS set,
    # the page asks for a key and sends it as a bearer token on every API call.
    text = page_text(bot_file)
    media = MediaOrigin()

    @app.get("/", include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        origin = await media.of(app_state(request).artifacts)
        return HTMLResponse(text, headers={"Content-Security-Policy": page_csp(origin)})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


_BEHAVIOUR = re.compile(r'(<p id="bot-behaviour">).*?(</p>)', re.S)


def page_text(bot_file: Path | None) -> str:
    """The page, saying which bot a Connect talks to: the parrot's behaviour, or the file BOT_FILE names
    (its folder and name only: the page is public where keys are set, the full path is the host's)."""
    text = (STATIC_DIR / "index.html").read_text()
    if bot_file is None:  # no bot host here (the dispatcher's image): nothing runs but the default text
        return text
    from bot.user_bot import DEFAULT_BOT_FILE  # a local dispatcher runs this repository's bot host

    if bot_file.resolve() == DEFAULT_BOT_FILE:
        return text
    shown = html.escape(f"{bot_file.parent.name}/{bot_file.name}" if bot_file.parent.name else bot_file.name)
    yours = (f"Press Connect and allow the microphone to talk to <strong>your bot</strong>, <code>{shown}</code> "
             "(<code>BOT_FILE</code>). Each Connect starts a fresh bot and runs the file as it is now; "
             "Hang up ends it. If the bot fails, its error shows here.")
    return _BEHAVIOUR.sub(lambda found: found.group(1) + yours + found.group(2), text, count=1)
