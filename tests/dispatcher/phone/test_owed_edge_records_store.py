"""A real `redis-server` (the stack's ACL user) stopped while an inbound call starts through an edge, then started
again: the replica that started the call writes its owed SIP edge record (its lifespan's task), and another
replica then takes that edge's report on the call (docs/sip.md#edge-credentials)."""

from __future__ import annotations

from pathlib import Path

import httpx

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings
from dispatcher.store.unavailable import StoreUnavailable
from tests.dispatcher.phone.test_inbound_edge_record import NOT_PLACED, SECRET, A, B, bearer
from tests.support.redis_server import redis_server
from tests.support.waiting import until


async def test_a_call_started_while_the_store_was_stopped_is_recorded_once_it_is_back(tmp_path: Path) -> None:
    with redis_server(tmp_path) as store:
        env = {**store.env, "SIP_EDGE_URL": f"{A},{B}", "SIP_EDGE_SECRET": SECRET}
        starting, other = (create_app(Settings(), env={**env, "REPLICA_ID": name},
                                      machines=LocalMachines(LocalSettings()), rooms=None) for name in ("r-a", "r-b"))
        try:
            async with starting.router.lifespan_context(starting), httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=other), base_url="http://127.0.0.1") as api:
                store.stop()
                await starting.state.voicefleet.trunk_calls.took_inbound("vf_in_outage", A)  # not refused
                assert starting.state.voicefleet.trunk_calls.edges.owed.owed("vf_in_outage") == A
                store.start()

                async def recorded() -> str | None:
                    try:
                        return await other.state.voicefleet.trunk_calls.edges.recorded("vf_in_outage")
                    except StoreUnavailable:
                        return None

                assert await until(recorded, "the owed record written at the store", timeout=60) == A
                by_b = await api.post("/edge/calls/vf_in_outage/outcome", json=NOT_PLACED, headers=bearer(B))
                by_a = await api.post("/edge/calls/vf_in_outage/outcome", json=NOT_PLACED, headers=bearer(A))
        finally:
            await other.state.voicefleet.aclose()
    assert by_b.status_code == 403, by_b.text
    assert by_a.status_code == 204, by_a.text  # at a replica that never owed it: the store's record
