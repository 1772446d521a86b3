"""stacks/tools/config_cache.py: a kept answer is the program's own, for the same inputs only, and holds
no secret value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pulumi.runtime import rpc

from stacks.tools import config_cache, config_check, paths
from stacks.tools.dispatcher_env import DispatcherEnv, dispatcher_envs
from stacks.tools.mocks import Registration
from stacks.tools.plan import stack_config

STACKS = paths.stack_names()  # every example stack, the front doors (no dispatcher: kept as none) among them


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("stack", STACKS)
def test_a_kept_answer_is_the_programs_own(stack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first run runs the program and keeps what it read back; the second reads it, equal, without a run."""
    ran = config_check.stack_envs(stack)  # a miss: the program, as the plan runs it
    from stacks.tools import mocks

    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("a hit must not run the program")

    monkeypatch.setattr(mocks, "run_program", no_run)
    assert config_check.stack_envs(stack) == ran


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout of a few files: the program's folders, a stack file, Pulumi.yaml and a bot project."""
    root = tmp_path / "checkout"
    for name in (*config_cache.FOLDERS, "bot"):
        (root / name).mkdir(parents=True)
        (root / name / "module.py").write_text(f"# {name}\n")
    (root / "stacks" / "Pulumi.one.yaml").write_text("config:\n  voicefleet:cloud: aws\n")
    (root / "Pulumi.yaml").write_text("name: voicefleet\n")
    (root / "uv.lock").write_text("version = 1\n")
    monkeypatch.setattr(config_cache, "REPOSITORY", root)
    monkeypatch.setattr(config_cache, "PROJECT_FILE", root / "Pulumi.yaml")
    monkeypatch.setattr(paths, "STACK_FILES", root / "stacks")
    return root


ENVS = [DispatcherEnv("td", {"MACHINES": "ecs"}, frozenset({"DAILY_API_KEY"}), {})]


def _config(root: Path) -> dict[str, str]:
    return {"voicefleet:botProject": str(root / "bot")}


@pytest.mark.parametrize("change", ["stacks/Pulumi.one.yaml", "stacks/module.py", "dispatcher/module.py",
                                    "bot/module.py", "bot/added.py", "Pulumi.yaml", "uv.lock"])
def test_a_changed_input_misses(tree: Path, change: str) -> None:
    config_cache.store("one", _config(tree), {}, ENVS)
    assert config_cache.load("one", _config(tree), {}) == ENVS
    (tree / change).write_text("changed\n")
    assert config_cache.load("one", _config(tree), {}) is None


def test_other_overrides_miss_and_a_removed_file_misses(tree: Path) -> None:
    config_cache.store("one", _config(tree), {"maxConcurrentSessions": "5"}, ENVS)
    assert config_cache.load("one", _config(tree), {"maxConcurrentSessions": "6"}) is None
    assert config_cache.load("one", _config(tree), {"maxConcurrentSessions": "5"}) == ENVS
    (tree / "bot" / "module.py").unlink()
    assert config_cache.load("one", _config(tree), {"maxConcurrentSessions": "5"}) is None


@pytest.mark.parametrize("text", ["", "{", "[]", '{"version": 1}', '{"version": 1, "inputs": 3, "envs": []}'])
def test_a_corrupt_entry_is_a_miss(tree: Path, _own_cache: Path, text: str) -> None:
    config_cache.store("one", _config(tree), {}, ENVS)
    (entry,) = (_own_cache / "voicefleet" / "config-check").glob("one-*.json")
    entry.write_text(text)
    assert config_cache.load("one", _config(tree), {}) is None


def test_an_entry_holds_no_secret_value(tree: Path, _own_cache: Path) -> None:
    """A Pulumi secret in the container's environment is kept by name only."""
    secret = {rpc._special_sig_key: rpc._special_secret_sig, "value": "sk-never-kept-0123456789"}
    container = {"name": "dispatcher", "environment": [{"name": "MACHINES", "value": "ecs"},
                                                       {"name": "DAILY_API_KEY", "value": secret}]}
    registration = Registration(urn="urn:td", type="aws:ecs/taskDefinition:TaskDefinition", name="td",
                                inputs={"containerDefinitions": json.dumps([container])}, custom=True, provider="",
                                parent="", protect=False)
    envs = dispatcher_envs([registration])
    config_cache.store("one", _config(tree), {}, envs)
    (entry,) = (_own_cache / "voicefleet" / "config-check").glob("one-*.json")
    assert "sk-never-kept" not in entry.read_text()
    assert config_cache.load("one", _config(tree), {}) == envs


def test_a_refused_stack_is_never_kept(_own_cache: Path) -> None:
    from stacks.config.reader import SettingsError

    with pytest.raises(SettingsError):
        config_check.stack_envs("aws-dev", {"maxConcurrentSessions": "0"})
    assert not list((_own_cache / "voicefleet" / "config-check").glob("aws-dev-*.json"))


