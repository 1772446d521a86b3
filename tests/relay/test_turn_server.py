"""The TURN server as deployed refuses what it must: stale or forged credentials, and relaying
to private or metadata addresses. Each refusal has a positive control in the same run, so a
server that refused everything (or a probe that could not reach it) fails the test."""

from __future__ import annotations

import time

from dispatcher.media.turn import TurnCredentials, TurnSettings, turn_password
from tests.support.coturn import TURN_PORT, Coturn
from tests.support.netns import CLIENT_ADDRESS, TURN_ADDRESS, RelayTopology
from tests.support.netns_session import request_in as run_in

SESSION = "0123456789abcdef01234567"
PROBE = "tests.support.turn_probe"


def credentials(secret: str, clock: float | None = None) -> tuple[str, str]:
    settings = TurnSettings.from_env(
        {
            "TURN_URLS": f"turn:{TURN_ADDRESS}:{TURN_PORT}",
            "TURN_SHARED_SECRET": secret,
            "TURN_CREDENTIAL_TTL_SECONDS": "60",
        },
        cloud=True,
    )
    assert settings is not None
    issued = TurnCredentials(settings, clock=(lambda: clock) if clock is not None else time.time)
    server = issued.ice_config(SESSION)["iceServers"][0]
    return server["username"], server["credential"]


def allocate(
    topology: RelayTopology, username: str, password: str, *, transport: str = "udp", peers: list[str] | None = None
) -> dict:
    return run_in(
        topology.client,
        PROBE,
        {
            "server": [TURN_ADDRESS, TURN_PORT],
            "transport": transport,
            "username": username,
            "password": password,
            "peers": peers or [],
        },
    )


def test_fresh_credentials_from_the_dispatcher_allocate_over_udp_and_tcp(
    topology: RelayTopology, coturn: Coturn, turn_secret: str
) -> None:
    username, password = credentials(turn_secret)
    for transport in ("udp", "tcp"):
        result = allocate(topology, username, password, transport=transport)
        assert result["allocate"] == "ok", (transport, result, coturn.log()[-3000:])
        assert result["relayed"][0] == TURN_ADDRESS


def test_expired_and_forged_credentials_are_refused(topology: RelayTopology, coturn: Coturn, turn_secret: str) -> None:
    expired = credentials(turn_secret, clock=time.time() - 120)  # expired a minute ago
    forged = credentials("not-the-deployment-secret-at-all")
    fresh_username, fresh_password = credentials(turn_secret)
    tampered = (fresh_username.replace(":", "9:", 1), fresh_password)  # a later expiry, same password
    for name, (username, password) in {"expired": expired, "forged": forged, "tampered": tampered}.items():
        assert allocate(topology, username, password)["allocate"] == 401, name
    assert allocate(topology, fresh_username, fresh_password)["allocate"] == "ok"


def test_the_relay_will_not_reach_private_or_metadata_addresses(
    topology: RelayTopology, coturn: Coturn, turn_secret: str
) -> None:
    refused = [
        "169.254.169.254",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "127.0.0.1",
        "100.100.100.200",
        "224.0.0.251",
    ]
    username, password = credentials(turn_secret)
    result = allocate(topology, username, password, peers=[CLIENT_ADDRESS, "203.0.113.77", *refused])
    assert result["allocate"] == "ok", result
    assert result["permissions"][CLIENT_ADDRESS] == "ok"
    assert result["permissions"]["203.0.113.77"] == "ok"
    assert {peer: result["permissions"][peer] for peer in refused} == dict.fromkeys(refused, 403)


def test_an_allocation_outlives_its_credentials_so_a_short_ttl_never_cuts_a_session(
    topology: RelayTopology, coturn: Coturn, turn_secret: str
) -> None:
    """coturn checks the expiry when an allocation is made, not when it is refreshed: that is why
    TURN_CREDENTIAL_TTL_SECONDS can be minutes while a session lasts up to MAX_SESSION_SECONDS."""
    # The credential is made inside the probe just before its Allocate: made here, its 3 s could be
    # spent starting the probe's process on a busy machine.
    kept = allocate_and(topology, {"secret": turn_secret, "user": SESSION, "ttl_seconds": 3}, refresh_after=1.5)
    assert (kept["allocate"], kept["refresh"]) == ("ok", "ok"), kept
    username = kept["username"]
    password = turn_password(turn_secret.encode(), username)
    assert allocate(topology, username, password)["allocate"] == 401  # but no new allocation with it


def allocate_and(topology: RelayTopology, mint: dict, *, refresh_after: float) -> dict:
    """Allocates with a credential `mint` makes in the probe, and refreshes `refresh_after` seconds
    past its expiry."""
    request = {"server": [TURN_ADDRESS, TURN_PORT], "mint": mint, "refresh_after_expiry": refresh_after}
    return run_in(topology.client, PROBE, request)
