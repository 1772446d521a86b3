"""A bot's identity proof while the store does not answer: the documented fallback is this
replica's own memory, so a proof this replica admitted must stay refused here whatever the store
does. A thief holding a captured proof (and the launch credential) who can wait for, or cause, a
store outage, replays it at the very replica that admitted it: that replica's memory must know it,
though it was the store that answered at the time. Against a real redis-server, stopped mid-test."""

from __future__ import annotations

from pathlib import Path

from dispatcher.channel.identity import OneUse
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.store.conftest import prefix, settings_for  # noqa: F401 (fixture)
from tests.dispatcher.store.test_identity_proofs import GRANT, Provider, hello
from tests.support.redis_server import redis_server


async def test_a_proof_admitted_with_the_store_up_is_refused_at_the_same_replica_when_it_goes_down(
    tmp_path: Path, prefix: str,  # noqa: F811 (the fixture)
) -> None:
    with redis_server(tmp_path) as server:
        here = RedisCoordination(settings_for(server, "r-a", prefix, lease_seconds=60.0))
        try:
            at_a = OneUse(Provider(), here.identity_proofs)
            assert await at_a.refusal(GRANT, hello("proof-1")) is None  # the real bot, the store answering
            server.stop()
            refused = await at_a.refusal(GRANT, hello("proof-1"))
            assert refused is not None, "with the store down, the replica that admitted a proof admitted it again"
            # Positive control: a fresh proof still passes while the store is down (bots are not cut off).
            assert await at_a.refusal(GRANT, hello("proof-2")) is None
            assert await at_a.refusal(GRANT, hello("proof-2")) is not None
        finally:
            await here.aclose()
