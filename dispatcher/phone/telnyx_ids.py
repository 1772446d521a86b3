"""Telnyx's API address and the shapes of its ids (an AccountSid, a call's SID), apart from its calls'
client (telnyx_calls.py) so that the settings and the stacks' checks of them import no HTTP client."""

from __future__ import annotations

import re

TELNYX_API_URL = "https://api.telnyx.com"
ACCOUNT_SID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
CALL_SID = re.compile(r"v[0-9]:[A-Za-z0-9_-]{1,200}")  # `v3:` and URL-safe base64, as Telnyx's examples
CALL_ID = re.compile(f"(?:{ACCOUNT_SID.pattern})/(?:{CALL_SID.pattern})")
