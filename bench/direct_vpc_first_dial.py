"""A new bot's first dial behind a network that carries nothing at first, measured (never asserted).

    uv run --all-groups python -m bench.direct_vpc_first_dial [--silent 0 30] [--modes refused dropped]

Google documents that a Cloud Run task leaving by Direct VPC egress through Cloud NAT may wait
"30 seconds or more" before its connections get through (docs/providers.md, "Network: Direct VPC
egress and its start-up delay"). Google cannot be reached from here, so the delay is the model's:
for `--silent` seconds after the bot process starts, its dials to the dispatcher either are
refused at once (`refused`: nothing listens yet) or hang unanswered (`dropped`: a gate accepts the
connection and never answers, as a route that drops packets would leave the bot's handshake
waiting for its deadline); after that the gate forwards to the dispatcher. What runs is real: the
bot process (`python -m bot`, a reserve bot with its channel credential) and the dispatcher app
on loopback. Printed: the bot's start-up with the network open, then per row spawn → the bot idle
on the dispatcher's channel, beside what stacks/config/cloud_run.py `first_dial_seconds` computes
from the bot's first dial (the silence left once its start-up is over).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from botchannel.contract import CHANNEL_PATH, DIAL_TIMEOUT_SECONDS  # noqa: E402
from dispatcher.app import create_app  # noqa: E402
from dispatcher.channel.credentials import BotCredentials  # noqa: E402
from dispatcher.settings import Settings  # noqa: E402
from stacks.config.cloud_run import first_dial_seconds  # noqa: E402
from tests.bot.conftest import bot_env, start_bot  # noqa: E402
from tests.support.dispatcher_server import serving  # noqa: E402
from tests.support.hand_dialled import hand_dialled  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

TOKEN = "b" * 40  # the deployment secret of this loopback dispatcher only
BOT_ON_CHANNEL_TIMEOUT = 240.0  # past the bot's own ~2 min of first-dial tries


@contextlib.asynccontextmanager
async def gate(port: int, target_port: int, opens_at: float, mode: str) -> AsyncIterator[None]:
    """`port` stands for the bot's route out: silent until `opens_at` (monotonic), then a plain TCP
    relay to the dispatcher. `refused`: nothing listens before then; `dropped`: a connection made
    before then is held unanswered until the bot's own deadline gives up on it."""
    held: list[asyncio.StreamWriter] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < opens_at:
            held.append(writer)  # never answered
            return
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    async def open_later() -> asyncio.Server:
        await asyncio.sleep(max(0.0, opens_at - time.monotonic()))
        return await asyncio.start_server(relay, "127.0.0.1", port)

    servers = [await asyncio.start_server(relay, "127.0.0.1", port)] if mode == "dropped" else []
    opening = asyncio.create_task(open_later()) if mode == "refused" else None
    try:
        yield
    finally:
        if opening is not None:
            if opening.done() and opening.exception() is None:
                servers.append(opening.result())
            else:
                opening.cancel()
        for writer in held:
            writer.close()
        for server in servers:
            server.close()
            await server.wait_closed()


async def one_row(silent: float, mode: str) -> float | None:
    """Spawn → the bot idle on the channel, the network silent for `silent` s after the spawn; None:
    never on it."""
    app = create_app(Settings(bot_channel_token=TOKEN), env={}, machines=hand_dialled(), rooms=None)
    channels = app.state.voicefleet.channels
    async with serving(app) as port:
        gate_port = free_port()
        credential = BotCredentials(TOKEN).issue("idle", "dial-1", 600)
        env = bot_env(BOT_CHANNEL_URL=f"ws://127.0.0.1:{gate_port}{CHANNEL_PATH}", BOT_CHANNEL_TOKEN=credential,
                      BOT_MACHINE_ID="dial-1")
        spawned = time.monotonic()
        async with gate(gate_port, port, spawned + silent, mode):
            bot = start_bot([], env)
            try:
                async with channels._changed:
                    await asyncio.wait_for(channels._changed.wait_for(lambda: channels.idle()),
                                           BOT_ON_CHANNEL_TIMEOUT)
                return time.monotonic() - spawned
            except TimeoutError:
                return None
            finally:
                bot.proc.terminate()
                await asyncio.to_thread(bot.proc.wait, 10)
                await app.state.voicefleet.aclose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--silent", type=float, nargs="+", default=[30.0], help="seconds the network carries nothing")
    p.add_argument("--modes", nargs="+", choices=("refused", "dropped"), default=["refused", "dropped"])
    args = p.parse_args(argv)
    # The bot's first dial comes after its imports: with an open network, spawn → on channel is that.
    start_up = asyncio.run(one_row(0.0, "refused"))
    if start_up is None:
        print("the bot never reached the channel with the network open: see its stderr")
        return 1
    print(f"bot start-up (spawn → on channel, network open): {start_up:.1f} s")
    print("| network silent | early dials | spawn → on channel | computed (start-up + first_dial_seconds) |")
    print("|---|---|---|---|")
    for silent in args.silent:
        for mode in args.modes:
            took = asyncio.run(one_row(silent, mode))
            wait = first_dial_seconds(max(0.0, silent - start_up),
                                      failed_dial_seconds=DIAL_TIMEOUT_SECONDS if mode == "dropped" else 0.0)
            shown = f"{took:.1f} s" if took is not None else "never on the channel"
            print(f"| {silent:g} s | {mode} | {shown} | {'-' if wait is None else f'{start_up + wait:.1f} s'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
