"""The kamailio.cfg of the edge's front (docs/sip.md#capacity): Kamailio on the edge's SIP port, in front of its
PJSIP workers on loopback. Before any worker sees a request it drops malformed ones (sanity) and floods (pike:
per source; pipelimit: all INVITEs), refuses what PJSIP would drop without a word (sipedge/front_unparsable.py),
answers a source no trunk allows 403 itself, and a trunk whose share of INVITEs waits for a worker's first answer
503 (sipedge/front_unanswered.py, which also bounds that wait), then sends an INVITE to the
worker with the most free slots (dispatcher's call-load algorithm, each worker's `maxload` its capacity), and on
to the next only when a worker refused the call for want of a slot (its refusal marked FULL_HEADER, answered by
the front's own 503) or, once a call, gave no answer (408: dead, or dropping what it cannot parse; only probes
mark a worker dead). Any other refusal goes to the trunk as the worker gave it: it was made for the dispatcher's
sake (its refusal, no bot in time), and another worker would only ask it again. Nor does a call move on once a
worker rang (180/183): that worker has asked for its session. A call that ends before its answer gives its
worker's slot back on every path (refusal, CANCEL, a relay that failed). The trunk's source travels to the worker
in SOURCE_HEADER, the username of an inbound credential the front checked in CREDENTIAL_HEADER (a trunk without
sources: any address). A worker's own INVITE (an outbound call, a person for a transfer) goes to a trunk's
termination alone, never elsewhere. Once the supervisor says the edge drains (sipedge/front_drain.py), a trunk's
new INVITE is answered 503 here. With tls_port, Kamailio also takes SIP over TLS there (sipedge/front_tls.py) and
tells each worker which hop a request came by in TRANSPORT_HEADER, each request to a worker carrying the edge's
token for this start in TOKEN_HEADER, without which a worker believes neither; a worker's own INVITE carries
another, the workers' calls' token, which the front never sends; the supervisor's word of the drain a third.
Those tokens are the file's only secrets (the folder is private to the edge's user); the rest is addresses,
ports, limits and the paths of the TLS files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sipedge.config import EdgeConfig, Tls, Trunk
from sipedge.front_drain import drain_from_start, drain_params, drain_route, draining_condition
from sipedge.front_refusals import line, new_mark
from sipedge.front_tls import MODULES as TLS_MODULES
from sipedge.front_tls import keep_for_the_call, tls_globals, tls_params
from sipedge.front_unanswered import answered, over_share, trunk_lines, unanswered_params, waiting
from sipedge.front_unparsable import oversize_answer, oversize_reply, oversize_route, unparsable_route
from sipedge.worker_place import (
    CREDENTIAL_HEADER,
    FULL_HEADER,
    SOURCE_HEADER,
    TOKEN_HEADER,
    TRANSPORT_HEADER,
    WORKER_HOST,
    new_token,
)

MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
WORKER_SET = 1  # the dispatcher set of the workers
# A trunk starts a few calls a second; a scanner or an INVITE+CANCEL flood sends hundreds.
# Each call is 3 requests from the trunk (INVITE, ACK, BYE): 100 in 2 s is a trunk starting ~15 calls a second.
PIKE_UNIT_SECONDS, PIKE_REQUESTS_PER_UNIT, PIKE_BLOCK_SECONDS = 2, 100, 30
# A trunk's own requests, from all its sources together: pike's rate for one source, never a lock-out.
TRUNK_REQUESTS_PER_SECOND = PIKE_REQUESTS_PER_UNIT // PIKE_UNIT_SECONDS
INVITES_PER_SECOND = 60  # all sources together: what the workers' PJSIP can take without running out of sockets
RETRY_AFTER_SECONDS = 5
# The sanity module's checks of a request (its README's bits): request line, headers, Via, CSeq, Content-Length, URIs,
# duplicate tags, and (2048) digest credentials: a malformed Authorization or Proxy-Authorization is answered 400 by
# the module, logging nothing, before anything parses it again (the auth module would log an error for each one).
SANITY_CHECKS = 17895 | 2048
# The URIs its parse check (1024) parses: Request-URI, From, To and (8) Contact. PJSIP drops an INVITE whose Contact
# is no URI ("Contact: 0") without a word, which would hold a worker's slot for the front's two waits: answered 400.
SANITY_URI_CHECKS = 1 | 2 | 4 | 8
# A trunk with an inbound credential (docs/sip.md#inbound-digest): the realm its challenges name, and how many wrong
# responses one source may give in DIGEST_FAILURE_SECONDS before its requests are refused unchecked until it stops.
DIGEST_REALM = "voicefleet"
DIGEST_FAILURES, DIGEST_FAILURE_SECONDS = 10, 60
AUTH_CHECKS = 1 | 2 | 4 | 8  # what a nonce binds a response to: Request-URI, Call-ID, From tag, source (_digest_params)
NONCE_SECONDS = 300  # how long a nonce is good for (the auth module's nonce_expire, its default)
CALL_SECONDS = 4 * 3600  # how long the front remembers a call's worker, at most
SLOT_MARGIN_SECONDS = 30
DESTINATIONS = "_dsdst_"  # the dispatcher module's list of the workers a call may still try (its xavp_dst)
# How often a worker is sent OPTIONS: one that leaves one unanswered (tm's fr_timer, 3 s) is skipped until it has
# answered two (ds_probing_threshold, ds_inactive_threshold): a worker that dies is skipped within 5 s.
PROBE_SECONDS = 2
# A request's text in the config's own log lines, percent-encoded: a folded header's CR/LF would otherwise
# write lines of the sender's into Kamailio's log (sipedge/front_refusals.py).
CALL_ID, NEXT_HOP, DOMAIN = "$(ci{s.urlencode.param})", "$(var(next){s.urlencode.param})", "$(rd{s.urlencode.param})"


@dataclass(frozen=True)
class FrontFiles:
    config: Path
    workers: Path


def worker_capacity() -> int:
    """An edge worker's calls at once (sipedge/edge.py: PJSUA's slots less the one kept for refusals)."""
    from sipedge.edge import SLOTS_FOR_REFUSALS
    from sipedge.stack import PJSUA_CALLS
    return PJSUA_CALLS - SLOTS_FOR_REFUSALS


def write_front(config: EdgeConfig, folder: Path, capacity: int, token: str, tls: Tls | None = None, *,
                mark: str | None = None, call_token: str | None = None, drain_token: str | None = None,
                draining: bool = False) -> FrontFiles:
    """kamailio.cfg and the workers' dispatcher list, written into `folder` (the caller's private one);
    the front's requests to workers carry `token`, a worker's own INVITE must carry `call_token`, the
    supervisor's word of the drain `drain_token` (sipedge/front_drain.py; none: new ones, which nobody
    knows), and a front started `draining` refuses new calls from the start; Kamailio reads the TLS files by
    `tls`'s paths (unset: the configuration's own); its refusal lines carry `mark` (sipedge/front_refusals.py;
    none: a new one)."""
    workers = folder / "workers.list"
    workers.write_text("".join(
        f"{WORKER_SET} sip:{WORKER_HOST}:{config.worker_sip_port + index} 0 0 duid=w{index};maxload={capacity}\n"
        for index in range(config.workers)))
    cfg = folder / "kamailio.cfg"
    cfg.touch(mode=0o600)
    cfg.write_text(render(config, workers, token, tls or config.tls, mark=mark, call_token=call_token,
                          drain_token=drain_token, draining=draining, capacity=capacity))
    return FrontFiles(cfg, workers)


def _networks(config: EdgeConfig) -> list[str]:
    return sorted({str(network) for trunk in config.trunks for network in trunk.sources})


def _from_any(networks: list[str]) -> str:
    return " || ".join(f"src_ip == {network}" for network in networks) or "0 == 1"


def _trunk_sources(config: EdgeConfig) -> str:
    return _from_any(_networks(config))


def _without_credential(config: EdgeConfig) -> str:
    """A Kamailio condition: the source is a trunk's that asks no inbound credential (no stranger's; a trunk with
    one has sources of its own, sipedge/config.py)."""
    networks = sorted({str(n) for t in config.trunks if t.inbound_digest is None for n in t.sources})
    return f"({_from_any(networks)})" if networks else "0 == 1"


def _trunk_network(config: EdgeConfig, host: str) -> str:
    """A Kamailio condition: `host` is within a trunk's sources (false with none: trunks of credentials alone)."""
    networks = ",".join(_networks(config))
    return f'is_in_subnet("{host}", "{networks}")' if networks else "0 == 1"


