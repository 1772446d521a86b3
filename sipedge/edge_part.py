"""Which part of a fronted edge this process runs (docs/sip.md#on-kubernetes): all of it (`python -m sipedge`,
as a VM's and the local edge run it), its Kamailio front alone (`python -m sipedge front`), or its workers alone
behind a front another process runs (`python -m sipedge workers`). Apart, each part runs in a container of its
own, under a user of its own, and holds only its own secrets: the front the inbound digest passwords, the workers
the rest. The two parts share the three tokens a whole edge makes at each start (sipedge/supervisor.py), which
then come from the environment of both (TOKEN_VARIABLE, CALL_TOKEN_VARIABLE, DRAIN_TOKEN_VARIABLE)."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sipedge.config import ConfigError
from sipedge.worker_place import CALL_TOKEN_VARIABLE, TOKEN_VARIABLE, new_token

DRAIN_TOKEN_VARIABLE = "SIP_EDGE_DRAIN_TOKEN"  # noqa: S105 - a variable's name: the drain's word (front_drain.py)
TOKEN_CHARACTERS = 32  # new_token's are 43: a shorter one is not one made for this
# base64url, as new_token and the stack's derived ones: kamailio.cfg holds a token inside a quoted string
# (sipedge/front_config.py) and the workers match its header as \S+, so nothing else can stand in it as it is.
TOKEN_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")


class Part(enum.Enum):
    WHOLE = ""
    FRONT = "front"
    WORKERS = "workers"


@dataclass(frozen=True)
class Tokens:
    """The front's proof to the workers, the workers' calls' proof to the front, the drain's word's."""

    front: str = field(repr=False)
    call: str = field(repr=False)
    drain: str = field(repr=False)

    @classmethod
    def new(cls) -> Tokens:
        return cls(new_token(), new_token(), new_token())


def part_of(arguments: Sequence[str]) -> Part:
    """The part `python -m sipedge [PART]` names."""
    known = {part.value: part for part in Part if part.value}
    if not arguments:
        return Part.WHOLE
    if len(arguments) == 1 and arguments[0] in known:
        return known[arguments[0]]
    raise ConfigError(f"unknown arguments {' '.join(arguments)!r}: run `python -m sipedge` for the whole edge, or "
                      "`python -m sipedge front` and `python -m sipedge workers` for its parts apart")


def shared_tokens(env: Mapping[str, str]) -> Tokens:
    """The tokens of an edge run apart, which both parts must hold alike (the stack sets them in both): each long
    enough, of the base64url alphabet, and each different from the others, so that one read off a line (the
    front's, on every request to a worker) never serves as another's. An error names the variable, never a value."""
    variables = (TOKEN_VARIABLE, CALL_TOKEN_VARIABLE, DRAIN_TOKEN_VARIABLE)
    values = [env.get(variable, "") for variable in variables]
    for variable, value in zip(variables, values, strict=True):
        if len(value) < TOKEN_CHARACTERS:
            raise ConfigError(f"{variable} is unset or shorter than {TOKEN_CHARACTERS} characters: an edge run apart "
                              "(front, workers) needs the same random token in both parts' environment")
        if TOKEN_ALPHABET.fullmatch(value) is None:
            raise ConfigError(f"{variable} holds a character outside base64url (A-Z, a-z, 0-9, '-', '_'): make it as "
                              "the stack does, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    for index, variable in enumerate(variables):
        for other, value in zip(variables[index + 1:], values[index + 1:], strict=True):
            if value == values[index]:
                raise ConfigError(f"{variable} and {other} are the same value: each of an edge's three tokens must "
                                  "be a random token of its own")
    return Tokens(*values)
