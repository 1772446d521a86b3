"""The parrot (examples/parrot/bot.py) behind 4 s of module-level work (think: a model loaded at
import): a cold start that takes seconds, while a phone call's frames wait at the dispatcher."""

import importlib.util
import sys
import time
from pathlib import Path

PARROT = Path(__file__).resolve().parents[2] / "examples" / "parrot"
IMPORT_SECONDS = 4.0
time.sleep(IMPORT_SECONDS)

sys.path.append(str(PARROT))  # its sibling modules, as its own folder sees them
_spec = importlib.util.spec_from_file_location("parrot_bot", PARROT / "bot.py")
assert _spec is not None and _spec.loader is not None
_parrot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_parrot)
bot = _parrot.bot
