"""Where a run without `--allow-remote` may send anything: the host `--url` names, and a dispatcher
that runs its bots on this machine.

`--url` on loopback is not enough. A start's answer names where its media goes (a phone call's
`wsUrl`, which is the dispatcher's PHONE_PUBLIC_URL, a tunnel's or another region's; a WebRTC
offer path, and ICE servers: a TURN service relays all the media; a room), and a loopback `--url`
may be a `kubectl port-forward` to a cloud dispatcher, each of whose sessions starts a bot the
deployment pays for. So each session's URLs must name
`--url`'s host, and the dispatcher's `/healthz` must say `machines: local`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

ALLOW = "pass --allow-remote to load-test it"
ROOM_FIELDS = ("room_url", "dailyRoom")


def offer_url(base_url: str, answer: Mapping[str, Any]) -> str:
    """A WebRTC session's offer URL: its answer's path on the dispatcher's URL, or where Pipecat's
    client sends it when the answer has Pipecat's fields only (a start that named its `transport`)."""
    if "offer_url" in answer:
        return base_url + str(answer["offer_url"])
    return f"{base_url}/sessions/{answer['sessionId']}/api/offer"


def session_urls(base_url: str, answer: Mapping[str, Any]) -> list[str]:
    """Every URL a start's answer sends the caller's signalling or media to."""
    urls = [offer_url(base_url, answer)] if "offer_url" in answer else []
    urls += [str(answer[name]) for name in ("wsUrl", *ROOM_FIELDS) if answer.get(name)]
    return urls + ice_urls(answer.get("iceConfig"))


def ice_urls(ice_config: object) -> list[str]:
    """The STUN and TURN servers of a WebRTC answer's `iceConfig`: a TURN server relays the media."""
    servers = ice_config.get("iceServers") if isinstance(ice_config, Mapping) else None
    urls: list[str] = []
    for server in servers if isinstance(servers, list) else []:
        named = server.get("urls") if isinstance(server, Mapping) else None
        urls += [str(url) for url in (named if isinstance(named, list) else [named])]
    return urls


def _host(url: str) -> str:
    scheme, colon, rest = url.partition(":")
    if colon and not rest.startswith("//"):  # `turn:host:port?transport=udp` (RFC 7065) has no `//`
        url = f"{scheme}://{rest}"
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def elsewhere(base_url: str, answer: Mapping[str, Any]) -> str | None:
    """Why a session's answer is refused without --allow-remote (a URL on another host), or None."""
    here = _host(base_url)
    path = str(answer.get("offer_url", "/"))
    if not path.startswith("/") or path.startswith("//"):  # joined to --url, it would name another host
        return f"the dispatcher's offer_url {path[:200]!r} is not a path on {base_url} (--url); {ALLOW}"
    for url in session_urls(base_url, answer):
        if _host(url) != here or not here:
            return (f"the dispatcher sent this session to {url[:200]}, not on {here or base_url} (--url): "
                    "a phone call's stream goes to PHONE_PUBLIC_URL, a tunnel or another region, a WebRTC call's "
                    f"media through its ICE servers (ICE_SERVERS, a TURN service); {ALLOW}")
    return None


def not_local(base_url: str, health: Mapping[str, Any]) -> str | None:
    """Why a dispatcher is refused without --allow-remote (its bots are not on this machine), or None."""
    machines = health.get("machines")
    if machines == "local":
        return None
    said = f"machines: {str(machines)[:40]}" if machines is not None else "no machines"
    return (f"{base_url} answers /healthz with {said}, not local: each session there starts a real bot the "
            f"deployment pays for (a port-forward to a cloud dispatcher?); {ALLOW}")
