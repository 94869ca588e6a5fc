"""Checks of a stack against the app directory on disk: every function's code directory exists
and stays inside the app directory.

``alien.stack.rules`` already refuses absolute paths and ``..``; this catches what only the
filesystem knows: a missing directory, a file where a directory should be, and a symlink that
leads out of the app directory (which would ship or run code from elsewhere on the machine).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from alien.stack.problems import Problem
from alien.stack.spec import FunctionSpec, ResourceSpec


def code_dir(app_dir: Path, fn: FunctionSpec) -> Path:
    """Where a function's code lives on disk, for platforms that run from the app directory."""
    return app_dir / fn.config.code.src


def _problem(app_dir: Path, fn: FunctionSpec) -> str | None:
    root = app_dir.resolve()
    src = fn.config.code.src
    target = code_dir(app_dir, fn).resolve()
    if not target.is_relative_to(root):
        return f"code directory {src!r} leads outside the app directory {root} (via a symlink)"
    if not target.exists():
        return (
            f"code directory {src!r} does not exist in {root}: create it or point code.src at "
            "the directory holding the function's code"
        )
    if not target.is_dir():
        return f"code src {src!r} in {root} is a file: point code.src at a directory"
    return None


def code_dir_problems(parsed: Sequence[tuple[str, ResourceSpec]], app_dir: Path) -> list[Problem]:
    problems = []
    for prefix, spec in parsed:
        if isinstance(spec, FunctionSpec) and (message := _problem(app_dir, spec)):
            problems.append(Problem(f"{prefix}.code.src", message))
    return problems
