"""An optional rubric judged by an LLM the team names: any OpenAI-compatible chat completions endpoint.

A scenario's deterministic checks are the default and decide alone unless a `rubric` is written and a
judge given (`voicefleet eval --judge-url … --judge-model …`, the key in VOICEFLEET_JUDGE_API_KEY, never
on the command line). The judge is asked one question per rubric, at temperature 0, and must answer a
JSON object `{"pass": true|false, "reason": "…"}`; anything else, an endpoint that cannot be reached
after bounded retries, or a refusal is a failed check that says so, never a silent pass.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

JUDGE_KEY_VARIABLE = "VOICEFLEET_JUDGE_API_KEY"
JUDGE_URL_VARIABLE = "VOICEFLEET_JUDGE_URL"
JUDGE_MODEL_VARIABLE = "VOICEFLEET_JUDGE_MODEL"
ATTEMPTS = 3
BACKOFF_SECONDS = 0.5
TIMEOUT_SECONDS = 30.0
MAX_REASON = 300
INSTRUCTIONS = (
    "You judge one conversation between a caller and a voice bot against a rubric. Answer with one JSON "
    'object and nothing else: {"pass": true or false, "reason": "one short sentence"}. Judge only what '
    "the rubric asks, from what the bot said; the transcript comes from speech, so ignore spelling."
)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str


@dataclass(frozen=True)
class Judge:
    url: str  # the API's base, e.g. https://api.openai.com/v1 (…/chat/completions is added)
    model: str
    api_key: str | None

    async def verdict(self, http: httpx.AsyncClient, rubric: str, conversation: str) -> Verdict:
        body = {"model": self.model, "temperature": 0, "max_tokens": 200,
                "messages": [{"role": "system", "content": INSTRUCTIONS},
                             {"role": "user", "content": f"Rubric: {rubric}\n\nConversation:\n{conversation}"}]}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        endpoint = f"{self.url.rstrip('/')}/chat/completions"
        problem = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
            try:
                response = await http.post(endpoint, json=body, headers=headers, timeout=TIMEOUT_SECONDS)
            except httpx.TransportError as error:
                problem = f"the judge at {_shown(endpoint)} could not be reached ({type(error).__name__})"
                continue
            if response.status_code == 429 or response.status_code >= 500:
                problem = f"the judge answered HTTP {response.status_code}"
                continue
            if not response.is_success:  # a wrong key, model or body: asking again changes nothing
                return Verdict(False, f"the judge refused the question (HTTP {response.status_code}: "
                                      f"{_error_message(response)})")
            return _read(response)
        return Verdict(False, f"rubric not judged: {problem} after {ATTEMPTS} tries")


def judge_from(url: str | None, model: str | None, environ: Mapping[str, str]) -> Judge | None:
    """The judge named by the options (else VOICEFLEET_JUDGE_URL / _MODEL), its key from the environment;
    None when no judge is named. A URL without a model, or the reverse, is a usage error."""
    url, model = url or environ.get(JUDGE_URL_VARIABLE) or None, model or environ.get(JUDGE_MODEL_VARIABLE) or None
    if url is None and model is None:
        return None
    if url is None or model is None:
        raise ValueError("a judge needs both --judge-url (an OpenAI-compatible API's base, e.g. "
                         "https://api.openai.com/v1) and --judge-model (or VOICEFLEET_JUDGE_URL and _MODEL)")
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"--judge-url {url!r} is not an http(s) URL")
    return Judge(url, model, environ.get(JUDGE_KEY_VARIABLE) or None)


def conversation_text(turns: list[tuple[str, str]]) -> str:
    """The call as the judge reads it: one `caller:` and one `bot:` line per turn."""
    return "\n".join(f"caller: {said}\nbot: {heard or '(nothing)'}" for said, heard in turns)


def _read(response: httpx.Response) -> Verdict:
    try:
        content = response.json()["choices"][0]["message"]["content"]
        found = re.search(r"\{.*\}", str(content), re.DOTALL)
        answer = json.loads(found.group(0)) if found else None
    except (ValueError, KeyError, IndexError, TypeError):
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("pass"), bool):
        return Verdict(False, "the judge's answer was not the JSON object asked for ({\"pass\": …, \"reason\": …})")
    return Verdict(answer["pass"], str(answer.get("reason") or "")[:MAX_REASON])


def _shown(url: str) -> str:
    """The URL as a reason may print it: without a `user:password@` a team may have put in it."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(userinfo=b"")) if parsed.userinfo else url


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except ValueError:
        return response.text[:200]
    return str(error.get("message") if isinstance(error, dict) else error)[:200]
