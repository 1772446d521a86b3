"""The runtime settings' entries merge alike in every region, whatever order changes arrive in: a
capacity value's newest version wins, a revoked secret stays revoked, and a name revoked in one region
refuses a secret of it another region made without knowing of the revocation, but not one made after
its region took it."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from dispatcher.api import runtime_entries
from dispatcher.api.runtime_entries import Entries, checked, empty, merged, stamped, views
from dispatcher.api.runtime_keys import RuntimeKeys, new_secret
from dispatcher.api.runtime_settings import REVOKED_NAMES, RuntimeSettings
from dispatcher.store.runtime_book import MemoryRuntimeBook


def key(name: str) -> dict[str, Any]:
    _secret, record = new_secret(name, "admin-1")
    return {record.secret_id: record.to_json()}


def change(entries: Entries, at: tuple[int, str], *, capacity: dict[str, Any] | None = None,
           made: dict[str, Any] | None = None, revoked: tuple[str, ...] = ()) -> tuple[Entries, Entries]:
    """An admin's change in region at[1], at time at[0]: values set, keys made, names revoked whole."""
    before = views(entries)
    keys = {k: v for k, v in before[1].items() if v["name"] not in revoked} | (made or {})
    return stamped(entries, before, ({**before[0], **(capacity or {})}, keys), revoked, "admin-1", at)


def test_a_revocation_wins_over_a_secret_of_the_name_made_elsewhere_without_knowing_of_it() -> None:
    start, _ = change(runtime_entries.empty(), (1000, "eu"), made=key("acme"))
    eu, revoke = change(start, (2000, "eu"), revoked=("acme",))
    us, another = change(start, (2001, "us"), made=key("acme"))  # later by the clock, yet concurrent
    assert views(merged(eu, another))[1] == {} == views(merged(us, revoke))[1]

    # us took the revocation, then made acme again (`--another`): that one stands everywhere.
    us = merged(us, revoke)
    us, again = change(us, (3000, "us"), made=(fresh := key("acme")))
    assert views(us)[1] == fresh == views(merged(eu, again))[1]


def test_a_revoked_secret_stays_revoked_and_the_newest_value_wins_in_any_order() -> None:
    made = key("beta")
    start, _ = change(runtime_entries.empty(), (1000, "eu"), made=made, capacity={"sessions": 5})
    deltas = [change(start, (2000, "us"), capacity={"sessions": 7})[1],
              change(start, (1500, "ap"), capacity={"sessions": 9, "reserve.max": 3})[1],
              stamped(start, views(start), (views(start)[0], {}), (), "admin-2", (1200, "ap"))[1]]
    outcomes = set()
    for order in itertools.permutations(deltas):
        entries = start
        for delta in (*order, order[0]):  # a change taken twice is taken once
            entries = merged(entries, delta)
        outcomes.add(runtime_entries.digest(entries))
        assert views(entries) == ({"sessions": 7, "reserve.max": 3}, {})
    assert len(outcomes) == 1


