"""A pipeline error as the session's timeline shows it: which processor, whether it can go on, what.

Pipecat's worker raises `on_pipeline_error` with the `ErrorFrame`; its processor's `is_usable`
tells an error that leaves the processor unable to do its job (a speech service whose key was
refused) from one it recovers from. Pipecat masks credentials in the frame's `error` text; the
channel bounds it (512 characters).
"""

from __future__ import annotations

MAX_DETAIL_CHARS = 480  # within the channel's 512, with room for the processor's name


def describe_error(frame: object) -> tuple[str, str]:
    """(reason: `unusable` or `error`, detail: `<processor>: <error>`)."""
    processor = getattr(frame, "processor", None)
    unusable = processor is not None and getattr(processor, "is_usable", True) is False
    text = str(getattr(frame, "error", "") or type(frame).__name__)
    name = getattr(processor, "name", None) or (type(processor).__name__ if processor is not None else "pipeline")
    detail = f"{name}: {text}"
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 1] + "…"
    return ("unusable" if unusable else "error"), detail
