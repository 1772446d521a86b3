"""The parrot (examples/parrot/bot.py) answering every turn 1 s later than it would: a canary whose
callers wait a second more at each turn, and hear everything else as before (the greeting included)."""

import asyncio
import importlib.util
import sys
from pathlib import Path

PARROT = Path(__file__).resolve().parents[2] / "examples" / "parrot"
REPLY_DELAY_SECONDS = 1.0

sys.path.append(str(PARROT))  # its sibling modules, as its own folder sees them
import parrot  # noqa: E402 - the module its bot.py imports, found on the path just added

_reply = parrot.Parrot._reply


async def _late_reply(self: parrot.Parrot, utterance: list) -> None:
    await asyncio.sleep(REPLY_DELAY_SECONDS)
    await _reply(self, utterance)


parrot.Parrot._reply = _late_reply  # type: ignore[method-assign]
_spec = importlib.util.spec_from_file_location("parrot_bot", PARROT / "bot.py")
assert _spec is not None and _spec.loader is not None
_parrot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_parrot)
bot = _parrot.bot
