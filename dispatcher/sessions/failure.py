"""What "failed" means for a session, one rule for the list, the session and the page: its start or
its machine failed, or it is over and its bot reported an error on the way. A session still up
with a bot's error is not failed yet (the bot may go on serving): it shows its `error` meanwhile."""

from __future__ import annotations


def shown_status(status: str, has_error: bool) -> str:
    """The status a reader is given: `ended` with a bot's error is `failed`."""
    return "failed" if status == "ended" and has_error else status
