"""Loading a stack from an app's ``alien_stack.py``.

The file is ordinary Python run with the app directory first on ``sys.path`` (so it can import
helpers next to it). It must define one ``Stack``; a variable named ``stack`` wins. Anything that
goes wrong inside the author's code (syntax errors, failed imports, exceptions) becomes a
``StackError`` whose message names the file and line, so the CLI prints one line, not a traceback.
Modules the file imported from the app directory are dropped from ``sys.modules`` afterwards, so a
long-running process (``alien dev``) that loads the stack again sees edited helpers.
"""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alien.errors import AlienError, StackError
from alien.stack.spec import Manifest
from alien.stack.stack import Stack

STACK_FILE = "alien_stack.py"
#: The variable ``load_stack`` looks for first.
STACK_VARIABLE = "stack"


@dataclass(frozen=True)
class LoadedStack:
    stack: Stack
    #: The directory holding the stack file; code ``src`` paths are relative to it.
    app_dir: Path
    file: Path

    def manifest(self) -> Manifest:
        """The validated manifest, including the checks that need the app directory."""
        return self.stack.validate(self.app_dir)


def find_stack_file(path: Path | None = None) -> Path:
    """``path`` may be a stack file, a directory holding ``alien_stack.py``, or None (cwd)."""
    target = Path.cwd() if path is None else Path(path)
    file = target / STACK_FILE if target.is_dir() else target
    if not file.is_file():
        raise StackError(
            f"no {STACK_FILE} in {target}: run from the app directory or pass --path",
            field="path",
        )
    return file.resolve()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _located(what: str, file: Path, line: int | None) -> StackError:
    """An error in the author's code: ``file:line: what`` on one line, and both in details."""
    where = f"{file}:{line}" if line else str(file)
    return StackError(f"{where}: {_one_line(what)}", details={"file": str(file), "line": line})


def _user_error(exc: BaseException, file: Path, app_dir: Path) -> StackError:
    """Describe an exception raised by the author's code at the innermost line of their code."""
    if isinstance(exc, SyntaxError):
        where = Path(exc.filename) if exc.filename else file
        return _located(f"syntax error: {exc.msg}", where, exc.lineno)
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if _found_via(f.filename, app_dir)]
    frame = user[-1] if user else None
    if isinstance(exc, SystemExit):
        what = f"exited (SystemExit {exc.code!r}) while loading"
    elif isinstance(exc, AlienError):
        what = exc.message
    else:
        what = f"{type(exc).__name__}: {exc}"
    if frame is None:
        return _located(what, file, None)
    return _located(what, Path(frame.filename), frame.lineno)


def _found_via(origin: str | None, app_dir: Path) -> bool:
    """Whether a module file was imported through ``app_dir`` itself (not, say, through a
    virtualenv's site-packages that happens to live inside the app directory)."""
    if not origin:
        return False
    where = Path(os.path.realpath(origin))
    roots = {Path(os.path.realpath(p)) for p in sys.path if p} | {app_dir}
    closest = max(
        (r for r in roots if where.is_relative_to(r)), key=lambda r: len(r.parts), default=None
    )
    return closest == app_dir


def _run(file: Path, app_dir: Path) -> dict[str, Any]:
    before = set(sys.modules)
    sys.path.insert(0, str(app_dir))
    try:
        return runpy.run_path(str(file), run_name="__alien_stack__")
    except (Exception, SystemExit) as exc:
        raise _user_error(exc, file, app_dir) from None
    finally:
        sys.path.remove(str(app_dir))
        for name in set(sys.modules) - before:
            if _found_via(getattr(sys.modules[name], "__file__", None), app_dir):
                del sys.modules[name]


def _pick(namespace: dict[str, Any], file: Path) -> Stack:
    named = namespace.get(STACK_VARIABLE)
    if named is not None:
        if isinstance(named, Stack):
            return named
        raise StackError(
            f"{file}: `{STACK_VARIABLE}` is a {type(named).__name__}, not an alien.Stack",
            field=str(file),
        )
    found: dict[int, tuple[str, Stack]] = {}
    for name, value in namespace.items():
        if isinstance(value, Stack):
            found.setdefault(id(value), (name, value))
    if len(found) == 1:
        return next(iter(found.values()))[1]
    if not found:
        raise StackError(
            f'{file} defines no Stack: add `stack = alien.Stack("my-app")` and add resources',
            field=str(file),
        )
    names = ", ".join(sorted(name for name, _ in found.values()))
    raise StackError(
        f"{file} defines {len(found)} stacks ({names}): name the one to use `{STACK_VARIABLE}`",
        field=str(file),
    )


def load_stack(path: Path | None = None) -> LoadedStack:
    """Run ``alien_stack.py`` (from ``path``: a file or a directory; default the cwd)."""
    file = find_stack_file(path)
    app_dir = file.parent
    stack = _pick(_run(file, app_dir), file)
    return LoadedStack(stack=stack, app_dir=app_dir, file=file)