def _from_anywhere(config: EdgeConfig) -> str:
    """The request route's lines for an INVITE a trunk's credential admitted from no trunk's source: the worker's
    requests within the call go back to that source, the dialog's own peer (PEER_KEYS), and its Contact is made to
    name it (nathelper; over TLS the connection's alias does, _hops), as it is where its answers come from."""
    if not any(t.inbound_digest is not None and not t.sources for t in config.trunks):
        return ""
    contact = "fix_nated_contact();" if config.tls is None else "if (proto != TLS) { fix_nated_contact(); }"
    return f"""    if ($var(credential) != "" && !({_trunk_sources(config)})) {{
        {contact}
        $sht(peers=>$ci::source) = $si;
    }}
"""


def _trunk_limits(config: EdgeConfig, retry: str, mark: str, capacity: int) -> str:
    blocks = []
    for index, trunk in enumerate(t for t in config.trunks if t.sources):
        blocks.append(f"""    if ({_from_any(sorted({str(n) for n in trunk.sources}))}) {{
        {trunk_lines(index, trunk.unanswered_invites, config.workers * capacity)}
        if (!is_method("ACK|CANCEL|BYE") && !pl_check("trunk{index}", "TAILDROP", {TRUNK_REQUESTS_PER_SECOND})) {{
            {line("503", f"trunk{index} over {TRUNK_REQUESTS_PER_SECOND}/s", mark)}
            {retry} sl_send_reply("503", "Service Unavailable"); exit;
        }}
        return;
    }}""")
    return "\n".join(blocks)


