"""The local page (GET / in local mode) tells a newcomer what the bot will do, and carries its own
icon: the browser asks no host, this one included, for a favicon."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser
from pathlib import Path

from bot.user_bot import ENV_BOT_FILE

PAGE = Path(__file__).resolve().parents[3] / "dispatcher" / "api" / "static" / "index.html"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.icons: list[str] = []
        self.behaviour: list[str] = []
        self._in_behaviour = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "link" and "icon" in (found.get("rel") or "").split():
            self.icons.append(found.get("href") or "")
        if self._in_behaviour or found.get("id") == "bot-behaviour":
            self._in_behaviour += 1

    def handle_endtag(self, tag: str) -> None:
        if self._in_behaviour:
            self._in_behaviour -= 1

    def handle_data(self, data: str) -> None:
        if self._in_behaviour:
            self.behaviour.append(data)


def _page() -> _Page:
    page = _Page()
    page.feed(PAGE.read_text())
    return page


def test_the_page_has_an_inline_svg_icon() -> None:
    (icon,) = _page().icons
    prefix = "data:image/svg+xml;base64,"
    assert icon.startswith(prefix)  # inline: no request, and the page's CSP allows data: images
    svg = ElementTree.fromstring(base64.b64decode(icon.removeprefix(prefix)))
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"


def test_the_page_says_what_the_default_bot_does_and_how_to_change_it() -> None:
    text = " ".join("".join(_page().behaviour).split())
    assert "repeats what you say" in text
    # How to run one's own bot instead, by the variable the bot host reads.
    assert f"{ENV_BOT_FILE}=path/to/bot.py" in text
