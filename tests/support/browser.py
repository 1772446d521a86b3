"""Headless Debian Chromium driven over the DevTools protocol, with a WAV as its microphone.

No node and no browser download: the system `chromium`, plain flags, and CDP over the
`websockets` package (docs/reference/local_e2e.md §4).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import time
import wave
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import numpy as np
import websockets

from tests.support.audio import read_wav

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--window-size=900,760",
    "--remote-debugging-port=0",
)  # fmt: skip


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def node_chromium_missing(web: Path) -> str | None:
    """Why web/'s node scripts cannot drive Chromium here (playwright-core), or None when they can."""
    if chromium_path() is None:
        return "Debian's chromium is not installed (.ci/run installs it)"
    if shutil.which("node") is None or not (web / "node_modules" / "playwright-core").is_dir():
        return "the npm packages are not installed (`npm ci --prefix web`; .ci/run does it)"
    return None


class Browser:
    """`async with Browser(url, mic_wav, profile_dir) as page: await page.evaluate("1 + 1")`."""

    def __init__(self, url: str, mic_wav: Path, profile_dir: Path, extra_flags: tuple[str, ...] = ()) -> None:
        self.url, self.mic_wav, self.profile_dir = url, mic_wav, profile_dir
        self.extra_flags = extra_flags  # e.g. --unsafely-treat-insecure-origin-as-secure=<a non-loopback http origin>
        self.requests: list[str] = []  # every URL the page asked for
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Browser:
        binary = chromium_path()
        if binary is None:
            raise RuntimeError("chromium is not installed")
        self._process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, *self.extra_flags, f"--use-file-for-fake-audio-capture={self.mic_wav}",
             f"--user-data-dir={self.profile_dir}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,  # dbus/ALSA noise, harmless here
        )  # fmt: skip
        try:
            port = await self._devtools_port()
            async with httpx.AsyncClient() as http:
                targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
            page = next(t for t in targets if t["type"] == "page")
            self._socket = await websockets.connect(page["webSocketDebuggerUrl"], max_size=None)
            self._reader = asyncio.create_task(self._read())
            await self.send("Network.enable")
            await self.send("Page.enable")
            await self.send("Page.navigate", url=self.url)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._reader:
            self._reader.cancel()
        if self._socket:
            await self._socket.close()
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    async def _devtools_port(self, timeout: float = 20.0) -> int:
        marker = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not marker.exists() or not marker.read_text().strip():
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not open its DevTools port")
            await asyncio.sleep(0.05)
        return int(marker.read_text().split()[0])

    async def _read(self) -> None:
        async for raw in self._socket:
            message = json.loads(raw)
            if "id" in message and message["id"] in self._pending:
                self._pending.pop(message["id"]).set_result(message)
            elif message.get("method") == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        await self._socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, 15)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                return value
            await asyncio.sleep(0.1)

    async def screenshot(self, path: Path) -> None:
        data = (await self.send("Page.captureScreenshot", format="png"))["data"]
        path.write_bytes(base64.b64decode(data))


def browser_mic(speech_wav: Path, path: Path) -> Path:
    """Chrome's fake mic wants 48 kHz: 1.5 s of silence, the speech, 3 s of silence."""
    speech = read_wav(speech_wav)
    upsampled = np.interp(
        np.arange(len(speech.samples) * 3) / 3, np.arange(len(speech.samples)), speech.samples
    ).astype(np.int16)
    silence = np.zeros(48_000 // 2 * 3, dtype=np.int16)
    samples = np.concatenate([silence, upsampled, silence, silence])
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48_000)
        out.writeframes(samples.tobytes())
    return path
