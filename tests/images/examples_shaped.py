"""A bot project in the shape of pipecat-examples' bots that offer Daily and WebRTC: `DailyParams`
imported at the top of bot.py, `create_transport` with both keys; the parrot's own locked
dependencies (daily, webrtc, websocket, silero), so its images are sized and installed for real."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DAILY_IMPORT_LINE = 3
BOT = '''from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.transports.daily.transport import DailyParams
from pipecat.transports.base_transport import TransportParams

transport_params = {
    "daily": lambda: DailyParams(audio_in_enabled=True, audio_out_enabled=True),
    "webrtc": lambda: TransportParams(audio_in_enabled=True, audio_out_enabled=True),
}


async def bot(runner_args: RunnerArguments):
    transport = await create_transport(runner_args, transport_params)
'''


def examples_shaped_project(tmp_path: Path) -> Path:
    folder = tmp_path / "daily-and-webrtc"
    folder.mkdir(parents=True)
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / "examples" / "parrot" / name, folder / name)
    (folder / "bot.py").write_text(BOT, encoding="utf-8")
    return folder
