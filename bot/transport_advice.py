"""The way out for a bot written for Daily alone that is given a SmallWebRTC session.

pipecat-examples' Daily bots read `runner_args.room_url` and `runner_args.token` (Modal's and the
PSTN servers' `run_bot(room_url, token)`), or list only `daily` in `transport_params`. A local
dispatcher starts WebRTC sessions unless told otherwise, so such a bot meets Python's
`'SmallWebRTCRunnerArguments' object has no attribute 'room_url'` or Pipecat's
`Missing transport params for 'webrtc'`, neither of which says that the dispatcher can give it
Daily sessions.
"""

from __future__ import annotations

import re

# Short: the session's `detail` holds the file, the error and this within its 512 characters.
DAILY_ONLY = ('a Daily-only bot needs Daily sessions: TRANSPORTS=webrtc,daily (with DAILY_API_KEY) on the '
              'dispatcher and POST /start {"transport": "daily"}')
_DAILY_FIELDS = frozenset({"room_url", "token"})  # what DailyRunnerArguments has and the others lack
_NO_WEBRTC_PARAMS = re.compile(r"Missing transport params for 'webrtc'")


def daily_only_way_out(exc: BaseException) -> str | None:
    """The advice when `exc` is a Daily-only bot's failure on another transport's session, else None."""
    if isinstance(exc, AttributeError) and exc.name in _DAILY_FIELDS:
        given = type(getattr(exc, "obj", None)).__name__
        if given.endswith("RunnerArguments") and given != "DailyRunnerArguments":
            return f"this session is not Daily's ({given}); {DAILY_ONLY}"
    if isinstance(exc, ValueError) and _NO_WEBRTC_PARAMS.search(str(exc)):
        return f"this session is SmallWebRTC's; {DAILY_ONLY}, or add a 'webrtc' entry"
    return None
