"""An eval's WhatsApp call when the bot's answer is one Meta would refuse, the dispatcher's bots played by the
stand-in (tests/dispatcher/standin_bot.py, which answers `answer-to:` and the offer) on a keyless local
dispatcher: the call fails naming why a real call would be rejected, its session is stopped, and nothing
reaches Meta; a usable answer comes back filtered as Meta gets it."""

from __future__ import annotations

import pytest

from tests.fakes.server import serve
from tests.fakes.whatsapp import PHONE_NUMBER_ID, FakeWhatsApp
from tests.phone.test_whatsapp_faults import session_status
from tests.phone.test_whatsapp_webhook import OFFER, dispatcher

ROUTE = "/phone/whatsapp/eval_calls"
SHA384_ONLY = OFFER.replace("a=fingerprint:sha-256 " + ":".join(["AB"] * 32), "a=fingerprint:sha-384 " +
                            ":".join(["CD"] * 48))


@pytest.fixture(autouse=True)
def standin_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_MODE", "serve")


async def test_an_answer_whatsapp_would_refuse_fails_the_call_and_stops_its_session() -> None:
    with serve(FakeWhatsApp()) as fake:
        async with dispatcher(fake) as meta:
            refused = await meta.dispatcher.client.post(ROUTE, json={"sdp": SHA384_ONLY})
            assert refused.status_code == 502, refused.text
            error = refused.json()["error"]
            assert error["code"] == "whatsapp_answer_refused" and "SHA-256" in error["message"], error
            assert len(meta.launches) == 1
            assert await session_status(meta, meta.launches[0]) in ("ended", "failed")
            answered = await meta.dispatcher.client.post(ROUTE, json={"sdp": OFFER, "phone_number_id": PHONE_NUMBER_ID})
            assert answered.status_code == 200, answered.text
            assert answered.json()["sdp"].startswith("answer-to:v=0\r\n")  # the bot's, in Meta's CRLF lines
        assert fake.calls == []
