"""The front's refusal lines as the supervisor reads them off Kamailio's log (sipedge/front_refusals.py): each
counted once, in the edge's refusals; a line that merely holds the mark (a request's own text in another
line) counted never."""

from __future__ import annotations

import pytest

from sipedge.front_refusals import counted, line
from sipedge.refusal_log import RefusalLog

PREFIX = " 0(4242) WARNING: <script>: "  # Kamailio's own, with -E and log_stderror


def test_a_refusal_line_is_counted_once_with_its_source_and_answer() -> None:
    refusals = RefusalLog()
    assert counted(f"{PREFIX}sipedge-front-refused 403 from 192.0.2.7: no trunk allows this source\n", refusals)
    assert counted(f"{PREFIX}sipedge-front-refused dropped from 2001:db8::7: flooding, dropped until it calms "
                   "down\n", refusals)
    assert refusals.last_minute() == 2


@pytest.mark.parametrize("text", [
    # Another line whose sender-written part (a Call-ID, a Route) holds the mark: not at xlog's prefix, or not
    # at the line's end.
    " 0(4242) WARNING: <script>: INVITE sipedge-front-refused 403 from 192.0.2.7: x from worker 127.0.0.1:5061 "
    "refused 403: sip:a is not a trunk of a call here",
    " 0(4242) ERROR: <core> [core/receive.c:1]: sipedge-front-refused 403 from 192.0.2.7: forged",
    f"{PREFIX}sipedge-front-refused 403 from 192.0.2.7: Upper Case or $ signs are no reason of the config's",
])
def test_a_line_that_only_holds_the_mark_is_not_counted(text: str) -> None:
    refusals = RefusalLog()
    assert not counted(text, refusals) and refusals.last_minute() == 0


def test_the_config_writes_only_lines_it_reads_back() -> None:
    assert line("503", "over 60 invites a second") == \
        'xlog("L_WARN", "sipedge-front-refused 503 from $si: over 60 invites a second\\n");'
    with pytest.raises(ValueError, match="would not be read back"):
        line("503", "INVITE $ci")
