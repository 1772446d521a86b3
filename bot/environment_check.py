"""An isolated bot refuses to start with variables that would run code other than its own.

The images run the host as `python -I -u -B -m bot` (images/bot.Dockerfile): Python ignores every
PYTHON* variable and the user site. But the environment is whoever set the task's: on Cloud Run,
anyone with `run.jobs.runWithOverrides` sets a run's env. Some variables act whatever Python's
flags: `BROWSER` is a command `webbrowser` runs, `LD_PRELOAD`/`LD_AUDIT`/`LD_LIBRARY_PATH` load
libraries into every process the bot starts, and each PYTHON* one acts again in any Python the bot
starts. None has a use in a bot's task, so the host does not run on with one set: one line, exit 2.
(The dynamic loader reads LD_* before Python starts: refusing stops the bot, the dispatcher never
sending them and the grant on overrides are what keep them out, docs/security.md.)

Only when isolated: a developer's `python -m bot` and MACHINES=local's bots (not isolated) put
the repository on PYTHONPATH on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping

INJECTING = (
    "PYTHONSTARTUP", "PYTHONPATH", "PYTHONHOME", "PYTHONINSPECT", "PYTHONUSERBASE", "PYTHONWARNINGS",
    "PYTHONBREAKPOINT", "PYTHONPLATLIBDIR", "BROWSER",
    "LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH",
)


def refusal(environ: Mapping[str, str], *, isolated: bool) -> str | None:
    """Why an isolated host must not start in `environ`, or None."""
    found = [name for name in INJECTING if environ.get(name)]
    if not isolated or not found:
        return None
    return (f"bot: refusing to start: {', '.join(found)} set, which would run code that is not the bot's "
            "(a task's environment is whoever ran it; unset them)")
