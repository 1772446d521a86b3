"""The Gemini Live fake served as the google-genai SDK insists (TLS: with a key it dials `wss://`
whatever the base URL's scheme), with a test CA the client trusts through `SSL_CERT_FILE`; and a
dispatcher holding one warm Gemini Live example bot pointed at it by `GOOGLE_GEMINI_BASE_URL`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.fakes.gemini_live import FakeGeminiLive
from tests.fakes.server import FakeServer
from tests.support.channel_certs import channel_certs
from tests.support.processes import DispatcherProcess
from tests.support.realtime_turns import warm_fleet

GEMINI_BOT = Path(__file__).resolve().parents[2] / "examples" / "gemini_live" / "bot.py"
KEY = "AIza-gemini-live-test-key"


@contextmanager
def served(fake: FakeGeminiLive, folder: Path) -> Iterator[Path]:
    """Serve `fake` over TLS on loopback; yields the CA certificate a client must trust."""
    certs = channel_certs(folder, "gemini")
    with FakeServer(fake.app(), tls=(certs.cert, certs.key)) as server:
        fake.url, fake.ca = server.url, certs.ca
        yield certs.ca


@contextmanager
def gemini_fleet(log_dir: Path, fake: FakeGeminiLive, key: str = KEY) -> Iterator[DispatcherProcess]:
    """The fake served, and a dispatcher holding one warm Gemini Live bot pointed at it."""
    with served(fake, log_dir) as ca:
        env = {
            "BOT_FILE": str(GEMINI_BOT),
            "GOOGLE_API_KEY": key,
            "GOOGLE_GEMINI_BASE_URL": fake.url,
            "SSL_CERT_FILE": str(ca),
            "LOCAL_BOT_ENV": "GOOGLE_API_KEY,GOOGLE_GEMINI_BASE_URL,SSL_CERT_FILE",
        }
        with warm_fleet(log_dir, env) as dispatcher:
            yield dispatcher
