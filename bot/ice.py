"""ICE settings for the webrtc transport, from the environment.

- `BOT_ICE_SERVERS`: comma-separated STUN/TURN URLs (e.g. `stun:stun.example.org:3478`); default
  none, which is right on one host or a flat network (host candidates only).
- `VOICEFLEET_ICE_LOOPBACK=1`: gather only 127.0.0.1. aioice never offers loopback candidates, so
  on a machine whose only interface is `lo` (some sandboxes/CI runners) ICE has nothing to pair.
  Off by default; set it in both the bot and the test client (tests/support/webrtc_client.py
  honours the same variable).
"""

from __future__ import annotations

from collections.abc import Mapping

LOOPBACK_VARIABLE = "VOICEFLEET_ICE_LOOPBACK"


def ice_server_urls(env: Mapping[str, str]) -> list[str]:
    return [url.strip() for url in env.get("BOT_ICE_SERVERS", "").split(",") if url.strip()]


def loopback_requested(env: Mapping[str, str]) -> bool:
    return env.get(LOOPBACK_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def use_loopback_candidates() -> None:
    """Makes aioice gather 127.0.0.1 only (it skips loopback by design)."""
    import aioice.ice

    def loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    aioice.ice.get_host_addresses = loopback_only
