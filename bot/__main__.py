"""`python -m bot`: see bot/app.py and docs/bot.md."""

from __future__ import annotations

import sys

from bot.app import main

sys.exit(main())
