"""Phone numbers at Plivo's boundary. Plivo writes them with the country code and no `+` (its callbacks' `To`/`From`,
a live call's `to`: plivo-python's fixture liveCallGetResponse.json has `"to": "919798990001"`), sometimes with it
(the same record's `from`). The dispatcher speaks E.164 (`+…`) everywhere else: every number read from Plivo goes
through `from_plivo`, every number sent to it through `to_plivo`.
"""

from __future__ import annotations


def from_plivo(number: str) -> str:
    """A number as Plivo wrote it, in E.164: all digits gain the `+`; anything else (a SIP URI, already `+…`) is
    kept, for the caller's own check to refuse or take."""
    return f"+{number}" if number.isdigit() else number


def to_plivo(number: str) -> str:
    """A number as Plivo's reference writes it in a request: country code, no `+`."""
    return number.removeprefix("+")
