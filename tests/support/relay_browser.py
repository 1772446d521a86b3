"""Headless Chromium with Pipecat's official client (the dispatcher's page), run inside the
client namespace: `ip netns exec <ns> python -m tests.support.relay_browser`.

Reads {"url": dispatcher base URL, "key": API key, "speech": wav, "workdir": dir} on stdin. Opens
the page (an http origin that is not loopback, so it is declared secure for getUserMedia), enters
the key, connects (`startBotAndConnect` → `/start` → the offer through the dispatcher), lets the
fake microphone speak and prints {"connected", "heard", "turn", "state"}. Chromium's DevTools
port lives in this namespace, so the driver has to as well. Every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tests.support.browser import Browser, browser_mic


async def session(request: dict[str, Any]) -> dict[str, Any]:
    workdir = Path(request["workdir"])
    mic = browser_mic(Path(request["speech"]), workdir / "mic48k.wav")
    flags = (f"--unsafely-treat-insecure-origin-as-secure={request['url']}",)
    async with Browser(request["url"] + "/", mic, workdir / "profile", extra_flags=flags) as page:
        await page.wait_for("document.readyState === 'complete' && !!window.voicefleet", 20)
        await page.evaluate(f"document.getElementById('api-key').value = {json.dumps(request['key'])}")
        await page.evaluate("document.getElementById('connect').click()")
        connected = await page.wait_for("window.voicefleet.status === 'connected'", 45)
        heard = await page.wait_for("window.voicefleet.botAudioStartedAt !== null", 30)
        turn = await page.wait_for("window.voicefleet.events.includes('user-stopped-speaking')", 40)
        state = json.loads(await page.evaluate("JSON.stringify(window.voicefleet)"))
        await page.evaluate("document.getElementById('hangup').click()")
        await page.wait_for("window.voicefleet.status === 'ended'", 10)
    return {"connected": bool(connected), "heard": bool(heard), "turn": bool(turn), "state": state}


def main() -> int:
    request = json.loads(sys.stdin.readline())
    print(json.dumps({"result": asyncio.run(asyncio.wait_for(session(request), 150))}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
