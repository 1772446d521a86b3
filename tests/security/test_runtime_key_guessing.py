"""Finding: a runtime key's secret id is public (`keys list`, the audit trail, the `vf_<id>_` prefix
of the secret itself), and 20 wrong secrets a minute for it made this replica refuse every new
secret for that id, the real one included: 401 for up to a minute at any replica that had not
cached it, with nothing logged. Now a wrong secret is counted per id and client address, that
address alone is answered 429 with Retry-After (one log line a window), and the real secret, which
passes the record's quick check, is verified whatever the guessing."""

from __future__ import annotations

import logging

import httpx
import pytest

from dispatcher.settings import Settings, hash_api_key
from tests.security.conftest import KEY_A, MakeDispatcher

ADMIN = "admin-key-0123456789abcdef"
GUESSER, CLIENT = ("203.0.113.66", 40000), ("198.51.100.7", 40000)


def at(app: object, address: tuple[str, int]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=address),  # type: ignore[arg-type]
                             base_url="http://127.0.0.1")


async def test_wrong_secrets_for_a_public_id_lock_out_the_guesser_never_the_key(
        make_dispatcher: MakeDispatcher, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(api_key_hashes=frozenset({hash_api_key(KEY_A)}),
                        admin_key_hashes=frozenset({hash_api_key(ADMIN)}), max_concurrent_sessions=50)
    d = await make_dispatcher(settings)
    made = await d.client.post("/keys", json={"name": "acme"}, headers={"Authorization": f"Bearer {ADMIN}"})
    assert made.status_code == 201, made.text
    secret, secret_id = made.json()["secret"], made.json()["secret_id"]
    async with at(d.app, GUESSER) as guesser, at(d.app, CLIENT) as client:
        answers = []
        with caplog.at_level(logging.WARNING, logger="dispatcher.api.runtime_keys"):
            for i in range(40):
                wrong = {"Authorization": f"Bearer vf_{secret_id}_{i:043d}"}
                answers.append(await guesser.get("/sessions", headers=wrong))
        # The real secret, first seen at this replica now: from another address, and from the guesser's.
        for caller in (client, guesser):
            read = await caller.get("/sessions", headers={"Authorization": f"Bearer {secret}"})
            assert read.status_code == 200, read.text
        assert {a.status_code for a in answers[:20]} == {401}
        assert {a.status_code for a in answers[20:]} == {429}, [a.text for a in answers[20:]]
        assert answers[-1].json()["error"]["code"] == "too_many_wrong_secrets"
        assert 1 <= int(answers[-1].headers["Retry-After"]) <= 60
        assert sum("wrong secrets" in r.getMessage() for r in caplog.records) == 1  # once a window