def _digest(config: EdgeConfig, mark: str) -> str:
    """route[DIGEST]'s body: each trunk with an inbound credential and sources challenges its sources' requests (407)
    and admits only a valid response, before anyone looks at the number; then, with trunks that have a credential
    and no sources, so does any other source that no trunk names, the username picking the trunk. Kamailio's auth
    module checks it, the password read from the trunk's variable ($env): the cfg holds none. Its nonces carry the
    source address (AUTH_CHECKS), so only whoever receives at a source can give a response counted against it.
    An admitted INVITE tells the worker whose credential it carried (CREDENTIAL_HEADER)."""
    blocks = [f"""    if ({_from_any(sorted({str(n) for n in trunk.sources}))}) {{
{_check_credential([trunk], mark)}
    }}""" for trunk in config.trunks if trunk.inbound_digest is not None and trunk.sources]
    anywhere = [trunk for trunk in config.trunks if trunk.inbound_digest is not None and not trunk.sources]
    if anywhere:
        blocks.append(f"""    # A trunk's source is its own trunk's (checked above, or by its address alone); any other
    # address is the trunk's whose credential it answers with, or nobody's.
    if ({_trunk_sources(config)}) {{ return; }}
{_check_credential(anywhere, mark)}""")
    return "\n".join(blocks)


def _check_credential(trunks: list[Trunk], mark: str) -> str:
    """The check of a request's credential against `trunks`' (the username picks one): a challenge without one, a
    403 for a wrong one, and for a right one its trunk's username in CREDENTIAL_HEADER, and `return`."""
    users = []
    for trunk in trunks:
        assert trunk.inbound_digest is not None, "only a trunk with a credential is checked"
        user, variable = trunk.inbound_digest.username, trunk.inbound_digest.password_env
        users.append(f"""if ($au == "{user}") {{
            $var(credential) = "{user}";
            pv_proxy_authenticate("{DIGEST_REALM}", "$env({variable})", "0");
            $var(digest) = $rc;
        }}""")
    return f"""        if ($sht(digestfails=>$si) != $null && $sht(digestfails=>$si) >= {DIGEST_FAILURES}) {{
            {line("403", "over its wrong digest responses", mark)} sl_send_reply("403", "Forbidden"); exit;
        }}
        if (!is_present_hf("Proxy-Authorization")) {{ proxy_challenge("{DIGEST_REALM}", "1"); exit; }}
        {" else ".join(users)} else {{
            # A username of no trunk's is checked as a wrong password is (its nonce, counted alike), so the
            # answers tell a guesser nothing of which usernames are real; it is never admitted, whatever it says.
            $var(credential) = "";
            pv_proxy_authenticate("{DIGEST_REALM}", "no-trunk", "0");  # admits nobody: see below
            $var(digest) = $rc;
            if ($var(digest) > 0) {{ $var(digest) = -2; }}
        }}
        if ($var(digest) == -4) {{ proxy_challenge("{DIGEST_REALM}", "17"); exit; }}  # expired: stale=true
        if ($var(digest) == -5 || $var(digest) == -6) {{ proxy_challenge("{DIGEST_REALM}", "1"); exit; }}
        if ($var(digest) < 0) {{
            if ($var(digest) == -2) {{  # on a nonce sent to this source: whoever gave it receives there
                if ($sht(digestfails=>$si) == $null) {{ $sht(digestfails=>$si) = 1; }}
                else {{ $var(failures) = $shtinc(digestfails=>$si); }}
            }}
            if ($var(credential) == "") {{
                {line("403", "a digest of another username", mark)} sl_send_reply("403", "Forbidden"); exit;
            }}
            {line("403", "a wrong digest response", mark)} sl_send_reply("403", "Forbidden"); exit;
        }}
        consume_credentials();  # the front's alone: never to a worker
        append_hf("{CREDENTIAL_HEADER}: $var(credential)\r\n");
        route(ONE_INVITE);
        return;"""


