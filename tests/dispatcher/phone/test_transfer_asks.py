"""What a bot hears when its session has no live call to transfer: the kinds of call that can be."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import pytest

from botchannel.contract import RequestFailed
from dispatcher.channel.bots import BotLink
from dispatcher.phone.transfer_anywhere import TransfersAnywhere
from dispatcher.phone.transfer_asks import bot_transfer
from dispatcher.phone.transfers import Transfers
from dispatcher.store.local import LocalCoordination


async def test_a_bot_without_a_live_call_is_told_which_calls_transfer() -> None:
    ask = bot_transfer(TransfersAnywhere(Transfers(None, None, None), LocalCoordination()))
    link = cast(BotLink, SimpleNamespace(session_id="s-webrtc"))  # the answer reads the link's session alone
    with pytest.raises(RequestFailed) as refused:
        await ask(link, {"to": "+14155550123"})
    assert (refused.value.status, refused.value.code) == (409, "no_live_call")
    for kind in ("Twilio", "Telnyx", "SIP edge"):
        assert kind in refused.value.message
