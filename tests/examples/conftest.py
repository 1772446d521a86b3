"""The example bots' own modules (examples/parrot/parrot.py & co.) importable by their bare names."""

from tests.support.examples import PARROT, use_example

use_example(PARROT)
from tests.bot.conftest import spawn_bot  # noqa: E402,F401 - the fixture, for the examples' process tests
