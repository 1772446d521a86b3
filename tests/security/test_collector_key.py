"""A collector's API key (`OTEL_EXPORTER_OTLP_HEADERS`, `Authorization=…` or a vendor's key header)
is not a local bot's unless the user names it in `LOCAL_BOT_ENV`: the rest of `OTEL_*` (where the
collector is, the service's name) still reaches every bot, so tracing needs only the key named.
Checked in a real bot process's environment, as launched by the local launcher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispatcher.machines.base import LaunchSpec
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from tests.dispatcher.conftest import STANDIN_BOT

KEY_HEADERS = ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS")
COLLECTOR = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SERVICE_NAME": "voicefleet-bot",
             **{name: "x-honeycomb-team=collector-key-0123456789" for name in KEY_HEADERS}}


async def environment_of_a_launched_bot(named: tuple[str, ...], tmp_path: Path) -> dict[str, str]:
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=2,
                                           bot_env=("STANDIN_MODE", "STANDIN_RECORD_DIR", *named)))
    try:
        await machines.launch(LaunchSpec(session_id="s-collector", body_digest="d" * 32, max_session_seconds=60))
        pid = machines._bots["s-collector"].pid
        with open(f"/proc/{pid}/environ", "rb") as environ:
            entries = [e.partition(b"=") for e in environ.read().split(b"\0") if e]
        return {k.decode(): v.decode() for k, _, v in entries}
    finally:
        await machines.aclose()


async def test_a_collector_key_reaches_a_local_bot_only_where_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in {**COLLECTOR, "STANDIN_MODE": "never-ready"}.items():
        monkeypatch.setenv(name, value)
    plain = await environment_of_a_launched_bot((), tmp_path)
    assert not set(KEY_HEADERS) & set(plain), json.dumps(sorted(plain))
    assert plain["OTEL_EXPORTER_OTLP_ENDPOINT"] == COLLECTOR["OTEL_EXPORTER_OTLP_ENDPOINT"]  # control: the rest comes
    named = await environment_of_a_launched_bot(KEY_HEADERS, tmp_path)
    assert {name: named[name] for name in KEY_HEADERS} == {name: COLLECTOR[name] for name in KEY_HEADERS}
