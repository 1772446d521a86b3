"""A bot whose `on_client_connected` handler reads a Daily participant's `["id"]`, as pipecat-examples'
Daily bots do: under SmallWebRTC the handler is given the connection, and it raises. Pipecat logs it
and goes on; the bot echoes."""

from typing import Any

from loguru import logger
from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from testbot_kit import Echo, run_pipeline, transport_params


async def bot(runner_args: RunnerArguments) -> None:
    transport = await create_transport(runner_args, transport_params)

    @transport.event_handler("on_client_connected")
    async def on_client_connected(transport: Any, participant: Any) -> None:
        logger.info(f"first participant: {participant['id']}")

    await run_pipeline(transport, runner_args, [Echo()])
