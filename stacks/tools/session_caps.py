"""`python -m stacks.tools.session_caps BOT_FILE MAX_SESSION_SECONDS`: a local dispatcher's sessions past
the caps of the bot's realtime vendor that Pipecat does not carry a call past, one note a line (the
plan's words: stacks/config/realtime_cap_notes.py). `voicefleet config check` runs it as its own
process, as the dispatcher imports nothing of the stacks; a bot file that is not there says nothing."""

from __future__ import annotations

import sys
from pathlib import Path

from stacks.config.realtime_cap_notes import over_cap, said


def notes(bot_file: Path, max_session_seconds: int) -> list[str]:
    if not bot_file.is_file():
        return []  # the dispatcher's own check and start name a missing bot file
    return [said(cap, max_session_seconds, str(bot_file), local=True)
            for cap in over_cap(max_session_seconds, bot_file.parent, bot_file.name) if not cap.pipecat_continues]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m stacks.tools.session_caps BOT_FILE MAX_SESSION_SECONDS", file=sys.stderr)
        return 2
    for line in notes(Path(argv[0]), int(argv[1])):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
