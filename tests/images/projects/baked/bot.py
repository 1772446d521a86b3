"""A bot that needs a file baked into its image: importing it fails if the bake did not happen."""

import os
from pathlib import Path

from pipecat.runner.types import RunnerArguments

GREETING = (Path(os.environ["BOT_MODELS_DIR"]) / "greeting.txt").read_text(encoding="utf-8").strip()


async def bot(runner_args: RunnerArguments) -> None:
    print(f"{GREETING}: session {runner_args.session_id}")


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
