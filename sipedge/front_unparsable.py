"""What a worker's PJSIP (2.15.1, as the pjsua2-python wheel builds it) drops without a word, which the front refuses
itself before any worker sees it. PJSIP drops a whole request, unanswered, when any one of its headers fails PJSIP's
parser (sip_transport.c: a non-empty parse_err list drops the packet), while Kamailio's sanity checks let it through;
each such INVITE from a trunk's address (anyone's, over UDP) held a worker's slot while the front waited for an
answer. The rules follow PJSIP's causes (tests/sip/test_pjsip_silent_drops.py shows each), not the requests seen:
- a request past PJSIP's packet, 4000 bytes as the front relays it (PJSIP_MAX_PKT_LEN: PJSIP reads a datagram into
  a buffer of that size, and what is cut may leave a header it cannot parse): 513;
- a NUL anywhere in the head (no scanner of PJSIP's takes one), a bare CR (it ends PJSIP's line: what follows is
  parsed as a header of its own), or any other control character but HT (PJSIP takes these in a header it does not
  parse, and fails on them in one it does, as a Proxy-Authorization's `realm=\\x02…`): 400;
- a list header (Accept, Allow, Supported, Require, Unsupported) of more than PJSIP_GENERIC_ARRAY_MAX_COUNT values
  (PJSIP parses them into a fixed array and fails at the 33rd; Require and Supported add each line's values to one
  array) or with an empty value (`a,,b`, a trailing comma): 400;
- a Content-Type without a subtype, and a Request-URI past any number's (414).
PJSIP parses some thirty headers, each with causes of its own that no such list names in full: for any other, the
worker answers 400 itself (sipedge/unparsed_reply.py), a little later than the front would."""

from __future__ import annotations

from collections.abc import Callable

Refusal = Callable[[str, str], str]  # a refusal's line in Kamailio's log, by answer and why (front_refusals.line)

MOST_PACKET_BYTES = 4000  # pjsip/include/pjsip/sip_config.h's PJSIP_MAX_PKT_LEN, as the wheel builds it (measured)
OVERSIZE_FLAG = 7  # the request's flag: onsend_route found it past MOST_PACKET_BYTES on its way to a worker
# Kamailio's config strings take \xHH escapes (its cfg.lex): the regex itself holds the raw bytes, as a POSIX bracket
# expression. Kamailio matches a value as a C string, which ends at a NUL: NUL is looked for in the head's hex.
CONTROL_BYTES = r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]|\x0d[^\x0a]"
HEX_NUL = "^([0-9a-f][0-9a-f])*00"  # a 00 on a byte's boundary
LIST_HEADERS = {"Accept": False, "Allow": False, "Supported": True, "Require": True, "Unsupported": False}  # summed?
MOST_LIST_VALUES = 32  # pjsip/include/pjsip/sip_msg.h's PJSIP_GENERIC_ARRAY_MAX_COUNT
EMPTY_VALUE = "^,|,[[:space:]]*(,|$)"  # in a list's line, its white space trimmed
# A type and a subtype (RFC 3261 25.1's m-type "/" m-subtype, then parameters): "application" alone, which PJSIP
# drops unanswered, is refused 400 by the front.
CONTENT_TYPE_PATTERN = r"^[[:space:]]*[-!#%&'*+.^_|~[:alnum:]]+/[-!#%&'*+.^_|~[:alnum:]]+"
MOST_REQUEST_URI_CHARS = 512  # a number's URI and its parameters fit many times over


