"""The catalogue's reader (voicefleet_settings/read.py) applies each entry's bounds and choices, and
the code takes defaults and bounds from the catalogue alone: a parse site that writes its own is found."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dispatcher.settings import SettingsError
from voicefleet_settings.catalogue import SETTINGS
from voicefleet_settings.model import BOOLEAN, ENUM, FALSE_WORDS, INTEGER, LIST, NUMBER, TRUE_WORDS, Setting
from voicefleet_settings.read import (
    setting_bool,
    setting_choice,
    setting_float,
    setting_int,
    setting_list,
    setting_text,
)

ROOT = Path(__file__).resolve().parents[2]
BOUNDED = [s for s in SETTINGS if s.kind in (INTEGER, NUMBER)
           and (s.minimum is not None or s.maximum is not None or s.above is not None)]
# The hand-written parsers that took a default and bounds of their own: the catalogue holds both now.
OWN_DEFAULTS = {"int_setting", "float_setting"}


def _read(setting: Setting, value: str) -> float:
    reader = setting_int if setting.kind == INTEGER else setting_float
    default = None if setting.default is not None else 1  # one the catalogue cannot hold: the reader's caller's
    return reader({setting.name: value}, setting.name, default=default)


def _outside(setting: Setting) -> list[str]:
    """Values just past each bound: one step for a whole number, a little for a decimal."""
    step = 1 if setting.kind == INTEGER else 0.001
    values = []
    if setting.minimum is not None:
        values.append(setting.minimum - step)
    if setting.above is not None:
        values.append(setting.above)
    if setting.maximum is not None:
        values.append(setting.maximum + step)
    return [str(int(v)) if setting.kind == INTEGER else str(round(v, 6)) for v in values]


def _inside(setting: Setting) -> list[str]:
    values = [v for v in (setting.minimum, setting.maximum) if v is not None]
    return [str(int(v)) if setting.kind == INTEGER else str(v) for v in values]


def test_the_catalogue_has_bounds_to_check() -> None:
    assert len(BOUNDED) >= 100
    assert len([s for s in SETTINGS if s.kind == ENUM]) >= 10
    assert len([s for s in SETTINGS if s.kind == BOOLEAN]) >= 5


@pytest.mark.parametrize("setting", BOUNDED, ids=lambda s: s.name)
def test_a_value_just_outside_a_bound_is_refused_naming_the_variable_and_its_bound(setting: Setting) -> None:
    for value in _outside(setting):
        with pytest.raises(SettingsError) as refused:
            _read(setting, value)
        line = str(refused.value)
        assert line.startswith(f"{setting.name}=") and "\n" not in line
        assert "at least" in line or "at most" in line or "above" in line
    for value in _inside(setting):  # a bound itself is allowed
        assert _read(setting, value) == float(value)


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.kind == ENUM], ids=lambda s: s.name)
def test_an_unknown_choice_is_refused_naming_the_choices(setting: Setting) -> None:
    with pytest.raises(SettingsError) as refused:
        setting_choice({setting.name: "no-such-choice"}, setting.name)
    assert str(refused.value) == f"{setting.name}='no-such-choice' is not one of {', '.join(setting.choices)}"
    for choice in setting.choices:  # any case, read as the catalogue spells it
        assert setting_choice({setting.name: f" {choice.swapcase()} "}, setting.name) == choice
    assert setting_choice({}, setting.name) == (setting.default or "")


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.kind == BOOLEAN], ids=lambda s: s.name)
def test_a_boolean_takes_its_words_and_refuses_others(setting: Setting) -> None:
    for word in TRUE_WORDS + tuple(w.upper() for w in TRUE_WORDS):
        assert setting_bool({setting.name: word}, setting.name) is True
    for word in FALSE_WORDS:
        assert setting_bool({setting.name: word}, setting.name) is False
    assert setting_bool({}, setting.name) is (setting.default in TRUE_WORDS)
    with pytest.raises(SettingsError, match=rf"^{setting.name}='maybe' is not a boolean: write 1/0, true/false"):
        setting_bool({setting.name: "maybe"}, setting.name)


def test_a_list_with_choices_refuses_an_unknown_item_and_keeps_each_once() -> None:
    assert [s.name for s in SETTINGS if s.kind == LIST and s.choices] == ["TRANSPORTS"]
    assert setting_list({"TRANSPORTS": " WebRTC, daily,webrtc,"}, "TRANSPORTS") == ("webrtc", "daily")
    with pytest.raises(SettingsError, match="^TRANSPORTS: 'ws' is not one of daily, webrtc$"):
        setting_list({"TRANSPORTS": "daily,ws"}, "TRANSPORTS")


def test_not_a_number_and_not_finite_are_refused() -> None:
    with pytest.raises(SettingsError, match="^MAX_CONCURRENT_SESSIONS='ten' is not a whole number$"):
        setting_int({"MAX_CONCURRENT_SESSIONS": "ten"}, "MAX_CONCURRENT_SESSIONS")
    for raw in ("nan", "inf"):
        with pytest.raises(SettingsError, match="must be a finite number"):
            setting_float({"START_WAIT_SECONDS": raw}, "START_WAIT_SECONDS")
    assert setting_float({"KEY_SESSION_SHARE": "1"}, "KEY_SESSION_SHARE") == 1.0
    with pytest.raises(SettingsError, match="^KEY_SESSION_SHARE=0 must be above 0 and at most 1$"):
        setting_float({"KEY_SESSION_SHARE": "0"}, "KEY_SESSION_SHARE")


def test_unset_is_the_catalogue_default_and_a_second_default_is_refused() -> None:
    assert setting_int({}, "MAX_CONCURRENT_SESSIONS") == 10
    assert setting_int({"MAX_CONCURRENT_SESSIONS": " "}, "MAX_CONCURRENT_SESSIONS") == 10
    with pytest.raises(TypeError, match="its default is the catalogue's"):
        setting_int({}, "MAX_CONCURRENT_SESSIONS", default=10)
    with pytest.raises(TypeError, match="pass the one it follows"):
        setting_int({}, "EXOTEL_MAX_CALLS")  # follows other settings: its reader says which
    assert setting_int({}, "EXOTEL_MAX_CALLS", default=0) == 0


def test_a_boolean_whose_default_follows_the_mode_takes_it_unset_or_blank_and_only_then() -> None:
    for local in (True, False):
        assert setting_bool({}, "DASHBOARD_ENABLED", default=local) is local
        assert setting_bool({"DASHBOARD_ENABLED": "  "}, "DASHBOARD_ENABLED", default=local) is local
        assert setting_bool({"DASHBOARD_ENABLED": "on"}, "DASHBOARD_ENABLED", default=local) is True
        assert setting_bool({"DASHBOARD_ENABLED": "No"}, "DASHBOARD_ENABLED", default=local) is False
    with pytest.raises(TypeError, match="its default is the catalogue's"):
        setting_bool({}, "RELEASE_AUTO_ROLLBACK", default=True)


def test_a_reader_of_the_wrong_kind_or_an_unknown_name_is_the_codes_mistake() -> None:
    with pytest.raises(TypeError, match="PORT: its kind in the catalogue is integer, read as number"):
        setting_float({}, "PORT")
    with pytest.raises(LookupError, match="not in voicefleet_settings/catalogue.py"):
        setting_int({}, "NO_SUCH_SETTING")


def _own_defaults(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in OWN_DEFAULTS:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_no_dispatcher_module_writes_a_default_or_a_bound_of_its_own() -> None:
    """A setting is read by its entry (`setting_int(env, "NAME")`), so its default and bounds are the
    catalogue's; `int_setting(env, "NAME", 10, minimum=1)` would write them a second time."""
    found = [line for path in sorted((ROOT / "dispatcher").rglob("*.py")) if path.parent.name != "settings"
             for line in _own_defaults(path)]
    assert found == [], "read these with voicefleet_settings/read.py, their bounds in the catalogue"


