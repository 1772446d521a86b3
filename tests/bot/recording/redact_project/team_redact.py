"""A team's redaction hook, as it would sit in its project beside its bot file."""

import re
import threading


def scrub(text: str) -> str:
    """Card and phone numbers (runs of 7 or more digits, spaces allowed) become [number]."""
    return re.sub(r"\d[\d ]{5,}\d", "[number]", text)


def broken(text: str) -> str:
    raise ValueError("no rules loaded")


def not_text(text: str) -> list[str]:
    return text.split()


def hangs(text: str) -> str:
    """A hook waiting on something that never comes (a lock, a service that does not answer)."""
    threading.Event().wait()
    return text


def huge(text: str) -> str:
    return text * 2_000
