"""Broken: `bot()` asks the terminal for a value, as a script run by hand does (a bot has no terminal)."""

from pipecat.runner.types import RunnerArguments


async def bot(runner_args: RunnerArguments) -> None:
    url = input("Enter the URL of the article you would like to talk about: ")
    print(url)


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