# Catalogued for the page, read raw: the platform sets them or its SDKs read them too (their catalogue
# default describes the SDK's, not a value to read), and K8S_CA_FILE's default follows the API URL's scheme.
READ_RAW = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_STS",
            "AWS_ENDPOINT_URL_ECS", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST",
            "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "PYTHONPATH",
            "STORAGE_EMULATOR_HOST", "K8S_CA_FILE"}


def _is_environment(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id in ("env", "environ")) or (
        isinstance(node, ast.Attribute) and node.attr == "environ")


def _raw_reads(path: Path, names: set[str]) -> list[str]:
    """`env.get("NAME")`, `env["NAME"]`, `"NAME" in env`, `os.getenv("NAME")` of a catalogued name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        key: ast.expr | None = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args and (
                (node.func.attr == "get" and _is_environment(node.func.value)) or node.func.attr == "getenv"):
            key = node.args[0]
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environment(node.value):
            key = node.slice
        elif isinstance(node, ast.Compare) and any(_is_environment(c) for c in node.comparators):
            key = node.left
        if isinstance(key, ast.Constant) and key.value in names:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {key.value}")
    return found


def test_no_dispatcher_module_reads_a_catalogued_setting_raw() -> None:
    """A raw read takes none of the entry's default, choices or bounds, and `config check` cannot see
    what it would refuse: every catalogued setting is read by voicefleet_settings/read.py's readers."""
    names = {s.name for s in SETTINGS} | {alias for s in SETTINGS for alias in s.aliases}
    found = [line for path in sorted((ROOT / "dispatcher").rglob("*.py")) if path.parent.name != "settings"
             for line in _raw_reads(path, names - READ_RAW)]
    assert found == [], "read these with setting_text/setting_int/... (voicefleet_settings/read.py)"