def unparsable_route(refused: Refusal) -> str:
    """The request route's lines refusing what PJSIP would drop; `refused(answer, why)` writes a refusal's line."""
    lists = "".join(_list_check(name, summed, refused) for name, summed in LIST_HEADERS.items())
    checks = f"""    # Past its packet's size first: the checks below then read a head of 4000 bytes at most.
    if ($ml > {MOST_PACKET_BYTES}) {{
        {refused("513", f"over pjsip's {MOST_PACKET_BYTES} bytes")} sl_send_reply("513", "Message Too Large"); exit;
    }}
    if ($msg(fpart) =~ "{CONTROL_BYTES}" || $(msg(fpart){{s.encode.hexa}}) =~ "{HEX_NUL}") {{
        {refused("400", "a control character in its head")} sl_send_reply("400", "Control Character In Header"); exit;
    }}
    $var(comma) = ",";
{lists}    if (is_present_hf("Content-Type") && !($hdr(Content-Type) =~ "{CONTENT_TYPE_PATTERN}")) {{
        {refused("400", "a content type that is no type/subtype")} sl_send_reply("400", "Bad Content-Type"); exit;
    }}
    if ($(ru{{s.len}}) > {MOST_REQUEST_URI_CHARS}) {{
        {refused("414", "a request uri too long")} sl_send_reply("414", "Request-URI Too Long"); exit;
    }}
"""
    # Not a keep-alive: the front answers an OPTIONS itself, no PJSIP reads it, and a 400 would tell a carrier
    # the edge is down.
    return ("    # What the sanity checks let through and PJSIP drops without a word (sipedge/front_unparsable.py).\n"
            '    if (!is_method("OPTIONS") || has_totag()) {\n'
            + "".join(f"    {line}" if line else line for line in checks.splitlines(keepends=True)) + "    }\n")


def _list_check(name: str, summed: bool, refused: Refusal) -> str:
    """The lines refusing `name` with an empty value or more values than PJSIP holds: in a line, or in all its lines
    together where `summed`. An empty line holds none."""
    line = f"$(hdr({name})[$var(line)]{{s.trim}})"
    return f"""    $var(values) = 0;
    $var(line) = 0;
    while ($var(line) < $hdrc({name})) {{
        $var(list) = {line};
        if ($var(list) != "") {{
            if ($var(list) =~ "{EMPTY_VALUE}") {{
                {refused("400", f"an empty value in {name.lower()}")}
                sl_send_reply("400", "Empty Value In {name}"); exit;
            }}
            {"$var(values) = $var(values) + 1" if summed else "$var(values) = 1"} + $(var(list){{s.count,$var(comma)}});
            if ($var(values) > {MOST_LIST_VALUES}) {{
                {refused("400", f"over {MOST_LIST_VALUES} values in {name.lower()}")}
                sl_send_reply("400", "Too Many Values In {name}"); exit;
            }}
        }}
        $var(line) = $var(line) + 1;
    }}
"""


def oversize_route(first_worker_port: int, workers: int) -> str:
    """The onsend_route: a request to a worker past PJSIP's packet is not sent, and flagged for the 513 that
    `oversize_reply` answers."""
    last = first_worker_port + workers - 1
    return f"""onsend_route {{
    # Only once Kamailio has written it is a request's size known: its own Via, Record-Route and P-Edge lines added.
    if ($snd(len) > {MOST_PACKET_BYTES} && $snd(port) >= {first_worker_port} && $snd(port) <= {last}) {{
        setflag({OVERSIZE_FLAG}); drop;
    }}
}}
"""


def oversize_answer(refused: Refusal) -> str:
    """The lines that answer a relay the onsend_route stopped 513 (in a request or a failure route alike; never an
    ACK, which no answer follows), before tm's own error for a relay that failed (477, which names tm)."""
    return f"""if (isflagset({OVERSIZE_FLAG}) && !is_method("ACK")) {{
            {refused("513", f"over pjsip's {MOST_PACKET_BYTES} bytes once relayed")}
            send_reply("513", "Message Too Large");
        }}"""


def oversize_reply(refused: Refusal) -> str:
    """oversize_answer's lines; any other relay that failed gets Kamailio's own error."""
    return f"""{oversize_answer(refused)} else {{
            sl_reply_error();
        }}"""
