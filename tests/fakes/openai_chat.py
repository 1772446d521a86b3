"""OpenAI's chat completions with `stream: true` (`POST /v1/chat/completions`), as the OpenAI SDK
(and Pipecat's OpenAILLMService) calls it.

Wire contract (platform.openai.com/docs/api-reference/chat-streaming): `Authorization: Bearer
<key>`; a JSON body with `model` and `messages`; the answer is `text/event-stream` of `data:
<chat.completion.chunk JSON>` events (the first delta carries `role`, then `content` pieces, the
last choice a `finish_reason`; with `stream_options.include_usage` one more chunk with empty
`choices` and `usage`), closed by `data: [DONE]`. Errors are `{"error": {message, type, param, code}}`.

Without `stream` the answer is one `chat.completion` object (its `choices[0].message.content`). The
reply echoes the latest user message (`reply_prefix` + its text), so a test can see the user's
transcript reached the model and the model's words reached the user; `answer`, when given, writes
the reply from the messages instead (a judge's verdict, say).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.server import FakeApi


def openai_error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": None}}, status)


class FakeOpenAIChat(FakeApi):
    error_body = staticmethod(lambda status: {"error": {"message": f"injected {status}", "type": "server_error"}})

    def __init__(self, api_key: str, reply_prefix: str = "You asked: ",
                 answer: Callable[[list[dict[str, Any]]], str] | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.reply_prefix = reply_prefix
        self.answer = answer
        self.replies: list[str] = []

    def routes(self) -> list[Route]:
        return [Route("/v1/chat/completions", self._completions, methods=["POST"])]

    async def _completions(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return openai_error(401, "Incorrect API key provided.", "invalid_api_key")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return openai_error(400, "We could not parse the JSON body of your request.")
        problem = _request_problem(body)
        if problem:
            return openai_error(400, problem)
        users = [m for m in body["messages"] if m.get("role") == "user"]
        heard = _text(users[-1]["content"]) if users else ""
        reply = self.answer(body["messages"]) if self.answer is not None else f"{self.reply_prefix}{heard}."
        self.replies.append(reply)
        if body.get("stream") is not True:
            return JSONResponse(_completion(body["model"], reply))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(_events(body["model"], reply, include_usage), media_type="text/event-stream")


def _request_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "The body must be a JSON object."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in (
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
        ):
            return f"invalid message {message!r}"
    if not isinstance(body.get("stream", False), bool):
        return f"{body['stream']!r} is not of type 'boolean' - 'stream'"
    return None


def _completion(model: str, reply: str) -> dict[str, Any]:
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": len(reply.split()),
                      "total_tokens": 20 + len(reply.split())}}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


async def _events(model: str, reply: str, include_usage: bool) -> AsyncIterator[bytes]:
    ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        body = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model}
        body.update(choices=choices, **extra)
        return f"data: {json.dumps(body)}\n\n".encode()

    yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    words = reply.split(" ")
    for i, word in enumerate(words):
        piece = word if i == 0 else f" {word}"
        yield chunk([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
    yield chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    if include_usage:
        usage = {"prompt_tokens": 20, "completion_tokens": len(words), "total_tokens": 20 + len(words)}
        yield chunk([], usage=usage)
    yield b"data: [DONE]\n\n"