def test_the_stack_files_own_config_selects_the_bot_project() -> None:
    config, _ = stack_config("aws-dev")
    assert config_cache._bot_project(config).name == "parrot"


def test_old_entries_and_leftovers_are_pruned(tree: Path, _own_cache: Path) -> None:
    import os
    import time

    config_cache.store("one", _config(tree), {}, ENVS)
    folder = _own_cache / "voicefleet" / "config-check"
    (kept,) = folder.glob("one-*.json")
    old, leftover, fresh_leftover = folder / "two-old.json", folder / ".entry-x.json", folder / ".entry-y.json"
    for path in (old, leftover, fresh_leftover):
        path.write_text("{}")
    day = 86400
    os.utime(old, (time.time() - 31 * day, time.time() - 31 * day))
    os.utime(leftover, (time.time() - 2 * 3600, time.time() - 2 * 3600))
    config_cache.store("one", _config(tree), {}, ENVS)
    assert sorted(path.name for path in folder.iterdir()) == sorted([kept.name, fresh_leftover.name])


def test_a_changed_build_context_misses(tree: Path, tmp_path: Path) -> None:
    """An image's digest (a dispatcher's BOT_IMAGE) follows its build context: any file of it, wherever it is."""
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (context / "bot.py").write_text("print('one')\n")
    image = Registration(urn="urn:image", type=config_cache.IMAGE_TYPE, name="bot",
                         inputs={"context": {"location": str(context)}}, custom=True, provider="", parent="",
                         protect=False)
    config_cache.store("one", _config(tree), {}, ENVS, [image])
    assert config_cache.load("one", _config(tree), {}) == ENVS
    (context / "bot.py").write_text("print('two')\n")
    assert config_cache.load("one", _config(tree), {}) is None


def test_a_build_context_edited_while_the_program_ran_misses(tree: Path, tmp_path: Path) -> None:
    """The entry holds the context hash the run's image had (the mocks', at registration): a file of the
    context edited after that, before the answer is kept, is no input of the kept answer."""
    from images.docker_build_model import image_context_hash

    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (context / "bot.py").write_text("print('one')\n")
    inputs = {"context": {"location": str(context)}}
    image = Registration(urn="urn:image", type=config_cache.IMAGE_TYPE, name="bot", inputs=inputs, custom=True,
                         provider="", parent="", protect=False,
                         outputs={"contextHash": image_context_hash(inputs, tmp_path)})
    (context / "bot.py").write_text("print('two')\n")  # after the run, before its answer is kept
    config_cache.store("one", _config(tree), {}, ENVS, [image])
    assert config_cache.load("one", _config(tree), {}) is None


