"""The example bots' own modules (examples/parrot/parrot.py, examples/booking/booking_flow.py & co.)
importable by their bare names."""

from tests.support.examples import BOOKING, PARROT, use_example

use_example(PARROT)
use_example(BOOKING)
from tests.bot.conftest import spawn_bot  # noqa: E402,F401 - the fixture, for the examples' process tests
