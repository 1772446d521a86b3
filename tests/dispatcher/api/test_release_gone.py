"""A release whose bot file has gone is refused traffic, as an unknown release is: through the app,
with the local provider's own look at the file. Lowering it, or rolling back, still works."""

from __future__ import annotations

from pathlib import Path

from tests.dispatcher.api.test_releases_api import admin, dispatcher


async def test_a_release_whose_bot_file_is_gone_is_refused_a_weight_and_nothing_changes(tmp_path: Path) -> None:
    async with dispatcher(tmp_path, RELEASE_WEIGHTS="stable=90,next=10") as (api, _):
        (tmp_path / "bot_v2.py").unlink()
        answers = [await api.put("/releases/next", json={"weight": 50}, headers=admin()),
                   await api.put("/releases", json={"weights": {"stable": 40, "next": 60}}, headers=admin()),
                   await api.post("/releases/next/promote", headers=admin())]
        listed = (await api.get("/releases", headers=admin())).json()
        lowered = await api.put("/releases/next", json={"weight": 0}, headers=admin())
    for answer in answers:
        assert answer.status_code == 409, answer.text
        error = answer.json()["error"]
        assert error["code"] == "release_unavailable"
        assert f"its bot file {tmp_path / 'bot_v2.py'} is gone" in error["message"]
        assert "nothing changed" in error["message"]
    assert {r["name"]: r["weight"] for r in listed["releases"]} == {"stable": 90, "next": 10}
    assert lowered.status_code == 200, lowered.text


async def test_a_release_whose_bot_file_is_there_takes_its_weight(tmp_path: Path) -> None:
    async with dispatcher(tmp_path, RELEASE_WEIGHTS="stable=90,next=10") as (api, _):
        (tmp_path / "bot.py").unlink()  # the stable release's file: not the one given more traffic
        answer = await api.put("/releases/next", json={"weight": 50}, headers=admin())
    assert answer.status_code == 200, answer.text