@pytest.mark.parametrize(("raw", "says"), [
    ({"capacity": {"sessions": {"value": True, "version": [1, "eu"]}}}, "a whole number"),
    # Another region's value is bounded as PATCH /capacity bounds an admin's here.
    ({"capacity": {"sessions": {"value": 10**12, "version": [1, "eu"]}}}, "from 0 to 1000000"),
    ({"capacity": {"sessions": {"value": 2.5, "version": [1, "eu"]}}}, "a whole number"),
    ({"capacity": {"reserve.max": {"value": 0, "version": [1, "eu"]}}}, "from 1 to"),
    ({"capacity": {"key.acme": {"value": 3, "version": [1, "eu"]}}}, "at most 1"),
    ({"capacity": {"anything": {"value": 1, "version": [1, "eu"]}}}, "no capacity value"),
    ({"capacity": {"key.acme\n": {"value": 1, "version": [1, "eu"]}}}, "no capacity value"),
    ({"capacity": {"Sessions!": {"value": 1, "version": [1, "eu"]}}}, "no capacity value"),
    ({"capacity": {"sessions": {"value": 1, "version": [1, "eu"], "by": "a\x1b[2Jb"}}}, "printable"),
    ({"names": {"acme": {"revoked": [1]}}}, "no revoked"),
    ({"secrets": {"0123456789ab": {"name": "acme", "revoked": [1, "xx"]}}}, "did not make it"),
])
def test_entries_out_of_shape_are_refused_in_one_line(raw: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        checked(raw, makers={"eu"})


async def test_one_region_keeps_its_entries_and_a_revoked_name_across_reads() -> None:
    book = MemoryRuntimeBook()
    settings = RuntimeSettings(book, RuntimeKeys())  # REGION not set

    def made(record: dict[str, Any]) -> list[dict[str, Any]]:
        record["capacity"]["sessions"] = 5
        record["keys"].update(key("acme"))
        return [{"by": "admin-1", "action": "capacity.set"}]

    def revoked(record: dict[str, Any]) -> list[dict[str, Any]]:
        record["keys"].clear()
        record[REVOKED_NAMES] = ["acme"]
        return [{"by": "admin-1", "action": "key.revoke"}]

    await settings.change(made)
    await settings.change(revoked)
    again = RuntimeSettings(book, RuntimeKeys())
    await again.refresh()  # a replica started later reads the same entries
    entries = again.entries()
    assert entries["capacity"]["sessions"]["version"][1] == "local" and "acme" in entries["names"]
    assert again.capacity == {"sessions": 5} and again.keys.records == {}
    assert again.digest() == settings.digest()


async def test_two_regions_exchanging_their_changes_refuse_a_name_one_revoked_while_the_other_added_to_it(
        ) -> None:
    eu = RuntimeSettings(MemoryRuntimeBook(), RuntimeKeys(), region="eu")
    us = RuntimeSettings(MemoryRuntimeBook(), RuntimeKeys(), region="us")
    sent: dict[str, list[Entries]] = {"eu": [], "us": []}
    eu.made.append(sent["eu"].append)
    us.made.append(sent["us"].append)

    def create(record: dict[str, Any]) -> list[dict[str, Any]]:
        record["keys"].update(key("acme"))
        return [{"by": "admin-1", "action": "key.create"}]

    def revoke(record: dict[str, Any]) -> list[dict[str, Any]]:
        record["keys"].clear()
        record[REVOKED_NAMES] = ["acme"]
        return [{"by": "admin-1", "action": "key.revoke"}]

    await eu.change(create)
    assert await us.adopt(sent["eu"][-1]) and us.keys.names() == {"acme"}
    await eu.change(revoke)  # at the same moment as us's second secret, neither seeing the other
    await us.change(create)
    assert await eu.adopt(sent["us"][-1]) is True and await us.adopt(sent["eu"][-1]) is True
    assert eu.keys.records == {} == us.keys.records and eu.digest() == us.digest()
    trail = await us.history(10)
    assert trail[0]["action"] == "key.revoke" and trail[0]["by"] == "region eu: admin-1", trail


def test_a_secret_made_knowing_of_another_regions_revocation_is_pushed_by_the_region_that_made_it() -> None:
    made, _ = change(runtime_entries.empty(), (1000, "eu"), made=key("acme"))
    eu, revoke = change(made, (2000, "eu"), revoked=("acme",))
    us, again = change(merged(made, revoke), (3000, "us"), made=key("acme"))
    assert next(iter(again["secrets"].values()))["after"] == [2000, "eu"]
    taken = checked(again, makers={"us"}, latest_ms=4000)  # us's push: its `after` names eu, its version us
    assert views(merged(eu, taken))[1] == views(us)[1] != {}


def test_a_record_kept_before_entries_loses_only_its_values_out_of_bounds() -> None:
    entries = runtime_entries.of_views({"sessions": 5, "reserve.max": -3}, key("acme"), (7, "eu"))
    assert views(entries)[0] == {"sessions": 5} and len(views(entries)[1]) == 1


def test_a_revoked_secret_sent_again_as_live_at_a_newer_version_stays_revoked() -> None:
    made, sent = change(runtime_entries.empty(), (1000, "us"), made=key("acme"))
    revoked = stamped(made, views(made), (views(made)[0], {}), (), "admin-2", (2000, "eu"))[0]
    (secret_id, live), = sent["secrets"].items()
    again = {**runtime_entries.empty(), "secrets": {secret_id: {**live, "version": [9000, "us"]}}}
    assert views(merged(revoked, again))[1] == {} == views(merged(again, revoked))[1]


async def test_a_record_grown_past_what_a_peer_may_send_keeps_its_revocations_when_read_again() -> None:
    book = MemoryRuntimeBook()
    grown = {f"gone-{n}": {"revoked": [1000 + n, "eu"], "by": "admin-1"} for n in range(runtime_entries.MAX_ENTRIES)}
    entries = {**runtime_entries.empty(), "names": grown,
               "capacity": {"sessions": {"value": 5, "version": [5000, "eu"], "by": "admin-1"}}}
    assert await book.write({"version": 3, "capacity": {"sessions": 5}, "keys": {}, "entries": entries}, None)
    settings = RuntimeSettings(book, RuntimeKeys(), region="eu")
    await settings.refresh()
    assert len(settings.entries()["names"]) == runtime_entries.MAX_ENTRIES
    assert settings.entries()["capacity"]["sessions"]["version"] == [5000, "eu"]
    with pytest.raises(ValueError, match="more than"):  # as a peer would read it
        checked(settings.entries())


def test_the_names_ever_used_merge_to_each_names_first_use_whatever_the_order() -> None:
    eu = {**empty(), "used": {"acme": {"version": [2000, "eu"]}}}
    us = {**empty(), "used": {"acme": {"version": [1000, "us"]}, "beta": {"version": [3000, "us"]}}}
    assert merged(eu, us) == merged(us, eu)
    assert merged(eu, us)["used"] == {"acme": {"version": [1000, "us"]}, "beta": {"version": [3000, "us"]}}
    assert checked({"used": {"acme": {"version": [1000, "us"]}}}, makers={"us"})["used"] == {
        "acme": {"version": [1000, "us"]}}
    with pytest.raises(ValueError, match="did not make it"):
        checked({"used": {"acme": {"version": [1000, "us"]}}}, makers={"eu"})
    with pytest.raises(ValueError, match="key name"):
        checked({"used": {"Not A Name": {"version": [1000, "us"]}}})


def test_a_revoked_secret_keeps_its_slow_hash_through_another_regions_check_for_every_replica_to_tell_it() -> None:
    """Revoked by its id or with its name, its entry (as a peer region checks it) still names its
    salt, digest and check: a replica that never verified it can tell its holder it was revoked."""
    made, _ = change(runtime_entries.empty(), (1000, "us"), made=key("acme") | key("beta"))
    live = views(made)[1]
    (acme_id, acme), = ((i, r) for i, r in live.items() if r["name"] == "acme")
    (beta_id, beta), = ((i, r) for i, r in live.items() if r["name"] == "beta")
    one = stamped(made, views(made), (views(made)[0], {beta_id: beta}), (), "admin-2", (2000, "eu"))[1]
    received = checked(one)  # as a peer region takes the delta
    assert {f: received["secrets"][acme_id][f] for f in ("salt", "digest", "check")} == {
        f: acme[f] for f in ("salt", "digest", "check")}
    both, _ = change(merged(made, received), (3000, "us"), revoked=("beta",))
    records = runtime_entries.revoked_records(checked(both))
    assert {i: (r["name"], r["digest"]) for i, r in records.items()} == {acme_id: ("acme", acme["digest"]),
                                                                        beta_id: ("beta", beta["digest"])}
    assert views(both)[1] == {}
