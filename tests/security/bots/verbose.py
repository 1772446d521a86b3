"""A user's bot that turns every library's standard logging to DEBUG, as many bots do, then greets
and echoes (tests/bots/greeter.py). Whatever it logs reaches the dispatcher's log: local bots
write their stderr there."""

import logging
import sys
from pathlib import Path

logging.basicConfig(level=logging.DEBUG)
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bots"))  # the test bots' own kit

from greeter import bot  # noqa: E402

__all__ = ["bot"]
