"""The parser the image tests stand on: if it misreads, every structural assertion is meaningless."""

from __future__ import annotations

import pytest

from tests.images.dockerfile import parse, shell_commands

SAMPLE = """\
# syntax=docker/dockerfile:1.7
ARG BASE=python:3.11-slim
FROM ${BASE} AS build
# a comment
RUN --mount=type=cache,target=/root/.cache/uv \\
    --mount=type=bind,source=uv.lock,target=uv.lock \\
    # a comment inside a continuation is dropped, as Docker does
    uv sync --frozen && \\
    echo done
FROM ${BASE}
COPY --from=build --chown=1:1 /opt/venv /opt/venv
ENV A=1 \\
    B="two words"
USER 10001
ENTRYPOINT ["tini", "--", "python"]
"""


def test_parser_splits_stages_and_keeps_global_args() -> None:
    parsed = parse(SAMPLE)
    assert parsed.global_args == {"BASE": "python:3.11-slim"}
    assert [(s.name, s.base) for s in parsed.stages] == [("build", "${BASE}"), (None, "${BASE}")]


def test_parser_joins_continuations_and_drops_comments_inside_them() -> None:
    run = parse(SAMPLE).stage("build").all("RUN")[0]
    assert run.args == "uv sync --frozen && echo done"
    assert run.flag_values("mount") == ["type=cache,target=/root/.cache/uv", "type=bind,source=uv.lock,target=uv.lock"]
    assert shell_commands(run) == [["uv", "sync", "--frozen"], ["echo", "done"]]


def test_parser_reads_copy_flags_env_pairs_user_and_exec_entrypoint() -> None:
    final = parse(SAMPLE).final
    copy = final.all("COPY")[0]
    assert (copy.flag("from"), copy.flag("chown"), copy.args) == ("build", "1:1", "/opt/venv /opt/venv")
    assert final.env() == {"A": "1", "B": "two words"}
    assert final.last("USER") is not None and final.last("USER").args == "10001"  # type: ignore[union-attr]
    assert final.last("ENTRYPOINT").exec_form() == ["tini", "--", "python"]  # type: ignore[union-attr]


def test_parser_refuses_a_shell_form_entrypoint() -> None:
    parsed = parse("FROM scratch\nENTRYPOINT python -m bot\n")
    with pytest.raises(ValueError):
        parsed.final.all("ENTRYPOINT")[0].exec_form()


def test_parser_refuses_a_dangling_continuation() -> None:
    with pytest.raises(ValueError):
        parse("FROM scratch\nRUN echo \\\n")
