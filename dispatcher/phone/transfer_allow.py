"""Where calls may be handed at all: `PHONE_TRANSFER_TARGETS`, an allow list the deployment writes.

A transfer's `to` comes from a client or from a bot, and a bot's tool call is steered by whatever the
caller says: without a list, a caller could talk the bot into dialling a premium or satellite number
paid for on the deployment's account (toll fraud), or into streaming the caller to any SIP host. So no
list, no transfers; and every target must be on it:

    +14155550123     that number exactly
    +1415*           numbers that start with +1415
    pbx.example.com  SIP URIs (`sip:`/`sips:`) whose host is that one, any user or port

Numbers match as calls placed out do (voicefleet_settings/call_policy.py `destination_allowed`): a
premium-rate, satellite or emergency number is reached only when listed exactly or under a prefix at
least as long as its risky one (`+1900*`, never through `+1*`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dispatcher.api_error import ApiError  # not dispatcher.errors: no FastAPI for `voicefleet config check`
from dispatcher.phone.transfer_target import E164, TransferTarget
from voicefleet_settings.call_policy import destination_allowed

SETTING = "PHONE_TRANSFER_TARGETS"
_PREFIX = re.compile(r"\+[1-9][0-9]{0,14}\*")
# A host name or an IPv4 address: a bare run of digits is a number missing its +, not a host.
_HOST = re.compile(r"(?=.*[A-Za-z.])[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?")


@dataclass(frozen=True)
class TransferTargets:
    patterns: tuple[str, ...]  # numbers and `+prefix*`, as call_policy's destinations are written
    sip_hosts: frozenset[str]  # lower case

    def allows(self, target: TransferTarget) -> bool:
        if target.is_sip:
            return _sip_host(target.to) in self.sip_hosts
        return destination_allowed(self.patterns, target.to)


def check_allowed(targets: TransferTargets | None, target: TransferTarget) -> None:
    """A 403 unless `target` is on PHONE_TRANSFER_TARGETS (no list: no transfers at all), whatever the carrier."""
    if targets is None:
        raise ApiError(403, "transfer_targets_unset", f"set {SETTING} to the numbers, +prefixes* and SIP hosts "
                       "calls may be handed to: with no list, no call is transferred")
    if not targets.allows(target):
        raise ApiError(403, "target_not_allowed", f"{target.to[:40]!r} is not on {SETTING}, the numbers and SIP "
                       "hosts this deployment hands calls to")


def parse_transfer_targets(text: str) -> TransferTargets | None:
    """The list in `text` (comma-separated), None when empty; `ValueError` naming a bad entry."""
    patterns: list[str] = []
    hosts: set[str] = set()
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        if E164.fullmatch(entry) or _PREFIX.fullmatch(entry):
            patterns.append(entry)
        elif _HOST.fullmatch(entry):
            hosts.add(entry.lower())
        else:
            raise ValueError(f"{SETTING}: {entry[:40]!r} is none of a number in E.164 (+14155550123), a prefix "
                             "(+1415*) or a SIP host (pbx.example.com)")
    if not (patterns or hosts):
        return None
    return TransferTargets(tuple(patterns), frozenset(hosts))


def _sip_host(uri: str) -> str:
    """`sip:user@Host:5060;transport=tcp` → `host`."""
    host = uri.partition("@")[2]
    return re.split(r"[:;]", host, maxsplit=1)[0].lower()
