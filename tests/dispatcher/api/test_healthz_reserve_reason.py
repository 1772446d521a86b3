"""/healthz while the reserve backs off: the last failed bot's own error text (which a caller can
choose through its start body) goes to an admin key only, escaped; anyone else reads a fixed line."""

from __future__ import annotations

from dispatcher.settings import hash_api_key
from tests.dispatcher.api.test_admin_access import ADMIN, ADMIN_KEY, MINE, OTHER_KEY
from tests.dispatcher.conftest import API_KEY, ClientFactory

CHOSEN = "OpenAIError: invalid key sk-acme-XXXX for +14155550123 \x9b31m\u202eevil"


async def test_only_an_admin_reads_why_the_reserves_bots_failed_and_it_is_escaped(make_api: ClientFactory) -> None:
    context = make_api(api_key_hashes=frozenset({hash_api_key(API_KEY), hash_api_key(OTHER_KEY)}),
                       admin_key_hashes=frozenset({hash_api_key(ADMIN_KEY)}))
    async with context as api:
        reserve = context.app.state.voicefleet.reserve
        assert reserve is not None, "the local dispatcher keeps a reserve"
        reserve.failed_bots.failed(reserve._clock(), "voicefleet-bot:stable", CHOSEN)

        for headers in ({}, MINE):
            detail = (await api.get("/healthz", headers=headers)).json()["detail"]
            assert detail.startswith("reserve backing off: 1 failed bot(s) in a row, next launch in ")
            assert "sk-acme" not in detail and "last:" not in detail and detail.isprintable()

        detail = (await api.get("/healthz", headers=ADMIN)).json()["detail"]
        assert detail.endswith("; last: OpenAIError: invalid key sk-acme-XXXX for +14155550123 \\x9b31m\\u202eevil")
