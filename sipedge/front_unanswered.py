"""What a worker's silence may cost (docs/sip.md#what-the-edge-defends-and-what-needs-a-firewall): an INVITE the front
relays holds that worker's slot until the worker answers it. A worker answers what its PJSIP cannot parse (which PJSIP
drops without a word: sipedge/unparsed_reply.py), but one stalled sends nothing, and anyone who sends INVITEs from a
trunk's address (over UDP, anyone can) would then hold slots with them. Two bounds:
- the front waits FIRST_ANSWER_MS for a worker's first answer (tm's fr_timer, for the front's INVITEs to workers
  alone: t_set_fr), then tries one more worker, then answers 408. PJSUA sends its `100 Trying` as it takes the
  INVITE, before the edge's own code runs (pjsua_call.c, pjsua_call_on_incoming), so the wait covers the worker's
  scheduling, not its work: on a loaded host the 100 was measured a tenth of it (FIRST_ANSWER_MS);
- each trunk's INVITEs waiting for a worker's first answer at once are capped (its `unanswered_invites`, by default
  half the edge's slots, rounded up): past that its INVITEs are answered 503 with Retry-After, so a spoofer of one
  trunk's address holds at most that share of the slots, never another trunk's.
The INVITEs waiting are kept in an htable by transaction (UNANSWERED_TABLE, keyed by Call-ID and CSeq), each
valued with its trunk's name in the config (`trunkN`), set as the INVITE goes to a worker and removed at that
worker's first answer or once the front stops waiting for it; the table's expiry is a backstop only."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_UNANSWERED_INVITES = 64 * 3  # every slot of the most workers an edge runs (sipedge/config.py MAX_WORKERS)
# How long the front waits for a worker's first answer to an INVITE. PJSUA's 100 came within 1 ms on an idle host,
# and on 2 cores beside 20 busy processes (a load of 25) within 51 ms for 9 in 10 and 93 ms at most: 1 s is ten
# times that, so a worker slow to send it costs no real call, and a silently dropped INVITE frees its slot in about
# a second (twice that with the one more worker the front tries) where the front's 3 s fr_timer held it 6 s.
FIRST_ANSWER_MS = 1000
UNANSWERED_TABLE = "unanswered"
BACKSTOP_SECONDS = 60  # an entry no path removed (none should be left) is gone within this and the timer's 20 s
# The INVITE's transaction by its Call-ID and CSeq, not tm's id: `$T(id_index_n)` made the transaction in the script,
# and a copy of the INVITE handled at once by a second Kamailio process then relayed the first one's transaction
# again (a second branch, or a 500 that ended the trunk's call); t_relay() makes it atomically, absorbing the copy.
TRANSACTION = "$ci:$cs"


def share(setting: int | None, slots: int) -> int:
    """A trunk's INVITEs that may wait for a worker's first answer at once: its `unanswered_invites` setting, else
    half the edge's `slots`, rounded up."""
    return setting if setting is not None else max(1, -(-slots // 2))


def unreached_setting(trunks: Sequence[tuple[str, Sequence[Network], int | None]]) -> str | None:
    """Why a trunk's `unanswered_invites` (each trunk: its name, sources and setting, in the file's order) would not
    bound its INVITEs, or None. The front knows a trunk by its source alone, the first trunk listed whose sources hold
    it (front_config._trunk_limits): an INVITE from a source an earlier trunk's overlaps counts against that one's
    share; a trunk without sources (its credential alone) has none."""
    for index, (name, sources, setting) in enumerate(trunks):
        if setting is None:
            continue
        if not sources:
            return (f"trunk {name!r} sets unanswered_invites without sources: the front shares out INVITEs by their "
                    "source, and a trunk of a credential alone has no share (a spoofer cannot answer its challenge); "
                    "leave it unset")
        for earlier, earlier_sources, _ in trunks[:index]:
            shared = next(((a, b) for a in sources for b in earlier_sources
                           if a.version == b.version and a.overlaps(b)), None)
            if shared is not None:
                return (f"trunk {name!r} sets unanswered_invites, but its source {shared[0]} overlaps trunk "
                        f"{earlier!r}'s {shared[1]}, listed before it: the front counts INVITEs from there against "
                        f"{earlier!r}'s share (it knows a trunk by its source alone); set it on {earlier!r}, or give "
                        f"{name!r} sources of its own")
    return None


def unanswered_params() -> str:
    return f'modparam("htable", "htable", "{UNANSWERED_TABLE}=>size=8;autoexpire={BACKSTOP_SECONDS};")'


def trunk_lines(index: int, setting: int | None, slots: int) -> str:
    """A trunk's block of LIMIT_SOURCE: the request's trunk and its share, for the INVITE's check below."""
    return f'$var(trunk) = "trunk{index}"; $var(share) = {share(setting, slots)};'


def over_share(refused: str, retry: str) -> str:
    """The request route's lines refusing a trunk's INVITE while its share of INVITEs is waiting; `refused` writes the
    refusal's line, `retry` adds the Retry-After."""
    return f"""    if ($var(trunk) != "") {{
        if ($shtcv({UNANSWERED_TABLE}=>==$var(trunk)) >= $var(share)) {{
            {refused}
            {retry} sl_send_reply("503", "Service Unavailable"); exit;
        }}
        $avp(trunk) = $var(trunk);  # the transaction's own: read again in its failure route
    }}
"""


def waiting() -> str:
    """TO_WORKER's lines before the INVITE goes to a worker: the front's wait for its first answer, and the INVITE
    counted against its trunk's share while it waits."""
    return f"""    t_set_fr(0, {FIRST_ANSWER_MS});
    if ($avp(trunk) != $null) {{ $sht({UNANSWERED_TABLE}=>{TRANSACTION}) = $avp(trunk); }}
"""


def answered() -> str:
    """The line that ends an INVITE's wait: at its worker's first answer, or once the front stops waiting."""
    return f"$sht({UNANSWERED_TABLE}=>{TRANSACTION}) = $null;"
