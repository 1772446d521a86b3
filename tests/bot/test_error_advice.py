"""The way out added to a bot's error: only for the walls it names, never for a bot's own KeyError."""

from __future__ import annotations

from bot.error_advice import way_out


def test_a_missing_module_names_the_projects_python(monkeypatch):
    advice = way_out(ModuleNotFoundError("No module named 'cv2'", name="cv2"))
    assert advice is not None and "BOT_PYTHON=" in advice and "uv add" in advice


def test_a_missing_variable_names_how_to_pass_it(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    advice = way_out(KeyError("OPENAI_API_KEY"))
    assert advice is not None and "LOCAL_BOT_ENV=OPENAI_API_KEY" in advice and "botSecrets.OPENAI_API_KEY" in advice


def test_a_keyerror_that_is_not_a_missing_variable_gets_no_advice(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "set")
    assert way_out(KeyError("OPENAI_API_KEY")) is None  # it is there: the bot's own dict lookup failed
    assert way_out(KeyError("voice")) is None  # a dict's key, not a variable's name
    assert way_out(KeyError(3)) is None
    assert way_out(ModuleNotFoundError("no name")) is None
    assert way_out(ValueError("OPENAI_API_KEY")) is None


def test_an_eoferror_of_the_bots_own_gets_no_advice():
    def parse() -> None:
        raise EOFError("truncated frame")  # a parser or a pipe of the bot's own

    try:
        parse()
    except EOFError as exc:
        assert way_out(exc) is None
    assert way_out(EOFError("EOF when reading a line")) is None  # no traceback: nothing to point at


def _pipecat_service_import(path: str) -> ImportError:
    """What Pipecat's service modules raise when their extra is missing: an ImportError from the
    ModuleNotFoundError, raised in the service's own file (compiled here under that file's path)."""
    source = ("try:\n    import voicefleet_no_such_google_sdk\n"
              "except ModuleNotFoundError as e:\n    raise ImportError(f'Missing module: {e}') from e\n")
    try:
        exec(compile(source, path, "exec"), {})
    except ImportError as exc:
        return exc
    raise AssertionError("the import did not fail")


def test_a_pipecat_service_missing_its_extra_names_the_extra_and_the_projects_python():
    exc = _pipecat_service_import("/venv/lib/python3.11/site-packages/pipecat/services/google/llm.py")
    assert type(exc) is ImportError and str(exc).startswith("Missing module:")
    advice = way_out(exc)
    assert advice is not None and "add pipecat-ai[google] to your project" in advice and "BOT_PYTHON=" in advice
    other = _pipecat_service_import("/venv/lib/python3.11/site-packages/pipecat/services/aws_nova_sonic/llm.py")
    assert "pipecat-ai[aws-nova-sonic]" in (way_out(other) or "")


def test_an_import_error_that_is_not_a_missing_module_gets_no_advice():
    assert way_out(ImportError("cannot import name 'X' from 'y'")) is None
