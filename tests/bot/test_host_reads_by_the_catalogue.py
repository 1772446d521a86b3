"""The bot host reads a setting through the catalogue's readers (voicefleet_settings/read.py), so its
default and bounds are written once; only the platforms' own variables, which the platform sets and
the host takes as they are, are read from the environment directly."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Set by a platform, read as it sets them (the catalogue lists them so the page says what they do).
PLATFORMS = {"HOSTNAME", "FLY_MACHINE_ID", "CLOUD_RUN_EXECUTION", "GCE_METADATA_HOST",
             "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
             "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_STS"}
# Read by hand for a reason its reader says: the session's cap is the dispatcher's integer setting (at
# least 10 there), which a bot run by hand takes as any positive number of seconds; the machine's
# BOT_TURN_TRANSPORT is handed on, as it is, to the ICE reader that checks it.
OWN_PARSE = {"MAX_SESSION_SECONDS", "BOT_TURN_TRANSPORT"}


def constants(paths: list[Path]) -> dict[str, str]:
    """Module-level `NAME = "VARIABLE"` of the host and the contract it imports them from."""
    found: dict[str, str] = {}
    for path in paths:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str):
                found.update({t.id: node.value.value for t in node.targets if isinstance(t, ast.Name)})
    return found


def direct_reads(source: str, known: dict[str, str]) -> set[str]:
    """The variables `source` reads with `<env>.get(NAME…)` or `getenv(NAME…)`, by a literal or a constant."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
            continue
        receiver = ast.unparse(node.func.value)
        if (node.func.attr == "get" and receiver.split(".")[-1] in ("env", "environ", "environment")) \
                or node.func.attr == "getenv":
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value)
            elif isinstance(first, ast.Name) and first.id in known:
                found.add(known[first.id])
    return found


def test_the_host_reads_no_setting_by_hand_but_the_platforms() -> None:
    paths = sorted((ROOT / "bot").rglob("*.py"))
    known = constants(paths + sorted((ROOT / "botchannel").rglob("*.py")))
    read = {name: sorted(str(p.relative_to(ROOT)) for p in paths if name in direct_reads(p.read_text(), known))
            for path in paths for name in direct_reads(path.read_text(), known)}
    assert "HOSTNAME" in read  # control: the scan sees a read
    assert {name: where for name, where in read.items() if name not in PLATFORMS | OWN_PARSE} == {}, (
        "read these with voicefleet_settings/read.py (setting_text/int/float/bool/choice/list)")


def test_the_scan_sees_a_read_by_a_literal_and_by_a_constant() -> None:
    source = 'X = "BOT_LOG_LEVEL"\nenv.get(X, "INFO")\nos.environ.get("BOT_FILE")\nos.getenv("LOG_FORMAT")\n'
    assert direct_reads(source, {"X": "BOT_LOG_LEVEL"}) == {"BOT_LOG_LEVEL", "BOT_FILE", "LOG_FORMAT"}
    assert direct_reads('setting_text(env, "BOT_FILE")\nheaders.get("BOT_FILE")\n', {}) == set()
