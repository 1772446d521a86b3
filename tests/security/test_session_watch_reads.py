"""Finding: a session's event stream read the provider every `SESSION_POLL_SECONDS` outside its key's
read limit. `READ_RATE_PER_KEY` keeps one key from spending the provider budget every tenant's
admission needs, but each of a key's `SESSION_WAITS_PER_KEY` open streams read its session once a
second for `SESSION_WAIT_SECONDS`, uncounted: 20 streams doubled the key's reads at the defaults,
and a key whose reads were spent kept reading through its streams. Now a watcher's reads are the
key's reads: a stream waits for the key's bucket (its events come later), and refuses nothing.

A real in-process dispatcher with local bots; the provider's status reads are counted as they are made."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import pytest

from dispatcher.settings import Settings, hash_api_key
from tests.security.conftest import KEY_A, KEY_B, WAIT, MakeDispatcher, provider_reads
from tests.support.http_client import api_client

A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}
STREAMS = 10
WATCHED_SECONDS = 3.0
BURST = 15


async def test_event_streams_read_the_provider_within_their_keys_read_limit(
    make_dispatcher: MakeDispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(api_key_hashes=frozenset({hash_api_key(KEY_A), hash_api_key(KEY_B)}),
                        max_concurrent_sessions=50)
    # Key A's reads: a burst of 15 and then (practically) none; watched sessions read every 0.1 s.
    d = await make_dispatcher(dataclasses.replace(settings, read_rate_per_key=0.001, read_burst_per_key=BURST,
                                                  session_poll_seconds=0.1))
    started = await d.client.post("/start?wait=started", json={"body": {}}, headers=A)
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    asked = provider_reads(d.state.machines, monkeypatch)
    streaming = [asyncio.Event() for _ in range(STREAMS)]

    async def watch(first_status: asyncio.Event) -> None:  # over a real socket (the in-process one buffers)
        async with (
            api_client(base_url=f"http://127.0.0.1:{d.port}", headers=A, timeout=WAIT) as http,
            http.stream("GET", f"/sessions/{session_id}/events") as stream,
        ):
            assert stream.status_code == 200
            async for line in stream.aiter_lines():
                if line.startswith("event: status"):
                    first_status.set()

    watchers = [asyncio.create_task(watch(event)) for event in streaming]
    # Watched for WATCHED_SECONDS once every stream streams (the control): on a busy machine the
    # streams' start alone can take longer than that.
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in streaming)), WAIT)
    await asyncio.sleep(WATCHED_SECONDS)
    for watcher in watchers:
        watcher.cancel()
    for watcher in watchers:
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    # Each stream's opening costs a read from the bucket (and two at the provider: the route's check
    # and the watcher's first read); past the burst, the watchers' polls must wait for the bucket.
    # Uncounted, 10 streams polling every 0.1 s for 3 s read about 300 times.
    assert len(asked) <= 2 * BURST + STREAMS, f"{len(asked)} provider reads with a read budget of {BURST}"
    other = await d.client.get(f"/sessions/{session_id}", headers=B)
    assert other.status_code == 404  # control: another key's read is its own budget, and not this session
    assert (await d.client.delete(f"/sessions/{session_id}", headers=B)).status_code == 404
