"""The Gemini Live fake served as the google-genai SDK insists (TLS: with a key it dials `wss://`
whatever the base URL's scheme), with a test CA the client trusts through `SSL_CERT_FILE`; and a
dispatcher holding one warm converged example bot on Gemini Live (its key is `GOOGLE_API_KEY`), pointed
at the fake by the SDK's `GOOGLE_GEMINI_BASE_URL`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.fakes.gemini_live import FakeGeminiLive
from tests.fakes.server import FakeServer
from tests.support.channel_certs import channel_certs
from tests.support.processes import DispatcherProcess
from tests.support.realtime_turns import REALTIME_BOT, warm_fleet

KEY = "AIza-gemini-live-test-key"


@contextmanager
def served(fake: FakeGeminiLive, folder: Path) -> Iterator[Path]:
    """Serve `fake` over TLS on loopback; yields the CA certificate a client must trust."""
    certs = channel_certs(folder, "gemini")
    with FakeServer(fake.app(), tls=(certs.cert, certs.key)) as server:
        fake.url, fake.ca = server.url, certs.ca
        yield certs.ca


def gemini_env(base_url: str, key: str = KEY, ca: Path | None = None) -> dict[str, str]:
    """A dispatcher's environment for the converged example bot on Gemini Live at `base_url`."""
    env = {
        "BOT_FILE": str(REALTIME_BOT),
        "GOOGLE_API_KEY": key,
        "GOOGLE_GEMINI_BASE_URL": base_url,
        "LOCAL_BOT_ENV": "GOOGLE_API_KEY,GOOGLE_GEMINI_BASE_URL",
    }
    if ca is not None:
        env["SSL_CERT_FILE"] = str(ca)  # a CA bundle: every local bot gets the dispatcher's
    return env


@contextmanager
def gemini_fleet(log_dir: Path, fake: FakeGeminiLive, key: str = KEY) -> Iterator[DispatcherProcess]:
    """The fake served, and a dispatcher holding one warm Gemini Live bot pointed at it."""
    with served(fake, log_dir) as ca, warm_fleet(log_dir, gemini_env(fake.url, key, ca)) as dispatcher:
        yield dispatcher
