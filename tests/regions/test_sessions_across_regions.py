"""A session lives in one region and any region answers for it: its id names the region, a request
at another region is relayed there (its event stream too), a stranger's request never crosses, and
a region that is down is answered 503 `region_unreachable` at once, never 404 or a hang."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import httpx

from tests.dispatcher.conftest import API_KEY
from tests.regions.support import RegionPair, reachable, region_env, regions, until
from tests.support.processes import DispatcherProcess, run_dispatcher

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def start(process: DispatcherProcess) -> dict:
    answer = httpx.post(f"{process.base_url}/start?wait=started", json={"body": {}}, headers=AUTH, timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_a_session_names_its_region_and_any_region_answers_for_it(region_pair: RegionPair) -> None:
    _, running = region_pair
    session = start(running["eu"])
    assert session["region"] == "eu"
    sid = session["session_id"]
    at_us = httpx.get(f"{running['us'].base_url}/sessions/{sid}", headers=AUTH, timeout=10)
    assert at_us.status_code == 200, at_us.text
    assert at_us.json()["region"] == "eu" and at_us.json()["status"] in ("started", "joined")
    assert httpx.get(f"{running['us'].base_url}/sessions/{sid}/timeline", headers=AUTH,
                     timeout=10).status_code == 200
    with httpx.stream("GET", f"{running['us'].base_url}/sessions/{sid}/events", headers=AUTH,
                      timeout=10) as events:
        assert events.status_code == 200 and events.headers["content-type"].startswith("text/event-stream")
        first = next(line for line in events.iter_lines() if line.startswith("data:"))
        assert '"region":"eu"' in first
    stopped = httpx.delete(f"{running['us'].base_url}/sessions/{sid}", headers=AUTH, timeout=10)
    assert stopped.status_code in (202, 204)
    until(lambda: httpx.get(f"{running['eu'].base_url}/sessions/{sid}", headers=AUTH,
                            timeout=5).json()["status"] in ("ended", "failed"), 15)


def test_a_strangers_request_is_refused_before_it_crosses_regions(region_pair: RegionPair) -> None:
    _, running = region_pair
    sid = start(running["eu"])["session_id"]
    no_key = httpx.get(f"{running['us'].base_url}/sessions/{sid}", timeout=10)
    assert no_key.status_code == 401
    forged = sid[:16] + "0" * 8  # the right region, an owner tag the key never made
    assert httpx.get(f"{running['us'].base_url}/sessions/{forged}", headers=AUTH, timeout=10).status_code == 404
    seen_at_eu = running["eu"].log()  # its access log: every request that reached it
    assert f"/sessions/{sid}" not in seen_at_eu and f"/sessions/{forged}" not in seen_at_eu
    # …and the owner's own request does cross, so the log would have shown a stranger's.
    assert httpx.get(f"{running['us'].base_url}/sessions/{sid}", headers=AUTH, timeout=10).status_code == 200
    until(lambda: f"/sessions/{sid}" in running["eu"].log(), 60)


def test_a_down_regions_sessions_are_answered_503_never_404(
        region_pair: RegionPair, region_stack: ExitStack, tmp_path: Path) -> None:
    # How soon: at the first poll eu does not answer (tests/dispatcher/regions/test_peer_lost.py);
    # wall time here is the machine's load as much as the dispatcher's. eu comes back on its port
    # (its sessions gone with it) for the module's other tests.
    urls, running = region_pair
    sid = start(running["eu"])["session_id"]
    running["eu"].process.kill()
    running["eu"].process.wait()
    answers = []

    def refused() -> bool:
        answers.append(httpx.get(f"{running['us'].base_url}/sessions/{sid}", headers=AUTH, timeout=5))
        return answers[-1].status_code == 503

    until(refused, 60)
    answer = answers[-1]
    assert answer.json()["error"]["code"] == "region_unreachable"
    assert answer.headers["Retry-After"] == "1"
    assert all(answer.status_code != 404 for answer in answers), [answer.status_code for answer in answers]
    port = int(urls["eu"].rsplit(":", 1)[1])
    running["eu"] = region_stack.enter_context(
        run_dispatcher(tmp_path, region_env("eu", urls), port=port, log_name="eu-again.log"))
    until(lambda: reachable(running["eu"], "us") and reachable(running["us"], "eu"), 60)


def test_a_region_that_hangs_is_answered_503_not_waited_on_and_answers_again_after(region_pair: RegionPair) -> None:
    import signal

    _, running = region_pair
    sid = start(running["eu"])["session_id"]
    running["eu"].process.send_signal(signal.SIGSTOP)  # accepts connections (the kernel does), answers none
    try:
        # Answered while eu still hangs (a relay waiting on it would end in this client's
        # timeout): us's 1 s deadline on eu, not a duration measured on a loaded machine.
        answer = httpx.get(f"{running['us'].base_url}/sessions/{sid}", headers=AUTH, timeout=10)
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "region_unreachable"
    finally:
        running["eu"].process.send_signal(signal.SIGCONT)
    until(lambda: reachable(running["us"], "eu"), 60)
    assert httpx.get(f"{running['us'].base_url}/sessions/{sid}", headers=AUTH, timeout=10).status_code == 200


def test_a_start_relayed_to_its_region_is_counted_once_against_the_keys_start_rate(tmp_path: Path) -> None:
    """Counted where it arrived; the region it is relayed to takes the origin's word (its request is signed)."""
    one_start = {"START_RATE_PER_KEY": "0.001", "START_BURST_PER_KEY": "1"}
    with regions(tmp_path, ("eu", "us"), {"eu": one_start, "us": one_start}) as (_, running):
        until(lambda: reachable(running["eu"], "us"), 60)
        assert start(running["us"])["region"] == "us"  # us's own bucket is spent
        pinned = httpx.post(f"{running['eu'].base_url}/start", json={"body": {}, "region": "us"}, headers=AUTH,
                            timeout=30)
        assert pinned.status_code == 201 and pinned.json()["region"] == "us", pinned.text
        assert httpx.post(f"{running['eu'].base_url}/start", json={"body": {}}, headers=AUTH,
                          timeout=30).status_code == 429  # eu's bucket: the one it spent
