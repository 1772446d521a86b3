"""A failure on the dispatcher's own side over K8S_CELLS: its open-files limit spent (EMFILE), it can open no
socket to any cluster, nor a cell's token file. That says nothing of the cells: none is drained or shown
`unreadable`, and the start is a 503 `dispatcher_exhausted` that says why, instead of every cell drained in
turn (which would keep them set aside for their backoffs after the dispatcher recovered).

The limit is spent for real, in this process, for the calls under test (tests/support/descriptors.py).
"""

from __future__ import annotations

import pytest

from dispatcher.machines.base import LaunchResult, LaunchSpec, MachinesError
from dispatcher.outbound.provider_errors import as_api_error
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_k8s_cells import cells_env, creates, replica, spec, views
from tests.fakes.k8s import FakeKubernetes
from tests.support.cells import homed_in
from tests.support.descriptors import out_of_descriptors


@pytest.mark.parametrize("opening", ["socket", "token file"])
async def test_a_dispatcher_out_of_descriptors_drains_no_cell_and_says_why(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes, opening: str) -> None:
    machines = replica(cells_env(fake_k8s, fake_k8s_cell), LocalCoordination())
    try:
        if opening == "socket":  # each cell's token read already: the socket is the first thing opened
            for member in machines._members.values():
                member.api._bearer()
        [session] = homed_in(machines, "a")
        with out_of_descriptors():
            with pytest.raises(MachinesError) as refused:
                await machines.launch(spec(session))
            with pytest.raises(MachinesError) as unlisted:
                await machines.list()
        answer = as_api_error(refused.value)
        assert (answer.status, answer.code) == (503, "dispatcher_exhausted"), answer
        assert "too many open files" in answer.message and "its own limit" in answer.message, answer.message
        assert unlisted.value.reason == "dispatcher_exhausted"
        assert all(view.drained_until is None and view.unreadable is None for view in views(machines).values())
        assert creates(fake_k8s) == creates(fake_k8s_cell) == 0
        launched = await machines.launch(spec(session))  # descriptors back: the start goes on, in its home cell
        assert launched.created and f"vf-{session}" in fake_k8s.pods
    finally:
        await machines.aclose()


async def test_a_create_unanswered_whose_retry_cannot_be_sent_is_looked_for_and_its_pod_adopted(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    """The first create reached the cluster and its pod was made, its answer lost; the retry finds the descriptors
    spent. That retry sent nothing, but the first may have made the pod: it is looked for and adopted, not left
    running for a start answered `dispatcher_exhausted`."""
    machines = replica({**cells_env(fake_k8s, fake_k8s_cell), "K8S_TIMEOUT_SECONDS": "1"}, LocalCoordination())
    machines.lost.look_pauses, machines.lost.watch_pauses = (0.05, 0.5), ()
    try:
        [session] = homed_in(machines, "a")
        lost = fake_k8s.hold(method="POST", path_suffix="/pods")  # served once the client gave up on its answer
        member = machines._members["a"]
        first_try = member.create_session

        async def retried_without_descriptors(launch: LaunchSpec, *, once: bool = False) -> LaunchResult:
            if once:
                return await first_try(launch, once=True)
            lost.release()
            assert await fake_k8s.eventually(lambda: f"vf-{session}" in fake_k8s.pods)
            with out_of_descriptors():
                return await first_try(launch)

        member.create_session = retried_without_descriptors  # type: ignore[method-assign]
        launched = await machines.launch(spec(session))
        assert launched.machine.machine_id == f"vf-{session}" and creates(fake_k8s) == 1
        assert creates(fake_k8s_cell) == 0 and views(machines)["a"].drained_until is None
    finally:
        await machines.aclose()
