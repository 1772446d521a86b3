"""The kubelet's `$(NAME)` expansion of a container's plain env values (and its command and args).

kubernetes/kubernetes third_party/forked/golang/expansion/expand.go `Expand`, as makeEnvironmentVariables
(kubelet_pods.go) calls it on each `env` entry's `value` with the variables before it (`envFrom`'s first):
from the left, `$$` is `$`; `$(NAME)` (up to the first `)`) is NAME's value, or left as written when NAME
is undefined; a `$(` with no `)` after it, any other `$x` and a `$` at the end are left as written.
"""

from __future__ import annotations

from collections.abc import Mapping


def expand(value: str, defined: Mapping[str, str]) -> str:
    out: list[str] = []
    cursor = 0
    while cursor < len(value):
        if value[cursor] != "$" or cursor + 1 == len(value):
            out.append(value[cursor])
            cursor += 1
            continue
        after = value[cursor + 1]
        if after == "$":  # escaped: one `$`
            out.append("$")
            cursor += 2
        elif after == "(" and (close := value.find(")", cursor + 2)) != -1:
            name = value[cursor + 2:close]
            out.append(defined.get(name, f"$({name})"))
            cursor = close + 1
        else:  # `$(` with no `)`, or `$x`: as written
            out.append(value[cursor:cursor + 2])
            cursor += 2
    return "".join(out)