def test_another_installed_sdk_misses(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A venv not synced to uv.lock: the SDK that would run is not the one the entry was made with."""
    config_cache.store("one", _config(tree), {}, ENVS)
    installed = config_cache._installed
    monkeypatch.setattr(config_cache, "_installed",
                        lambda names: {**installed(names), "pulumi_aws": "0.0.1"})
    assert config_cache.load("one", _config(tree), {}) is None


def _folder(cache: Path) -> Path:
    return cache / "voicefleet" / "config-check"


def test_the_folder_is_the_users_alone_and_each_entry_too(tree: Path, _own_cache: Path) -> None:
    config_cache.store("one", _config(tree), {}, ENVS)
    folder = _folder(_own_cache)
    (entry,) = folder.glob("one-*.json")
    assert folder.stat().st_mode & 0o777 == 0o700
    assert not folder.parent.stat().st_mode & 0o022
    assert entry.stat().st_mode & 0o777 == 0o600


def test_a_folder_others_may_write_is_neither_read_nor_written(tree: Path, _own_cache: Path) -> None:
    """Another local user who can write there could plant or swap an entry: their answer, taken as the program's."""
    config_cache.store("one", _config(tree), {}, ENVS)
    folder = _folder(_own_cache)
    folder.chmod(0o777)
    assert config_cache.load("one", _config(tree), {}) is None
    folder.chmod(0o700)
    folder.parent.chmod(0o777)  # voicefleet/ above it: a writer there swaps the folder itself
    assert config_cache.load("one", _config(tree), {}) is None
    config_cache.store("one", _config(tree), {}, ENVS)  # the user's own folders, closed again before a write
    assert not folder.parent.stat().st_mode & 0o022
    assert config_cache.load("one", _config(tree), {}) == ENVS


def test_another_users_folder_or_entry_is_a_miss(tree: Path, _own_cache: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    config_cache.store("one", _config(tree), {}, ENVS)
    monkeypatch.setattr(os, "getuid", lambda: os.stat(_own_cache).st_uid + 1)  # the files are another user's
    assert config_cache.load("one", _config(tree), {}) is None
    for entry in _folder(_own_cache).glob("one-*.json"):
        entry.unlink()
    config_cache.store("one", _config(tree), {}, ENVS)  # nothing is written into another user's folder
    assert not list(_folder(_own_cache).glob("one-*.json"))


def test_a_linked_entry_is_a_miss(tree: Path, _own_cache: Path, tmp_path: Path) -> None:
    config_cache.store("one", _config(tree), {}, ENVS)
    (entry,) = _folder(_own_cache).glob("one-*.json")
    target = tmp_path / "elsewhere.json"
    entry.rename(target)
    entry.symlink_to(target)
    assert config_cache.load("one", _config(tree), {}) is None


def test_a_nested_entry_is_a_miss_not_a_crash(tree: Path, _own_cache: Path) -> None:
    """Nested past the parser's recursion limit (a hostile or broken file): a miss, not a traceback."""
    config_cache.store("one", _config(tree), {}, ENVS)
    (entry,) = _folder(_own_cache).glob("one-*.json")
    entry.write_text("[" * 100_000 + "]" * 100_000)
    assert config_cache.load("one", _config(tree), {}) is None


def test_an_entry_larger_than_any_is_not_read(tree: Path, _own_cache: Path) -> None:
    """A good entry padded past MAX_ENTRY_BYTES: never read whole into memory, a miss."""
    config_cache.store("one", _config(tree), {}, ENVS)
    (entry,) = _folder(_own_cache).glob("one-*.json")
    with entry.open("a") as file:
        file.write(" " * config_cache.MAX_ENTRY_BYTES)
    assert config_cache.load("one", _config(tree), {}) is None


@pytest.mark.parametrize(("variable", "value"), [("PULUMI_CONFIG_VOICEFLEET_KEEPALIVESECONDS", "77"),
                                                 ("PULUMI_CONFIG", '{"voicefleet:keepAliveSeconds": "77"}')])
def test_pulumi_config_in_the_environment_selects_the_answer(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                             value: str) -> None:
    """Pulumi's SDK reads a key the stack file leaves out from the environment: a kept answer made without
    the variable is not the answer with it."""
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_VOICEFLEET_KEEPALIVESECONDS", raising=False)
    (without,) = config_check.stack_envs("aws-dev")
    monkeypatch.setenv(variable, value)
    (with_it,) = config_check.stack_envs("aws-dev")
    assert without.plain["KEEP_ALIVE_SECONDS"] != "77"
    assert with_it.plain["KEEP_ALIVE_SECONDS"] == "77"


def test_a_large_file_of_the_bot_project_is_hashed_in_chunks(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bot project may hold model files of gigabytes: never read whole into memory to be hashed."""
    import hashlib

    model = tree / "bot" / "model.bin"
    model.write_bytes(b"\0" * (1 << 20))

    def whole(path: Path) -> bytes:
        raise AssertionError(f"{path} read whole")

    monkeypatch.setattr(Path, "read_bytes", whole)
    config_cache.store("one", _config(tree), {}, ENVS)
    assert config_cache.load("one", _config(tree), {}) == ENVS
    assert config_cache._digest(model) == hashlib.sha256(b"\0" * (1 << 20)).hexdigest()


def test_a_run_with_a_refused_key_left_out_is_never_kept(_own_cache: Path) -> None:
    """The check runs the program again without each key it refused, to find the others: that answer is
    not the stack file's, and kept it would pass the refused key on the next check."""
    from stacks.config.reader import SettingsError

    config_check.stack_envs("aws-dev", {"maxConcurrentSessions": "lots"}, without=frozenset(
        {"voicefleet:maxConcurrentSessions"}))
    assert not list((_own_cache / "voicefleet" / "config-check").glob("aws-dev-*.json"))
    with pytest.raises(SettingsError, match="maxConcurrentSessions"):
        config_check.stack_envs("aws-dev", {"maxConcurrentSessions": "lots"})


def test_a_stack_file_edited_while_the_program_ran_misses(tree: Path) -> None:
    """The answer is the file's as the run read it: an edit saved during the run is no input of it."""
    stack = tree / "stacks" / "Pulumi.one.yaml"
    read = config_cache.files_read("one", _config(tree))  # before the run
    stack.write_text(stack.read_text() + "  voicefleet:maxConcurrentSessions: lots\n")  # saved mid-run
    config_cache.store("one", _config(tree), {}, ENVS, read=read)
    assert config_cache.load("one", _config(tree), {}) is None
    config_cache.store("one", _config(tree), {}, ENVS, read=config_cache.files_read("one", _config(tree)))
    assert config_cache.load("one", _config(tree), {}) == ENVS
