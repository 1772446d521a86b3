"""`voicefleet releases smoke`'s caller hangs up as soon as the dispatcher has failed the smoke session
(a machine that died, a bot that raised): the verdict is printed then, not after the caller's own wait
for audio runs out."""

from __future__ import annotations

import asyncio

from voicefleet.smoke import _unless_failed


async def test_a_caller_still_waiting_for_audio_hangs_up_once_the_dispatcher_failed_the_smoke() -> None:
    hung_up = asyncio.Event()
    asked: list[int] = []

    async def waiting_for_audio() -> dict[str, object]:
        try:
            await asyncio.Event().wait()  # a bot that will never speak
        finally:
            hung_up.set()
        return {}

    def failed() -> bool:
        asked.append(1)
        return len(asked) >= 2  # the dispatcher's verdict comes at its second look

    heard = await _unless_failed(waiting_for_audio(), failed)
    assert heard == {"failed": "the dispatcher failed the smoke session before the caller heard the bot"}
    assert hung_up.is_set() and len(asked) == 2


async def test_a_caller_whose_call_ends_first_gives_its_own_account() -> None:
    async def heard_the_bot() -> dict[str, object]:
        return {"first_audio_seconds": 0.4}

    assert await _unless_failed(heard_the_bot(), lambda: True) == {"first_audio_seconds": 0.4}
