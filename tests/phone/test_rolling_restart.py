"""A dispatcher replaced during a call (a rolling deploy: the new replica up, then SIGTERM to the
old one) keeps relaying the call to its end, refuses new calls meanwhile, then exits by itself."""

from __future__ import annotations

import signal

import numpy as np
import pytest

from tests.fakes.carriers import CarrierCall
from tests.phone.conftest import phone_env, speech_8k, wait_for_idle_bot
from tests.support.audio import rms
from tests.support.http_client import api_client
from tests.support.processes import run_dispatcher
from tests.support.waiting import until

pytestmark = pytest.mark.slow


async def test_a_call_survives_sigterm_to_its_dispatcher_and_the_old_replica_exits_after_it(tmp_path) -> None:
    env = phone_env(tmp_path)
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    with run_dispatcher(tmp_path / "old", env) as old:
        async with api_client(base_url=old.base_url, timeout=30) as api:
            await wait_for_idle_bot(api)
            call = CarrierCall("twilio", old.base_url.replace("http://", "ws://") + "/ws/twilio")
            await call.open()
            await call.handshake()
            await call.bot_audio(0.1, timeout=30)  # the greeting: the call is up

            with run_dispatcher(tmp_path / "new", env) as new:  # the rolling deploy's new replica
                old.process.send_signal(signal.SIGTERM)
                # However long a loaded machine takes the old replica to handle its SIGTERM.
                async def draining() -> bool:
                    return bool((await api.get("/healthz")).json()["status"] == "draining")

                await until(draining, "the old replica draining after its SIGTERM")
                refused = CarrierCall("twilio", old.base_url.replace("http://", "ws://") + "/ws/twilio")
                with pytest.raises(Exception, match="403"):
                    await refused.open()
                async with api_client(base_url=new.base_url, timeout=5) as fresh:
                    assert (await fresh.get("/healthz")).status_code == 200

                speech = speech_8k()
                await call.say(speech)  # after the SIGTERM: every frame still goes both ways
                echoed = await call.bot_audio(len(speech) / 16000 * 0.95, timeout=30)
                assert rms(np.frombuffer(echoed, dtype=np.int16)) > 500
                assert old.process.poll() is None  # still relaying

                await call.hang_up()
                await until(lambda: old.process.poll() is not None, "the drained dispatcher's exit after its last call")
                assert "drained (0 call(s) left)" in old.log()
