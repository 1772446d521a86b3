"""docs/from-pipecat-examples.md's table of Pipecat services' endpoints, checked against the
installed source: each class is defined in a file its row names, each default URL it quotes is in
those files, and where the SDK is installed, the variable a row says is read is read (the service
is built with the variable set and its client's URL is looked at), and one it says is not read is not.
Rows for SDKs this checkout does not install (anthropic, groq, google-genai) are checked by hand
against their source, as the page says."""

from __future__ import annotations

import re
from pathlib import Path

import botocore.session
import pipecat.services
import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "from-pipecat-examples.md"
SERVICES = Path(pipecat.services.__file__).parent
ENDPOINT = "http://127.0.0.1:9/v1"


def rows() -> list[list[str]]:
    text = PAGE.read_text(encoding="utf-8").split("## Talking to an unchanged bot offline", 1)[1]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| service")]


def test_the_table_covers_the_services_the_examples_use() -> None:
    named = " ".join(row[0] for row in rows())
    for provider in ("OpenAI", "Anthropic", "Gemini", "Groq", "Deepgram", "Cartesia", "ElevenLabs", "Azure", "AWS"):
        assert provider in named, provider


@pytest.mark.parametrize("row", rows(), ids=lambda row: row[0][:40])
def test_each_rows_classes_and_default_urls_are_in_the_files_it_names(row: list[str]) -> None:
    files = [SERVICES / path for path in re.findall(r"`([a-z_]+(?:/[a-z_]+)*\.py)`", row[1])]
    assert files and all(file.is_file() for file in files), row[1]
    source = "\n".join(file.read_text(encoding="utf-8") for file in files)
    for name in re.findall(r"`([A-Z][A-Za-z]+Service)`", row[0]):
        assert re.search(rf"^class {name}\(", source, re.MULTILINE), f"{name} is not defined in {row[1]}"
    for url in re.findall(r"`((?:wss?|https?)://[^`{]+)`", row[1]):
        assert f'"{url}"' in source, f"{url} is not a default in {row[1]}"


def test_openai_services_read_openai_base_url_and_groqs_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipecat.services.groq.llm import GroqLLMService
    from pipecat.services.openai.llm import OpenAILLMService
    from pipecat.services.openai.stt import OpenAISTTService
    from pipecat.services.openai.tts import OpenAITTSService

    monkeypatch.setenv("OPENAI_BASE_URL", ENDPOINT)
    for service in (OpenAILLMService, OpenAISTTService, OpenAITTSService):
        assert str(service(api_key="k")._client.base_url).rstrip("/") == ENDPOINT, service
    assert str(GroqLLMService(api_key="k")._client.base_url).startswith("https://api.groq.com/")


@pytest.mark.parametrize(("variable", "service"), [("AWS_ENDPOINT_URL_POLLY", "polly"),
                                                   ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "bedrock-runtime"),
                                                   ("AWS_ENDPOINT_URL", "polly")])
def test_botocore_reads_the_endpoint_variables_the_aws_row_names(
        monkeypatch: pytest.MonkeyPatch, variable: str, service: str) -> None:
    """Pipecat's Bedrock and Polly services create aiobotocore clients with no endpoint_url (aws/llm.py,
    aws/tts.py), so botocore's own resolution is what they get."""
    assert variable in next(row[2] for row in rows() if "Polly" in row[0])
    monkeypatch.setenv(variable, "http://127.0.0.1:9")
    client = botocore.session.get_session().create_client(
        service, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")  # noqa: S106
    assert client.meta.endpoint_url == "http://127.0.0.1:9"


def test_speechmatics_reads_its_variable_in_pipecat_itself() -> None:
    assert 'os.getenv("SPEECHMATICS_RT_URL")' in (SERVICES / "speechmatics" / "stt.py").read_text(encoding="utf-8")


def test_the_gemini_row_says_its_url_is_tls_and_how_a_private_endpoints_certificate_is_trusted() -> None:
    """Gemini Live dials `wss://` with an API key: an `http://` base URL fails with
    `[SSL: WRONG_VERSION_NUMBER]`. The row says so, and names the variable OpenSSL's default
    verification paths read (what Python's default context trusts), passed to the bot by name."""
    import ssl

    (row,) = [row for row in rows() if "GeminiLiveLLMService" in row[0]]
    assert "https://" in row[2] and "WRONG_VERSION_NUMBER" in row[2], row[2]
    assert "`SSL_CERT_FILE`" in row[2] and "`LOCAL_BOT_ENV`" in row[2], row[2]
    assert ssl.get_default_verify_paths().openssl_cafile_env == "SSL_CERT_FILE"


def test_the_common_steps_say_a_client_starts_with_post_start_and_joins_its_private_room_with_the_token() -> None:
    """Clients written for an example's own server post `/connect`; a Daily room is private."""
    steps = PAGE.read_text(encoding="utf-8").split("## The common steps", 1)[1].split("\n## ", 1)[0]
    prose = " ".join(steps.split())
    assert "posts `/connect`" in prose and "`POST /start`" in prose and "`use_start`" in prose, prose
    assert "room is private" in prose and "joins it with that token" in prose, prose