def _digest_route(config: EdgeConfig, mark: str) -> str:
    return f"""route[DIGEST] {{
    # Out of a call, before the source's trunk or number is looked at: a wrong credential is answered alike
    # whatever number it asks for. CANCEL and ACK are never challenged (RFC 3261 22.1), nor requests within a
    # call, nor OPTIONS: the front answers it itself, alike to anyone (the edge's own probe, a trunk's keep-alive).
    # A $var outlives its request in a process: ONE_INVITE sets `invite` for this one alone, a right credential
    # `credential` (its username).
    $var(invite) = "";
    $var(credential) = "";
{_digest(config, mark)}
}}

route[ONE_INVITE] {{
    # A nonce is good for its own call's Call-ID, From tag and number until it expires: a captured INVITE sent
    # again on its call (a new CSeq, an SDP of its own) would pass the check again. So a Call-ID the front relayed
    # with a credential takes no other INVITE outside a call until the nonce is dead (invites=>, set before the
    # relay). Its own retransmission (same CSeq and top Via: its transaction, RFC 3261 17.2.3) was answered by
    # t_check_trans() while its transaction lives; one that gets here is in flight in another process (tm
    # absorbs the next) or after its transaction's end, never its UA's: dropped, unanswered (docs/sip.md).
    if (!is_method("INVITE")) {{ return; }}
    $var(invite) = $(hdr(CSeq)) + " " + $(hdr(Via)[0]);
    $var(invite) = $(var(invite){{s.md5}});
    if ($sht(invites=>$ci) == $null) {{ return; }}
    if ($sht(invites=>$ci) == $var(invite)) {{ exit; }}
    {line("403", "another invite on a call its credential opened", mark)} sl_send_reply("403", "Forbidden"); exit;
}}

"""


def _digest_params() -> str:
    # auth_checks_no_dlg: a nonce is good only for the Request-URI (1), Call-ID (2) and From tag (4) of the request
    # challenged, and from the source it was sent to (8) (Kamailio's auth module, nonce.h): a captured response
    # opens no other call. Not nonce_count, which would drop these checks (docs/sip.md#inbound-digest).
    # Not one_time_nonce either: it challenges a UA's retransmission of a request (docs/sip.md#inbound-digest).
    # invites: each call relayed with a credential (route[ONE_INVITE]) for as long as its nonce is good; at most
    # INVITES_PER_SECOND x NONCE_SECONDS entries of an MD5 each, in 2^12 slots.
    return (f'\nmodparam("auth", "auth_checks_no_dlg", {AUTH_CHECKS})'
            f'\nmodparam("auth", "nonce_expire", {NONCE_SECONDS})'
            f'\nmodparam("htable", "htable", "digestfails=>size=8;autoexpire={DIGEST_FAILURE_SECONDS};")'
            f'\nmodparam("htable", "htable", "invites=>size=12;autoexpire={NONCE_SECONDS};")')


def _any_case(text: str) -> str:
    """A POSIX regex matching `text` in any case."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in text)


def _is_worker(uri: str, config: EdgeConfig) -> str:
    """A Kamailio condition: `uri` names one of the workers' loopback ports."""
    ports = "|".join(str(config.worker_sip_port + index) for index in range(config.workers))
    return f'$({uri[1:]}{{uri.host}}) == "{WORKER_HOST}" && $({uri[1:]}{{uri.port}}) =~ "^({ports})$"'


def _terminations(config: EdgeConfig) -> str:
    """A Kamailio condition: the Request-URI is at a trunk's termination (its host, and its port or the
    scheme's), where a worker's own calls go (sipedge/outbound_sip.py); false with no trunk that places calls."""
    places = []
    for trunk in config.trunks:
        if trunk.termination_uri is None:
            continue
        scheme, rest = trunk.termination_uri.split(":", 1)
        host, port = _host_port(rest.split("@", 1)[-1].split(";", 1)[0], 5061 if scheme == "sips" else 5060)
        if host is not None:
            places.append(f'($rd == "{host}" && $rp == {port})')
    return " || ".join(places) or "0 == 1"


def _host_port(hostport: str, default: int) -> tuple[str | None, int]:
    """`hostport`'s host and port; None for a host that is no name or address (never written into kamailio.cfg,
    whose strings it could end)."""
    found = re.fullmatch(r"([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?", hostport)
    if found is None:
        return None, default
    return found[1], int(found[2]) if found[2] else default


# A worker's own call's peers, by Call-ID: the host it called, and its answer's source and Contact host.
PEER_KEYS = ("$ci", "$ci::source", "$ci::contact")


def _a_peer(host: str) -> str:
    """A Kamailio condition: `host` is a peer of the worker's own call of this Call-ID."""
    return "(" + " || ".join(f"($sht(peers=>{key}) != $null && {host} == $sht(peers=>{key}))"
                             for key in PEER_KEYS) + ")"


def _from_the_calls_peer() -> str:
    """A Kamailio condition: the request comes from the call's own peer, as far as the front knows it: the source a
    credential call was admitted from ($ci::source, _from_anywhere) when it has one and is no worker's own call."""
    return "($sht(peers=>$ci) != $null || $sht(peers=>$ci::source) == $null || $sht(peers=>$ci::source) == $si)"


def _forget_peers() -> str:
    return " ".join(f"$sht(peers=>{key}) = $null;" for key in PEER_KEYS)


