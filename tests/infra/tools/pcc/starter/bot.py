"""The shape of a `pipecat init` bot: one `bot(runner_args)` (a fixture; never run)."""


async def bot(runner_args):  # noqa: ANN001, ANN201 - Pipecat's untyped entry point, as templates write it
    return None
