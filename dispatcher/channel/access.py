"""How a locally started bot reaches this dispatcher's channel: the URL, and its own credential.

The URL is known only once the server socket is bound (`PORT=0` picks a free port), so it is
filled in by whoever binds it (`python -m dispatcher`, or a test's server) before bots start.
Each bot gets a credential of its own, derived from the deployment secret that only the
dispatcher holds (dispatcher/channel/credentials.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from botchannel.contract import CHANNEL_PATH
from dispatcher.channel.credentials import BotCredentials


@dataclass
class ChannelAccess:
    credentials: BotCredentials
    url: str | None = None

    @classmethod
    def generated(cls) -> ChannelAccess:
        """Local mode with no BOT_CHANNEL_TOKEN: a fresh deployment secret per dispatcher run."""
        return cls(BotCredentials(secrets.token_urlsafe(32)))

    def bind(self, host: str, port: int, *, tls: bool = False) -> None:
        """Bots dial the address the dispatcher listens on; for a wildcard, the loopback address
        of its family (a dispatcher bound to one address is not reachable on loopback). `tls`: the
        channel's port serves TLS (BOT_CHANNEL_TLS_*), so bots dial `wss://`."""
        if host in ("0.0.0.0", "::", ""):
            address = "[::1]" if host == "::" else "127.0.0.1"
        else:
            address = f"[{host}]" if ":" in host else host
        self.url = f"{'wss' if tls else 'ws'}://{address}:{port}{CHANNEL_PATH}"
