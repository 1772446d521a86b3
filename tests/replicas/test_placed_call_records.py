"""A call placed out at replica A whose answer reaches A only after the callee picked up and Twilio's
answering-machine verdict was taken at replica B: A's SID and B's verdict are both kept (neither write drops the
other; dispatcher/phone/dialer.py), so the bot attached afterwards at A is told who answered and a transfer
asked at B hands the call to a person. Two real dispatchers on a real redis-server, a real bot (voicefleet's host
with the echo bot, warm in the reserve) and the strict Twilio fake, whose callbacks are signed for
PHONE_PUBLIC_URL (A's address) and delivered to B (as a load balancer may send them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.dispatcher.phone.placed_calls import calls_allowed
from tests.fakes.carriers import CarrierCall
from tests.fakes.server import serve
from tests.fakes.twilio_outbound import FakeTwilioCalls, PlacedCall
from tests.phone.conftest import phone_env
from tests.replicas.conftest import greeted
from tests.support.far_end import ToReplica
from tests.support.http_client import api_client
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.redis_server import RedisServer, redis_server
from tests.support.waiting import until

pytestmark = pytest.mark.slow  # real processes, a bot importing Pipecat: seconds

KEY = "vf_placed_records_key_0123456789ab"
AUTH = {"Authorization": f"Bearer {KEY}"}
TO, FROM, DESK = "+14155550100", "+14155550199", "+14155550123"
WAIT = 120.0  # bounds every wait: a loaded machine


@dataclass
class Pair:
    store: RedisServer
    twilio: FakeTwilioCalls
    a: DispatcherProcess  # places the call, takes its stream
    b: DispatcherProcess  # takes Twilio's callbacks, is asked for the transfer

    def logs(self) -> str:
        return "\n".join(f"--- {r.base_url}\n{r.log()[-3000:]}" for r in (self.a, self.b))


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    port = free_port()  # A's own address is the public one: the call's stream reaches A
    with ExitStack() as stack:
        store = stack.enter_context(redis_server(tmp_path))
        twilio = stack.enter_context(serve(FakeTwilioCalls(create_per_second=5)))
        common = {
            **phone_env(tmp_path), **store.env, **twilio.env(),
            "PHONE_PUBLIC_URL": f"http://127.0.0.1:{port}", "PHONE_TRANSFER_TARGETS": DESK,
            "DISPATCHER_API_KEYS": f"dialer:{KEY}", **calls_allowed("twilio", (FROM,), caller="dialer"),
            "BOT_CHANNEL_TOKEN": "placed-records-deployment-secret-0123456789", "REDIS_LEASE_SECONDS": "60",
            "START_WAIT_SECONDS": "120", "LOG_LEVEL": "info",
        }
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        a = stack.enter_context(run_dispatcher(tmp_path / "a", {**common, "REPLICA_ID": "r-a"}, port=port))
        b = stack.enter_context(run_dispatcher(tmp_path / "b", {**common, "REPLICA_ID": "r-b"}))
        twilio.deliver = lambda: httpx.AsyncClient(transport=ToReplica(b.base_url), timeout=30)
        yield Pair(store, twilio, a, b)


async def test_a_verdict_taken_at_one_replica_before_the_create_s_answer_at_another_loses_neither(
        pair: Pair) -> None:
    async def picked_up_and_judged(call: PlacedCall) -> None:  # all at B, before A has the create's answer
        assert [r.status_code for r in await pair.twilio.answer(call.sid)] == [204, 204, 204]
        verdict = await pair.twilio.detect(call.sid, "human")
        assert verdict is not None and verdict.status_code == 204, verdict

    pair.twilio.before_answer = picked_up_and_judged
    await until(lambda: greeted(pair.store) >= 1, timeout=WAIT, what="a reserve bot's hello")
    async with api_client(base_url=pair.a.base_url, headers=AUTH, timeout=60) as a, \
            api_client(base_url=pair.b.base_url, headers=AUTH, timeout=60) as b:
        placed = await a.post("/calls", json={"to": TO, "from": FROM, "carrier": "twilio"})
        assert placed.status_code == 201, f"{placed.text}\n{pair.logs()}"
        session_id, call = placed.json()["session_id"], pair.twilio.placed[-1]
        line = CarrierCall("twilio", call.stream_url, call_id=call.sid)  # Twilio opens the stream at A
        await line.open()
        await line.handshake()
        try:
            assert await line.next_bot_audio(timeout=WAIT)  # the bot is attached and talks

            async def told() -> list[tuple[str, str, str | None]]:
                events = (await b.get(f"/sessions/{session_id}/timeline")).json()["events"]
                return [(e["event"], e["answered_by"], e.get("bot")) for e in events
                        if e["event"].startswith("answered_by")]

            async def told_to_bot() -> bool:
                return any(event == "answered_by_told" for event, _, _ in await told())

            await until(told_to_bot, timeout=30, what="the verdict told to the bot attached after it")
            assert await told() == [("answered_by", "human", "no_bot"), ("answered_by_told", "human", "no_handler")]
            handed = await b.post(f"/sessions/{session_id}/transfer", json={"to": DESK})
            assert handed.status_code == 200, f"{handed.text}\n{pair.logs()}"
            assert handed.json()["status"] == "transferred"
            assert len(call.twiml) == 1 and f"<Number>{DESK}</Number>" in call.twiml[0], call.twiml
        finally:
            await line.hang_up()

