"""What a release may be called: short, lower-case, safe in a tag, a label, a URL and a log line."""

from __future__ import annotations

import re

RELEASE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
DEFAULT_RELEASE = "default"  # the one release of a deployment that configures none


def is_release_name(name: object) -> bool:
    return isinstance(name, str) and RELEASE_NAME.fullmatch(name) is not None


def name_rule() -> str:
    return "a release name is 1-32 characters: lower-case letters, digits and '-', starting with a letter or digit"
