"""A local bot's stderr line read for its level: loguru's text and JSON lines, and the lines between."""

from __future__ import annotations

import json
import logging

from dispatcher.machines.local.bot_lines import BotLineReader


def test_a_text_line_gives_its_level_and_the_lines_after_it_keep_it():
    reader = BotLineReader()
    assert reader.read("2026-11-25 10:22:39.705 | ERROR    | session s | bot:run:3 - boom").level == logging.ERROR
    assert reader.read('  File "bot.py", line 3, in bot').level == logging.ERROR  # the traceback goes on
    assert reader.read("2026-11-25 10:22:40.001 | SUCCESS  | user_bot:x:1 - ok").level == logging.INFO
    assert reader.read("2026-11-25 10:22:40.002 | TRACE    | user_bot:x:1 - t").level == logging.DEBUG
    assert reader.read("printed by the bot").level == logging.DEBUG  # a print takes the level before it


def test_a_bare_python_traceback_is_an_error():
    reader = BotLineReader()
    assert reader.read("some text").level == logging.INFO
    assert reader.read("Traceback (most recent call last):").level == logging.ERROR
    assert reader.read("RuntimeError: boom").level == logging.ERROR
    assert BotLineReader().read("python -m bot: error: bot.py: importing it failed: X").level == logging.ERROR


def test_a_json_line_gives_its_level_message_machine_and_traceback():
    line = BotLineReader().read(json.dumps({"level": "warning", "message": "slow", "machine_id": "m-1",
                                            "exception": "Traceback ..."}))
    assert (line.level, line.message, line.machine_id, line.exception) == (
        logging.WARNING, "slow", "m-1", "Traceback ...")


def test_a_line_that_only_looks_like_json_is_text():
    reader = BotLineReader()
    for text in ("{not json", '{"level": "error"}', "[1, 2]", '{"message": 3}'):
        line = reader.read(text)
        assert (line.level, line.message, line.machine_id) == (logging.INFO, text, None)
