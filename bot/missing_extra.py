"""A transport whose packages the bot's Python lacks: which Pipecat extra brings them, and what a
bot does then.

A bot whose own `transport_params` has no entry for the transport (or whose entry shape serves
another, bot/entry_shapes.py) is told so at once: adding the extra alone would only lead to
Pipecat's "Missing transport params" (or the shape's refusal) at the next session.

A project installs the extras of the transports its bot builds (a Twilio bot locks `websocket`,
not `webrtc` or `daily`), and its interpreter may be the one that runs voicefleet's host
(`BOT_PYTHON`). A mode whose import fails on its transport's package is then a configuration
matter, named as such: the session's `detail` says which extra to add, never only
"ModuleNotFoundError". A reserve bot of a project built for the other web
transport serves that one (a Daily-only project's reserve bots take Daily sessions warm, whatever the
default transport). A bot that serves no session yet (a reserve bot, or the image build's `--check`)
and can take calls serves calls instead: a phone-only project still gets warm calls, and its image
checks what it will serve.
"""

from __future__ import annotations

from collections.abc import Callable

# The top-level modules each mode's transport imports, and the Pipecat extra that installs them.
TRANSPORT_MODULES = {
    "webrtc": (frozenset({"aiortc", "av", "aioice", "pylibsrtp"}), "webrtc"),
    "daily": (frozenset({"daily"}), "daily"),
}


def missing_module(error: ImportError) -> ModuleNotFoundError | None:
    """The missing module behind `error`: Pipecat re-raises it as `ImportError("Missing module: …")`."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ModuleNotFoundError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def missing_extra(transport: str, error: ImportError) -> tuple[str, str] | None:
    """(the missing module, the Pipecat extra that brings it) if `error` is `transport`'s own
    package missing; None for anything else (the host's or the bot's own, reported as they are)."""
    missing = missing_module(error)
    modules, extra = TRANSPORT_MODULES.get(transport, (frozenset(), ""))
    name = (missing.name or "") if missing is not None else ""
    return (name, extra) if name.split(".")[0] in modules else None


def explain(transport: str, module: str, extra: str) -> str:
    why = (f"this bot's Python has no {module} (No module named {module!r}), which Pipecat's {transport} "
           f"transport needs: add Pipecat's {extra} extra to the bot's project (`uv add 'pipecat-ai[{extra}]'`) "
           "or run the bot with a Python that has it (BOT_PYTHON)")
    other = other_web_transport(transport)
    if other is not None:  # a project built for the other web transport: the caller can start with it instead
        # Said for every provider: `TRANSPORTS` may already leave `transport` out (a start that names
        # none gets DEFAULT_TRANSPORT), so the way out is the start's own transport.
        why += (f"; or start sessions with transport {other!r}, which this bot serves (POST /start "
                f'{{"transport": "{other}"}}, or DEFAULT_TRANSPORT={other} on the dispatcher)')
    return why


def other_web_transport(transport: str) -> str | None:
    """The other web transport, if this Python has every package of it (a project built for it)."""
    return next((other for other in TRANSPORT_MODULES if other != transport and installed(other)), None)


def installed(transport: str) -> bool:
    """Whether this Python has every package `transport`'s Pipecat transport imports."""
    import importlib.util

    modules, _ = TRANSPORT_MODULES[transport]
    return all(importlib.util.find_spec(module) is not None for module in modules)


def and_the_files_problem(why: str, transport: str, load: Callable[[], object]) -> str:
    """`why`, and the bot file's own problem beside it (no `bot`, an import error of its own): a
    user who adds the extra should not meet the second problem only on the next try. The file's
    import failing on the same missing package is the same problem, said once; a file with no `bot` is
    said alone (a script with a `main()`: its way out decides the transport, bot/no_bot_advice.py)."""
    from bot.user_bot import BotFileError, NoBotError

    try:
        loaded = load()
    except NoBotError:
        raise
    except BotFileError as exc:
        cause = exc.__cause__
        if isinstance(cause, ImportError) and missing_extra(transport, cause) is not None:
            return why
        return f"{why}; and {exc}"
    shape = getattr(loaded, "transport", None)
    if shape is not None and shape != transport:  # an entry shape of one transport (bot/entry_shapes.py)
        return (f"{why}; and its entry point {getattr(loaded, 'entry', '')} serves {shape} sessions only, so with the "
                f"extra the session would still fail: start {shape} sessions for it")
    served = declared_transports(loaded)
    if served is not None and transport not in served:
        return (f"{why}; and its transport_params has no {transport!r} entry (only {', '.join(map(repr, served))}), "
                f"so with the extra the session would still fail, as under Pipecat's runner: add a {transport!r} "
                "entry too")
    return why


def declared_transports(loaded: object) -> list[str] | None:
    """The keys of the bot file's module-level `transport_params` (the name `pipecat init` and
    pipecat-examples give the dict handed to `create_transport`); None where it has no such dict."""
    params = getattr(getattr(loaded, "module", None), "transport_params", None)
    if not isinstance(params, dict) or not all(isinstance(key, str) for key in params):
        return None
    return sorted(params)
