"""`python -m bot`: see bot/app.py and docs/bot.md."""

from __future__ import annotations

# First: no other process of this user reads this one's environment (its channel credential).
from bot.hardening import harden_process

harden_process()

import os  # noqa: E402
import sys  # noqa: E402

from bot.environment_check import ALLOWED_OPTION, refusal  # noqa: E402

if (why := refusal(os.environ, isolated=bool(sys.flags.isolated), allowed=sys._xoptions.get(ALLOWED_OPTION),
                   args=sys.argv[1:])) is not None:
    print(why, file=sys.stderr)
    sys.exit(2)

import gc  # noqa: E402

# Start-up is import-bound and every object it creates lives until exit, so collecting during
# it is wasted work; bot.app.end_startup_gc_pause() turns the collector back on.
gc.disable()

# Before the first dataclass is defined (bot.config's): their generated methods' bytecode is cached.
from bot.dataclass_code import install  # noqa: E402

install()

from bot.app import main  # noqa: E402
from bot.shutdown import exit_now  # noqa: E402

code = main()
from bot.tracing import flush  # noqa: E402 (not before: `--help` stays import-free)

flush()  # the session's spans, batched, before the process goes
exit_now(code)
