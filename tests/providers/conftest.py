"""Fixtures for provider tests: the fakes of every external API (see tests/fakes/)."""

from tests.fakes.fixtures import *  # noqa: F403
