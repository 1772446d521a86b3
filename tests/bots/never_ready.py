"""Broken: loading the bot file never finishes (an SDK that hangs at import, a model download that
stalls), so its host never reports ready; only a stop ends it."""

import time

while True:
    time.sleep(1.0)


async def bot(runner_args: object) -> None:  # never reached
    pass
