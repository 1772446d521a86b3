"""A quota read that a refusal cannot fail (`accountQuotas`).

The read only sharpens the concurrency ceiling, so a deployer without the permission, or a project
without the API, still previews and ups: the refusal comes back as `Refused`, the ceiling counts the
documented default, and a warning names what the read needs. The engine answers an invoke its
provider refused with an error the program can catch; an output-form invoke (`get_…_output`) would
keep it in an output, and a failed output fails the program at its end, so the read is awaited here,
through the runtime's own invoke, and only its settled answer becomes an output."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.runtime

MAX_REASON_CHARS = 300  # the provider's message: enough to name the permission or the API
# What the SDK and the engine put before the provider's own message.
WRAPPERS = re.compile(r"^(?:invoke of \S+ failed: |invocation of \S+ returned an error: )+")


@dataclass(frozen=True)
class Refused:
    """The provider's answer to a refused read: its reason, shortened."""

    reason: str


def settled(token: str, args: Mapping[str, object], invoke: pulumi.InvokeOptions,
            value: Callable[[Mapping[str, Any]], float | None]) -> pulumi.Output[float | Refused | None]:
    """The quota `value` picks from the answer of invoke `token` (None where nothing answers, as under the
    offline plan's mocks), or `Refused`. `args` are the function's own names (camelCase, as in its schema)."""

    async def settle() -> float | Refused | None:
        try:
            answer = await pulumi.runtime.invoke_async(token, dict(args), opts=invoke)
        except Exception as error:  # noqa: BLE001 - any refusal: the default stands and the warning says why
            said = WRAPPERS.sub("", " ".join(str(error).split())) or type(error).__name__
            return Refused(said[:MAX_REASON_CHARS])
        return value(answer or {})

    return pulumi.Output.from_input(asyncio.ensure_future(settle()))


def refused_warning(what: str, refused: Refused, needs: str) -> str:
    """The preview's warning for a refused read of `what`: the reason, the fallback, and the way out."""
    return (f"accountQuotas: the read of {what} was refused ({refused.reason}): the concurrency ceiling counts the "
            f"documented default instead. {needs}, or `pulumi config set accountQuotas false` to stop reading it "
            "(docs/operations.md, \"Your ceiling and how to raise it\")")
