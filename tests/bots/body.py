"""Body: reads `runner_args.body` (the client's data) and `session_id`, and greets.

When the body names a file (`{"record_to": path}`) the bot writes what it was given there, as
JSON, so a test can see exactly what reached it.
"""

import json
from pathlib import Path

from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from testbot_kit import Echo, run_pipeline, tone, transport_params


async def bot(runner_args: RunnerArguments) -> None:
    body = runner_args.body or {}
    if "record_to" in body:
        seen = {"body": body, "session_id": runner_args.session_id, "kind": type(runner_args).__name__}
        Path(body["record_to"]).write_text(json.dumps(seen))
    transport = await create_transport(runner_args, transport_params)
    await run_pipeline(transport, runner_args, [Echo()], greeting=tone())


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
