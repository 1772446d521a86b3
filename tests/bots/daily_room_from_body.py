"""A Daily dial-out bot in pipecat-examples' ivr-navigation shape: it reads its room and token from the
request body (`runner_args.body`), where the client sent neither, so its `DailyTransport` gets None."""

from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.runner.types import RunnerArguments
from pipecat.transports.daily.transport import DailyParams, DailyTransport
from pipecat.workers.runner import WorkerRunner


async def bot(runner_args: RunnerArguments) -> None:
    body = runner_args.body
    transport = DailyTransport(
        body.get("room_url"), body.get("token"), "Simple Dial-out Bot",
        DailyParams(audio_in_enabled=True, audio_out_enabled=True),
    )  # fmt: skip
    worker = PipelineWorker(Pipeline([transport.input(), transport.output()]))
    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint)
    await runner.add_workers(worker)
    await runner.run()


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
