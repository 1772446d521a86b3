"""Finding 3: a session's bot is the machine the dispatcher launched for it.

The attack: a compromised bot, with its own credential, names other sessions in its hello: a
session whose cold bot has not dialled in yet (first hello used to win), or made-up ones (each
used to add an owner record, until the records of live sessions were evicted).
"""

from __future__ import annotations

import signal

import pytest

from botchannel.contract import Hello
from tests.security.conftest import WAIT, MakeDispatcher, dial, stolen_credential
from tests.support.processes import signal_once_caught


async def test_a_bot_cannot_pre_empt_a_cold_session_nor_name_made_up_ones(
    make_dispatcher: MakeDispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = await make_dispatcher()
    own = (await d.client.post("/start?wait=started", json={"body": {}})).json()["session_id"]
    channels = d.state.channels
    assert await channels.wait_until(lambda: channels.link_for(own) is not None, WAIT)
    credential = stolen_credential(d.session_pid(own))
    monkeypatch.setenv("STANDIN_MODE", "controlled")  # the victim's bot dials only when told
    victim = (await d.client.post("/start", json={"body": {}})).json()["session_id"]

    pre_empted = await dial(d.channel_url, credential, Hello(machine_id="evil", session_id=victim))
    made_up = [await dial(d.channel_url, credential, Hello(machine_id="evil", session_id=f"{n:024x}"))
               for n in range(20)]
    # control: the victim's own bot dials now
    await signal_once_caught(d.session_pid(victim), signal.SIGUSR1, WAIT)

    assert pre_empted is None, "the first hello naming a cold session won it"
    assert made_up == [None] * 20, "hellos for made-up sessions were accepted"

    def victim_served_by_its_bot() -> bool:
        link = channels.link_for(victim)
        return link is not None and link.machine_id == f"local-{victim}"

    assert await channels.wait_until(victim_served_by_its_bot, WAIT)
