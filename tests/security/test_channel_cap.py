"""Finding 4's cap: however many valid credentials dial, the channel holds at most
`BOT_CHANNEL_MAX_CONNECTIONS` connections; past it a bot is refused before the handshake."""

from __future__ import annotations

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotCredentials
from dispatcher.channel.identity import Unverified
from dispatcher.settings import Settings
from tests.security.conftest import DEPLOYMENT_SECRET, MakeDispatcher, dial


async def test_the_channel_holds_at_most_its_cap_of_connections(make_dispatcher: MakeDispatcher) -> None:
    settings = Settings(max_concurrent_sessions=50, bot_channel_token=DEPLOYMENT_SECRET, bot_channel_max_connections=2)
    d = await make_dispatcher(settings)
    d.state.channels.identity = Unverified("the test dials by hand")  # (tests/support/hand_dialled.py)
    credentials = BotCredentials(DEPLOYMENT_SECRET)

    async def bot(n: int):  # noqa: ANN202
        session = f"s-cap-{n}"
        return await dial(d.channel_url, credentials.issue("session", session, 600),
                          Hello(machine_id=f"m-{n}", session_id=session))

    first, second = await bot(1), await bot(2)
    assert first is not None and second is not None  # control: up to the cap, every genuine bot is in
    assert await bot(3) is None
    await first.close()
    await second.close()
