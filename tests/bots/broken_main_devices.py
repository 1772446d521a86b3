"""Broken for the host: a script in pipecat-examples' local-input-select-stt shape, a
`main(input_device, output_device)` for the machine's own sound devices, and no `bot(runner_args)`."""

import asyncio


async def main(input_device: int, output_device: int) -> None:
    await asyncio.sleep(0)


if __name__ == "__main__":
    asyncio.run(main(0, 0))
