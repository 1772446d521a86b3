"""A small Dockerfile parser: just enough structure for the image tests and bench/image_size.py.

There is no Docker engine where the tests run, so the images are proven by reading their
Dockerfiles. This handles what our Dockerfiles use: parser directives, comments, backslash line
continuations, global ARGs, named stages, leading `--flag=value` options (RUN --mount, COPY --from),
and the JSON (exec) form of ENTRYPOINT/CMD. Heredocs are not supported, so the Dockerfiles avoid them.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_FLAG = re.compile(r"--([a-z-]+)(?:=(\S+))?\s*")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper-case: RUN, COPY, ...
    args: str  # everything after the keyword and its leading --flags, continuations joined
    flags: tuple[tuple[str, str], ...]  # in order; RUN may repeat --mount
    line: int  # 1-based line where the instruction starts

    def flag(self, name: str) -> str | None:
        return next((value for key, value in self.flags if key == name), None)

    def flag_values(self, name: str) -> list[str]:
        return [value for key, value in self.flags if key == name]

    def exec_form(self) -> list[str]:
        """ENTRYPOINT/CMD as a list; the shell form is refused (signals would go to /bin/sh)."""
        value = json.loads(self.args)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"line {self.line}: {self.keyword} is not in exec (JSON) form")
        return value

    def pairs(self) -> dict[str, str]:
        """KEY=VALUE pairs of ENV/LABEL/ARG (quotes honoured); an ARG without default maps to ''."""
        result: dict[str, str] = {}
        for token in shlex.split(self.args):
            key, _, value = token.partition("=")
            result[key] = value
        return result


@dataclass
class Stage:
    base: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword.upper()]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for instruction in self.all("ENV"):
            merged.update(instruction.pairs())
        return merged

    def labels(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for instruction in self.all("LABEL"):
            merged.update(instruction.pairs())
        return merged

    def run_text(self) -> str:
        return "\n".join(i.args for i in self.all("RUN"))


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage named {name!r}; stages: {[s.name for s in self.stages]}")

    def effective(self, name: str | None) -> Stage:
        """A stage as the builder sees it: a stage built `FROM` another stage of this file
        inherits that stage's instructions (and its base image)."""
        stage = self.stages[-1] if name is None else self.stage(name)
        names = {s.name for s in self.stages}
        if stage.base not in names:
            return stage
        parent = self.effective(stage.base)
        return Stage(base=parent.base, name=stage.name, line=stage.line,
                     instructions=[*parent.instructions, *stage.instructions])

    @property
    def final(self) -> Stage:
        """The default target (the last stage), with what it inherits from earlier stages."""
        return self.effective(self.stages[-1].name)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join continuations; drop comments and blank lines (also inside a continuation, as Docker does)."""
    lines: list[tuple[int, str]] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buffer):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        lines.append((start, " ".join(part for part in buffer if part)))
        buffer = []
    if buffer:
        raise ValueError(f"line {start}: continuation runs past the end of the file")
    return lines


def parse(text: str) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line, logical in _logical_lines(text):
        keyword, _, rest = logical.partition(" ")
        keyword = keyword.upper()
        flags: list[tuple[str, str]] = []
        while keyword in {"RUN", "COPY", "ADD", "FROM"} and (match := _FLAG.match(rest)):
            flags.append((match.group(1), match.group(2) or ""))
            rest = rest[match.end() :]
        if keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name, line=line))
            continue
        instruction = Instruction(keyword, rest.strip(), tuple(flags), line)
        if not stages:
            if keyword != "ARG":
                raise ValueError(f"line {line}: only ARG may come before the first FROM, got {keyword}")
            global_args.update(instruction.pairs())
            continue
        stages[-1].instructions.append(instruction)
    if not stages:
        raise ValueError("no FROM instruction")
    return Dockerfile(global_args, stages)


def parse_file(path: Path) -> Dockerfile:
    return parse(path.read_text())


def shell_commands(run: Instruction) -> list[list[str]]:
    """A RUN's shell form split on `&&` into argv lists (our RUNs use no pipes, `;` or subshells)."""
    return [shlex.split(part) for part in run.args.split("&&") if part.strip()]
