"""The images' rebuilt closures, built once per test session: several modules check the same venvs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.images.closure import BOT_DOCKERFILE, DISPATCHER_DOCKERFILE, Closure, build_closure


@pytest.fixture(scope="session")
def bot_closure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Closure]:
    root = tmp_path_factory.mktemp("bot-image")
    yield build_closure(BOT_DOCKERFILE, root / "venv")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dispatcher_closure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Closure]:
    root = tmp_path_factory.mktemp("dispatcher-image")
    yield build_closure(DISPATCHER_DOCKERFILE, root / "venv")
    shutil.rmtree(root, ignore_errors=True)
