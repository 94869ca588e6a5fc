"""The app the agent-commands suite deploys: the pages example plus commands made for testing.

The pages example's own commands (``page-stats``, ``generate-report``) are what an operator runs;
the ones added here let tests observe what happened inside the function process — which
attempt ran, that the handler saw its cancellation — through marker files whose paths the test
passes as params (the function runs as the same user, on the same machine).
"""

from __future__ import annotations

import shutil
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pages"

TEST_COMMANDS = '''\
"""Commands for the agent_commands tests (imported by app.py)."""

import asyncio
import hashlib
import json
import os

import alien


def _note(path, line):
    if path:
        with open(path, "a") as fh:
            fh.write(line + "\\n")


@alien.command("echo")
def echo(ctx: alien.CommandContext, **params):
    return {
        "params": params, "attempt": ctx.attempt, "command_id": ctx.command_id, "pid": os.getpid()
    }


@alien.command("noop")
async def noop():
    return None


@alien.command("fail")
def fail(reason: str = "asked to fail"):
    raise ValueError(reason)


@alien.command("wait-cancel")
def wait_cancel(ctx: alien.CommandContext, journal: str):
    """Runs until told to stop; writes down what it was told."""
    _note(journal, f"started {ctx.command_id} {ctx.attempt}")
    ctx.wait_cancelled_blocking(timeout=120)
    _note(journal, f"cancelled={ctx.cancelled} {ctx.cancel_code}")
    ctx.raise_if_cancelled()


@alien.command("slow")
def slow(ctx: alien.CommandContext, seconds: float, journal: str = ""):
    """Works for ``seconds`` (unless stopped); journals each attempt's start and end."""
    _note(journal, f"started {ctx.command_id} {ctx.attempt}")
    if ctx.wait_cancelled_blocking(timeout=seconds):
        _note(journal, f"stopped {ctx.command_id} {ctx.attempt} {ctx.cancel_code}")
        ctx.raise_if_cancelled()
    _note(journal, f"finished {ctx.command_id} {ctx.attempt}")
    return {"attempt": ctx.attempt, "slept": seconds}


@alien.command("sequence")
async def sequence(ctx: alien.CommandContext, n: int, seconds: float = 0.0, journal: str = ""):
    """Answers ``n`` after ``seconds``; journals each run when asked to."""
    if seconds:
        await asyncio.sleep(seconds)
    _note(journal, f"ran {ctx.command_id} {ctx.attempt} {n}")
    return {"n": n}


@alien.command("digest")
def digest(**params):
    """Size and sha256 of the params as compact JSON (to check large params arrived whole)."""
    text = json.dumps(params, separators=(",", ":"), ensure_ascii=False).encode()
    return {"size": len(text), "sha256": hashlib.sha256(text).hexdigest()}


@alien.command("big-result")
def big_result(size: int):
    """A string of ``size`` characters: a result far over the inline limit."""
    return "r" * size
'''


def write_command_app(root: Path) -> Path:
    """Copy the pages example into ``root`` and add the test commands; return ``root``."""
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".alien", "__pycache__"))
    (root / "api" / "test_commands.py").write_text(TEST_COMMANDS)
    app = root / "api" / "app.py"
    app.write_text(app.read_text() + "\nimport test_commands  # noqa: E402, F401\n")
    return root


PAGES_COMMANDS = ["generate-report", "page-stats"]
TEST_COMMAND_NAMES = [
    "big-result", "digest", "echo", "fail", "noop", "sequence", "slow", "wait-cancel",
]  # fmt: skip
ALL_COMMANDS = sorted(PAGES_COMMANDS + TEST_COMMAND_NAMES)