def _advertise(config: EdgeConfig) -> str:
    """Record-Route and Via name the public address when the host's interface holds a private one."""
    if config.advertised == config.sip_address:
        return ""
    return f" advertise {config.advertised}:{config.sip_port}"


def _transport(config: EdgeConfig) -> str:
    """kamailio.cfg's core lines on transports: UDP's listener, and TLS's when the edge has tls_port."""
    udp = f"listen=udp:{config.sip_address}:{config.sip_port}{_advertise(config)}"
    if config.tls is None:
        return f"{udp}\ndisable_tcp=yes"
    return f"{udp}\n{tls_globals(config, config.tls)}"


def _hops(config: EdgeConfig) -> tuple[str, str]:
    """The request route's lines for a trunk's request over TLS, and for a worker's to the trunk: a trunk's
    Contact is marked with the connection it came on (nathelper's alias), and a worker's request to it goes
    on that connection only, never a new one (Kamailio would not check the trunk's certificate)."""
    if config.tls is None:
        return "", ""
    return ('    if (proto == TLS && is_present_hf("Contact")) { add_contact_alias(); }\n',
            '        if ($(ru{uri.param,alias}) != "") { handle_ruri_alias(); }\n'
            '        set_forward_no_connect();\n')


def render(config: EdgeConfig, workers: Path, token: str, tls: Tls | None = None, *, mark: str | None = None,
           call_token: str | None = None, drain_token: str | None = None, draining: bool = False,
           capacity: int | None = None) -> str:
    """The kamailio.cfg; its refusal lines carry `mark`, a worker's INVITE `call_token`, the supervisor's word of
    the drain `drain_token` (none: new ones, which nobody knows); each worker holds `capacity` calls (unset: an
    edge worker's)."""
    capacity = capacity or worker_capacity()
    mark = mark or new_mark()
    call_token, drain_token = call_token or new_token(), drain_token or new_token()
    digest = any(trunk.inbound_digest is not None for trunk in config.trunks)

    def refused(answer: str, why: str) -> str:
        return line(answer, why, mark)

    modules = ("tm", "tmx", "sl", "rr", "pv", "maxfwd", "textops", "siputils", "xlog", "sanity", "pike", "pipelimit",
               "dispatcher", "htable", "ipops", *(TLS_MODULES if config.tls is not None else ()),
               *(("auth",) if digest else ()),
               *(("nathelper",) if config.tls is None and _from_anywhere(config) else ()))
    tls_lines = "" if config.tls is None else f"\n{tls_params(tls or config.tls)}"
    from_trunk, to_trunk = _hops(config)
    keep = "" if config.tls is None else keep_for_the_call()
    loads = "\n".join(f'loadmodule "{name}.so"' for name in modules)
    admitted = '    if ($var(invite) != "") { $sht(invites=>$ci) = $var(invite); }  # route[ONE_INVITE]\n'
    retry = f'append_to_reply("Retry-After: {RETRY_AFTER_SECONDS}\\r\\n");'
    unparsable = unparsable_route(refused)  # what PJSIP would drop without a word
    in_dialog_oversize = oversize_answer(refused)  # tm's own error (477) otherwise
    ring_limit = int(config.answer_seconds) + 10  # seconds a worker may ring before the front gives up on it
    return f"""#!KAMAILIO
# Generated by sipedge (sipedge/front_config.py) for this run; not edited by hand.
debug=2
log_stderror=yes
# The parser's dump of a malformed request (up to 64 KiB, written in 8 KiB pieces, dropped from 32 KiB by the JSON
# log engine) at debug level: not written. Such a request never reaches the route below, so it is never counted.
sip_parser_log=3
children=2
# Else Kamailio makes itself dumpable again once it drops to nobody, and any other nobody process reads the
# inbound digest passwords in its /proc/PID/environ (docs/sip.md#inbound-digest). No core dump is written either.
disable_core_dump=yes
{_transport(config)}
auto_aliases=no
server_signature=no
sip_warning=0
mpath="{MODULES}/"
{loads}

modparam("tm", "fr_timer", 3000)
modparam("tm", "auto_inv_100_reason", "Trying")  # not Kamailio's own words, which name it
modparam("tm", "fr_inv_timer", {ring_limit * 1000})
modparam("rr", "enable_full_lr", 1)
modparam("pike", "sampling_time_unit", {PIKE_UNIT_SECONDS})
modparam("pike", "reqs_density_per_unit", {PIKE_REQUESTS_PER_UNIT})
modparam("pike", "remove_latency", {PIKE_BLOCK_SECONDS})
modparam("pipelimit", "timer_interval", 1)
modparam("htable", "htable", "calls=>size=12;autoexpire={CALL_SECONDS};")
modparam("htable", "htable", "peers=>size=12;autoexpire={CALL_SECONDS};")  # a worker's own call: PEER_KEYS
{unanswered_params()}  # INVITEs waiting for a worker's first answer (sipedge/front_unanswered.py)
# The supervisor's word that the edge drains: its own request, with its token (front_drain.py).
{drain_params()}
modparam("dispatcher", "list_file", "{workers}")
modparam("dispatcher", "flags", 2)
modparam("dispatcher", "ds_hash_size", 9)
modparam("dispatcher", "xavp_dst", "{DESTINATIONS}")
# A call's slot is given back at its end; should a path miss it, an unanswered call's slot is given
# back once its ringing can no longer last, an answered one's once no call can.
modparam("dispatcher", "ds_hash_initexpire", {ring_limit + SLOT_MARGIN_SECONDS})
modparam("dispatcher", "ds_hash_expire", {CALL_SECONDS})
modparam("dispatcher", "ds_ping_interval", {PROBE_SECONDS})
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_probing_threshold", 1)
modparam("dispatcher", "ds_inactive_threshold", 2)
modparam("dispatcher", "ds_ping_from", "sip:front@{config.sip_address}"){tls_lines}{_digest_params() if digest else ""}
{drain_from_start() if draining else ""}
request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        {refused("483", "too many hops")} sl_send_reply("483", "Too Many Hops"); exit;
    }}
    if (!sanity_check("{SANITY_CHECKS}", "{SANITY_URI_CHECKS}")) {{
        {refused("sanity", "malformed, answered by the sanity checks")} exit;
    }}
{unparsable}{drain_route(config, drain_token)}    if (ds_is_from_list("{WORKER_SET}")) {{ route(FROM_WORKER); exit; }}
    route(LIMIT_SOURCE);
    remove_hf("{SOURCE_HEADER}");
    remove_hf("{TRANSPORT_HEADER}");
    remove_hf("{FULL_HEADER}");  # a reply's mark, read from a worker's replies only
    remove_hf("{TOKEN_HEADER}");
    remove_hf("{CREDENTIAL_HEADER}");  # the front's word on the credential it checked, never a caller's
    if (has_body() && (search_body("{_any_case(SOURCE_HEADER)}") || search_body("{_any_case(TRANSPORT_HEADER)}")
                       || search_body("{_any_case(TOKEN_HEADER)}") || search_body("{_any_case(CREDENTIAL_HEADER)}"))) {{
        # Where a worker might take the body for the head (bare-LF lines): refused, never passed on.
        {refused("400", "a body naming the front's own headers")} sl_send_reply("400", "Bad Request"); exit;
    }}
    append_hf("{SOURCE_HEADER}: $si\\r\\n");
    append_hf("{TRANSPORT_HEADER}: $pr\\r\\n");
    append_hf("{TOKEN_HEADER}: {token}\\r\\n");
{from_trunk}    if (has_totag()) {{ route(IN_DIALOG); exit; }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{ ds_load_update(); t_relay(); }}
        exit;
    }}
    if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    t_check_trans();
    if (is_method("OPTIONS")) {{ sl_send_reply("200", "OK"); exit; }}
{"    route(DIGEST);" + chr(10) if digest else ""}
    if (!is_method("INVITE")) {{
        {refused("405", "not an invite, outside a call")} sl_send_reply("405", "Method Not Allowed"); exit;
    }}
    if (!({_trunk_sources(config)}){' && $var(credential) == ""' if digest else ""}) {{
        {refused("403", "no trunk allows this source")} sl_send_reply("403", "Forbidden"); exit;
    }}
    if ({draining_condition()}) {{
        # The edge drains: the front refuses a new call itself, so none reaches a draining worker.
        {refused("503", "the edge is draining")}
        {retry} sl_send_reply("503", "Service Unavailable"); exit;
    }}
    if (!pl_check("invites", "TAILDROP", {INVITES_PER_SECOND})) {{
        {refused("503", f"over {INVITES_PER_SECOND} invites a second")}
        {retry} sl_send_reply("503", "Service Unavailable"); exit;
    }}
{over_share(refused("503", "its trunk's share of invites waits for a worker's first answer"), retry)}    record_route();
    if (!ds_select_dst("{WORKER_SET}", "10")) {{
        {refused("503", "no worker has a free slot")}
        {retry} sl_send_reply("503", "Service Unavailable"); exit;
    }}
{keep}{admitted if digest else ""}{_from_anywhere(config)}    route(TO_WORKER);
}}

route[LIMIT_SOURCE] {{
    # A trunk's address is easily spoofed over UDP: pike would lock the trunk out for someone else's
    # flood. Each trunk's requests share a pipe of their own instead, past its rate answered 503.
    $var(trunk) = "";  # a trunk's source sets its name (sipedge/front_unanswered.py); a $var outlives its request
{_trunk_limits(config, retry, mark, capacity)}
    # A flooding source: dropped, unanswered, until it calms down; counted once, when pike first finds it
    # (-2; then -1 for each request dropped), so a flood writes a line per source, not per packet.
    pike_check_req();
    $var(pike) = $rc;
    if ($var(pike) == -2) {{ {refused("dropped", "flooding, dropped until it calms down")} }}
    if ($var(pike) < 0) {{ exit; }}
}}

{_digest_route(config, mark) if digest else ""}route[TO_WORKER] {{
{waiting()}    $sht(calls=>$ci) = $du;
    t_on_reply("WORKER_REPLY");
    t_on_failure("NEXT_WORKER");
    if (!t_relay()) {{
        # No branch went out (tm's forking limit, a socket): nothing will unset the worker's slot later.
        {answered()}
        ds_load_unset();
        $sht(calls=>$ci) = $null;
        {oversize_reply(refused)}
    }}
}}

{oversize_route(config.worker_sip_port, config.workers)}
route[IN_DIALOG] {{
    # A trunk's request within a call goes to the call's worker and nowhere else: by the Route the
    # front recorded when it leads to a worker, else (a caller that ignores Record-Route) by its
    # Call-ID. A Route that leads anywhere else would have the front relay a stranger's requests.
    if (!is_method("ACK")) {{ t_check_trans(); }}  # a retransmission: its transaction answers it
    # A BYE ends a call here only from the call's own peer: a credential call admitted from no trunk's source keeps
    # its caller's address ($ci::source), and a stranger's BYE goes on to the worker, which refuses it, leaving
    # the call, its slot and the caller's own BYE their way.
    $var(ends) = 0;
    if (is_method("BYE") && {_from_the_calls_peer()}) {{ $var(ends) = 1; }}
    if ($var(ends) == 1 && $sht(peers=>$ci) == $null) {{ ds_load_update(); }}  # not a worker's own call
    # A To-tag is anyone's to write: from a stranger or a trunk with an inbound credential (whose INVITEs prove it,
    # its other requests within a call not), a Route to a worker is followed only for a call the front relayed.
    $var(routed) = 0;
    if (loose_route()) {{
        route(NEXT_HOP);
        if ({_is_worker("$var(next)", config)}) {{
            if ({_without_credential(config)} || $sht(calls=>$ci) != $null || $sht(peers=>$ci) != $null) {{
                if (!t_relay()) {{ {in_dialog_oversize} }}
                exit;
            }}
        }} else {{
            $var(routed) = 1;
        }}
    }}
    if ($sht(calls=>$ci) != $null) {{
        $du = $sht(calls=>$ci);
        if ($var(ends) == 1) {{ $sht(calls=>$ci) = $null; {_forget_peers()} }}
        if (!t_relay()) {{ {in_dialog_oversize} }}
        exit;
    }}
    if (is_method("ACK")) {{ t_check_trans(); exit; }}  # a refusal's ACK: the front's transaction takes it
    if ($var(routed) == 1) {{
        {refused("403", "its route leads to no worker")}
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    {refused("481", "no call here")} sl_send_reply("481", "Call/Transaction Does Not Exist");
}}

route[FROM_WORKER] {{
    # A worker's request within a call (a BYE, a REFER) or its answer to Kamailio's OPTIONS probe: within a
    # call the front knows, and only to a trunk's address (the dialog's remote target, within its sources),
    # or, for the worker's own call, to the host it called or the far end that answered (PEER_KEYS).
    if (!is_method("ACK")) {{ t_check_trans(); }}
    # The ACK of a refusal of the worker's own call (a challenge, a busy): the front's transaction takes it,
    # before the in-dialog check below, which no longer knows the call (WORKER_CALL_FAILED forgot it).
    if (is_method("ACK") && $sht(calls=>$ci) == $null) {{ t_check_trans(); exit; }}
    if (is_method("BYE") && $sht(peers=>$ci) == $null) {{ ds_load_update(); }}  # a call the front brought in
    if (has_totag() && loose_route()) {{
{to_trunk}        route(NEXT_HOP);
        if ($sht(calls=>$ci) == $null || !({_trunk_network(config, "$(var(next){uri.host})")}
                                           || {_a_peer("$(var(next){uri.host})")})) {{
            xlog("L_WARN", "$rm {CALL_ID} from worker $si:$sp refused 403: {NEXT_HOP} is not a trunk of a call here\n");
            sl_send_reply("403", "Forbidden");
            exit;
        }}
        if (is_method("BYE")) {{ $sht(calls=>$ci) = $null; {_forget_peers()} }}
        t_relay();
        exit;
    }}
    if (is_method("ACK") && t_check_trans()) {{ t_relay(); exit; }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}  # its own call, given up ringing
    if (is_method("INVITE") && !has_totag()) {{ route(WORKER_CALL); exit; }}
    sl_send_reply("404", "Not Here");
}}

route[WORKER_CALL] {{
    # A worker's own call (an outbound call, a bridged or consulted person) goes to a trunk's termination
    # and nowhere else: the front is no relay for whoever took a worker's port, nor for a URI a worker was
    # handed. The trunk's requests within the call come back by the front's Route to this worker.
    if ($hdr({TOKEN_HEADER}) != "{call_token}") {{
        # Not the worker's: a process that bound a dead or restarting worker's port cannot know the workers' calls'
        # token, which the front never sends (the front's own token it reads off the next trunk INVITE).
        xlog("L_WARN", "INVITE {CALL_ID} from worker port $si:$sp refused 403: without the edge's token\n");
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    remove_hf("{TOKEN_HEADER}");  # the edge's alone: never to the trunk
    if (!({_terminations(config)})) {{
        xlog("L_WARN", "INVITE {CALL_ID} from worker $si:$sp refused 403: {DOMAIN}:$rp is not a trunk's termination\n");
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    # The front's own Route, preloaded by the worker, ends here (RFC 3261 16.4): a trunk that routes by it
    # would send the call back to the front, or to the host's private address. A worker names no other hop.
    remove_hf("Route");
    record_route();
    $sht(calls=>$ci) = "sip:" + $si + ":" + $sp;
    $sht(peers=>$ci) = $rd;
    t_on_reply("WORKER_CALL_REPLY");
    t_on_failure("WORKER_CALL_FAILED");
    if (!t_relay()) {{
        $sht(calls=>$ci) = $null;
        {_forget_peers()}
        sl_reply_error();
    }}
}}

onreply_route[WORKER_CALL_REPLY] {{
    # The far end that answered is a peer of the call too, wherever it answers from and whatever its Contact
    # names (a termination given by name never matches an address): the worker's ACK and BYE go there.
    if (status =~ "^2[0-9][0-9]$") {{
        $sht(peers=>$ci::source) = $si;
        $var(contact) = $(ct{{nameaddr.uri}}{{uri.host}});
        if ($var(contact) != $null && $var(contact) != "") {{ $sht(peers=>$ci::contact) = $var(contact); }}
    }}
}}

failure_route[WORKER_CALL_FAILED] {{
    # Not answered (refused, challenged, cancelled): the call is no call the front knows until it is asked again.
    $sht(calls=>$ci) = $null;
    {_forget_peers()}
}}

route[NEXT_HOP] {{
    # Where loose_route() would send the request: the next Route, else the Request-URI.
    if ($du != $null) {{ $var(next) = $du; }} else {{ $var(next) = $ru; }}
}}

onreply_route[WORKER_REPLY] {{
    {answered()}  # the worker's first answer (PJSUA's 100 Trying): the INVITE no longer waits
    if (status =~ "^2[0-9][0-9]$") {{ ds_load_update(); }}
    if (status =~ "^18[03]$") {{ $avp(rang) = 1; }}  # the worker admitted the call: its session is asked for
}}

failure_route[NEXT_WORKER] {{
    {answered()}  # this worker's wait is over; TO_WORKER counts the INVITE again for the next one
    if (t_is_canceled()) {{ $sht(calls=>$ci) = $null; exit; }}  # the CANCEL gave its worker's slot back
    $var(full) = 0;
    if (t_check_status("503") && $T_rpl($hdr({FULL_HEADER})) != $null) {{ $var(full) = 1; }}
    # A worker's silence (tm's 408 after front_unanswered.py's wait) is no proof it is dead: only the OPTIONS probes
    # mark a worker down, so a spoofer's malformed INVITEs cannot. One more worker is tried; a second silence is the
    # request's doing: 408 (docs/sip.md, "the front").
    $var(silent) = 0;  # no answer at all, not even 100: a worker's own 408 is its answer, relayed as any other
    if (t_branch_timeout() && !t_branch_replied()) {{ $var(silent) = 1; }}
    if ($avp(rang) == $null && ($var(full) == 1 || ($var(silent) == 1 && $avp(silent) == $null))) {{
        if ($var(silent) == 1) {{ $avp(silent) = 1; }}
        # ds_next_dst() drops this worker's record before it looks for the next: with none left, the
        # ds_load_unset() below would find no record, and this worker's slot would stay taken for good.
        if ($xavp({DESTINATIONS}[1]=>uri) != $null && ds_next_dst()) {{ route(TO_WORKER); exit; }}
    }}
    ds_load_unset();
    $sht(calls=>$ci) = $null;
    if ($var(full) == 1) {{ xlog("L_WARN", "INVITE {CALL_ID} from $si refused 503: every worker is full\n"); }}
    if (t_check_status("503")) {{
        # Relayed, a worker's 503 would reach the trunk as 500 (tm acts as RFC 3261 16.7 bids a proxy),
        # which no trunk takes for "try your next route": the front answers the 503 itself, with the
        # worker's Retry-After, and without the workers' mark.
        if ($T_rpl($hdr(Retry-After)) != $null) {{
            append_to_reply("Retry-After: $T_rpl($hdr(Retry-After))\r\n");
        }} else {{
            {retry}
        }}
        t_reply("503", "Service Unavailable");
    }}
}}
"""
