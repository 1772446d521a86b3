"""The shape of a Plivo account's Auth ID, apart from Plivo's calls' client (plivo_calls.py) so that the
dispatcher's settings and the stacks' check of them share one rule and import no HTTP client."""

from __future__ import annotations

import re

# ASCII letters and digits, as the Plivo console shows it (str.isalnum() alone also takes full-width and
# accented letters, which Plivo's Basic auth never would).
AUTH_ID = re.compile(r"[A-Za-z0-9]+")
AUTH_ID_RULE = "the Auth ID the Plivo console shows (letters and digits)"
