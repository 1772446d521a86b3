"""The command's failures and the exit codes scripts rely on: 0 done, 1 the dispatcher refused,
2 the command line was wrong (click's own usage errors), 3 the dispatcher could not be reached.
Each says what to do next; none repeats the admin key."""

from __future__ import annotations

from typing import IO, Any

import click

from voicefleet.tables import printable_lines

REFUSED = 1
USAGE = 2  # click.UsageError's own code
UNREACHABLE = 3


class Refused(click.ClickException):
    """The dispatcher answered and said no: its `error.code` and `message`, and the way forward."""

    exit_code = REFUSED

    def __init__(self, status: int, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.hint = hint

    def format_message(self) -> str:
        text = f"{self.code} (HTTP {self.status}): {self.message}"
        return f"{text}\n{self.hint}" if self.hint else text

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(printable_lines(f"voicefleet: {self.format_message()}"), file=file, err=file is None)


class Unreachable(click.ClickException):
    """No answer: nothing to say about the change but where the command looked and how to point it."""

    exit_code = UNREACHABLE

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(printable_lines(f"voicefleet: {self.format_message()}"), file=file, err=file is None)


class UsageLine(click.ClickException):
    """A usage error in one line, exit 2 (click's own UsageError adds the usage block): what was given,
    and what to do instead. Raised before anything is sent."""

    exit_code = USAGE

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(printable_lines(f"voicefleet: {self.format_message()}"), file=file, err=file is None)


class Failed(click.ClickException):
    """Something the command itself found wrong after the dispatcher answered (a download cut short,
    a size that is not the listing's), exit 1 as a refusal: one line, what to do next."""

    exit_code = REFUSED

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(printable_lines(f"voicefleet: {self.format_message()}"), file=file, err=file is None)
