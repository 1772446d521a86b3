"""The parrot (examples/parrot/bot.py) whose `bot()` computes 0.4 s of CPU before its first await
(think: a model loaded per call, or an SDK imported on first use), while the caller's ICE checks
wait for the event loop."""

import importlib.util
import sys
import time
from pathlib import Path

from pipecat.runner.types import RunnerArguments

PARROT = Path(__file__).resolve().parents[2] / "examples" / "parrot"
START_CPU_SECONDS = 0.4

sys.path.append(str(PARROT))  # its sibling modules, as its own folder sees them
_spec = importlib.util.spec_from_file_location("parrot_bot", PARROT / "bot.py")
assert _spec is not None and _spec.loader is not None
_parrot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_parrot)


async def bot(runner_args: RunnerArguments) -> None:
    done = time.thread_time() + START_CPU_SECONDS
    while time.thread_time() < done:  # CPU, not a sleep: a busy machine stretches it, never shortens it
        pass
    await _parrot.bot(runner_args)
