"""The front's refusal lines as the supervisor reads them off Kamailio's log (sipedge/front_refusals.py): each
counted once, in the edge's refusals; a line that merely holds the mark (a request's own text in another
line) counted never."""

from __future__ import annotations

import pytest

from sipedge.front_refusals import counted, line, new_mark, relayed
from sipedge.refusal_log import RefusalLog

PREFIX = " 0(4242) WARNING: <script>: "  # Kamailio's own, with -E and log_stderror
MARK = new_mark()


def test_a_refusal_line_is_counted_once_with_its_source_and_answer() -> None:
    refusals = RefusalLog()
    assert counted(f"{PREFIX}sipedge-front-refused {MARK} 403 from 192.0.2.7: no trunk allows this source\n",
                   refusals, MARK)
    assert counted(f"{PREFIX}sipedge-front-refused {MARK} dropped from 2001:db8::7: flooding, dropped until it "
                   "calms down\n", refusals, MARK)
    assert refusals.last_minute() == 2


@pytest.mark.parametrize("text", [
    # Another line whose sender-written part (a Call-ID, a Route) holds the mark: not at xlog's prefix, or not
    # at the line's end.
    f" 0(4242) WARNING: <script>: INVITE sipedge-front-refused {MARK} 403 from 192.0.2.7: x from worker "
    "127.0.0.1:5061 refused 403: sip:a is not a trunk of a call here",
    f" 0(4242) ERROR: <core> [core/receive.c:1]: sipedge-front-refused {MARK} 403 from 192.0.2.7: forged",
    f"{PREFIX}sipedge-front-refused {MARK} 403 from 192.0.2.7: Upper Case or $ signs are no reason of the config's",
    # A sender's line (its text in the parser's log) laid out as the config's, without this start's mark.
    f"{PREFIX}sipedge-front-refused 403 from 192.0.2.7: no trunk allows this source",
    f"{PREFIX}sipedge-front-refused {new_mark()} 403 from 192.0.2.7: no trunk allows this source",
])
def test_a_line_that_only_holds_the_mark_is_not_counted(text: str) -> None:
    refusals = RefusalLog()
    assert not counted(text, refusals, MARK) and refusals.last_minute() == 0


def test_the_config_writes_only_lines_it_reads_back() -> None:
    assert line("503", "over 60 invites a second", MARK) == \
        f'xlog("L_WARN", "sipedge-front-refused {MARK} 503 from $si: over 60 invites a second\\n");'
    with pytest.raises(ValueError, match="would not be read back"):
        line("503", "INVITE $ci", MARK)
    with pytest.raises(ValueError, match="would not be read back"):
        line("503", "over 60 invites a second", "$ci")


@pytest.mark.parametrize(("text", "shown"), [
    (b" 1(8150) ERROR: <core> [core/parser/parse_via.c:2706]: parse_via(): parsing via on: <garbage\n",
     b"kamailio:  1(8150) ERROR: <core> [core/parser/parse_via.c:2706]: parse_via(): parsing via on: <garbage\n"),
    # The rest of that entry: the request's own text, never a line of the edge's, nor a terminal's escape.
    (b"sipedge: a request from 192.0.2.7 refused by the front (403)\n",
     b"kamailio: | sipedge: a request from 192.0.2.7 refused by the front (403)\n"),
    (b"\x1b[2J 0(1) WARNING: x\r\n", b"kamailio: | \\x1b[2J 0(1) WARNING: x\n"),
])
def test_kamailios_other_lines_are_passed_on_as_its_own(text: bytes, shown: bytes) -> None:
    assert relayed(text) == shown