def test_config_check_names_every_fault_at_once_with_what_is_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    from dispatcher.serving import config_command

    env = {"RESERVE_MAX_IDEL": "3", "PORT": "70000", "RECORDING_REQUIRED": "sure", "LOG_LEVEL": "loud"}
    assert config_command.main(["check"], env) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "RESERVE_MAX_IDEL is no setting: did you mean RESERVE_MAX_IDLE?"
    assert sorted(lines[1:]) == [
        "LOG_LEVEL='loud' is not one of debug, info, warning, error, critical",
        "PORT=70000 must be at most 65535",
        "RECORDING_REQUIRED='sure' is not a boolean: write 1/0, true/false, yes/no, on/off",
    ]


def _reads(setting: Setting, value: str) -> object:
    readers = {INTEGER: setting_int, NUMBER: setting_float, BOOLEAN: setting_bool, ENUM: setting_choice,
               LIST: setting_list}
    if setting.kind in (INTEGER, NUMBER) and setting.default is None:
        return _read(setting, value)
    return readers[setting.kind]({setting.name: value}, setting.name)  # type: ignore[operator]


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.kind != "string"], ids=lambda s: s.name)
def test_each_default_is_a_value_its_entry_allows(setting: Setting) -> None:
    if setting.kind in (ENUM, LIST):
        assert setting.choices or setting.kind == LIST, "an enum names its choices"
    if setting.default is not None:
        _reads(setting, setting.default)


def test_what_a_size_or_a_profile_derives_is_allowed() -> None:
    from dispatcher.settings.derived import PROFILES, SIZES
    from voicefleet_settings.names import by_name

    for values in [*SIZES.values(), *PROFILES.values()]:
        for name, value in values.items():
            if by_name()[name].kind != "string":
                _reads(by_name()[name], value)


def test_a_text_setting_is_its_default_when_unset_or_blank() -> None:
    assert setting_text({}, "HOST") == "127.0.0.1"
    assert setting_text({"HOST": "  "}, "HOST") == "127.0.0.1"
    assert setting_text({"HOST": " 0.0.0.0 "}, "HOST") == "0.0.0.0"
    assert setting_text({}, "FLY_REGION") == ""  # none: unset stays unset


def test_a_local_stop_grace_that_is_no_number_is_one_line_not_a_traceback() -> None:
    from dispatcher.machines.local.provider import LocalSettings

    with pytest.raises(SettingsError, match="^LOCAL_STOP_GRACE_SECONDS='soon' is not a number$"):
        LocalSettings.from_env({"LOCAL_STOP_GRACE_SECONDS": "soon"})
    assert LocalSettings.from_env({"LOCAL_STOP_GRACE_SECONDS": "0.5"}).stop_grace_seconds == 0.5


def test_each_number_reader_keeps_its_type_set_or_unset() -> None:
    """One parser serves both readers: a whole number read as a number is a float, a default an int."""
    assert type(setting_float({"START_WAIT_SECONDS": "10"}, "START_WAIT_SECONDS")) is float
    assert type(setting_float({}, "START_WAIT_SECONDS")) is float
    assert type(setting_int({"MAX_CONCURRENT_SESSIONS": "12"}, "MAX_CONCURRENT_SESSIONS")) is int
    assert type(setting_int({}, "MAX_CONCURRENT_SESSIONS")) is int
