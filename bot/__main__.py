"""`python -m bot`: see bot/app.py and docs/bot.md."""

from __future__ import annotations

from bot.app import main
from bot.shutdown import exit_now

exit_now(main())
