"""Release code in the area: each release's function code copied to ``releases/<release>/``.

Running from a copy rather than from the app directory is what makes updates safe: the old
process keeps its code while the new one starts from the new copy, an edit in progress never
reaches a running function half-written, and the agent's rollback has the previous release on
disk. Only the functions' code directories are copied, without caches, VCS metadata or the area
itself (``alien dev`` keeps its area inside the app directory). A symlink that leads outside the
function's code directory is refused: the area must not depend on anything outside it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from alien.errors import PlatformError
from alien.platforms.local.area import Area
from alien.stack.spec import FunctionSpec

COMPLETE_MARKER = ".alien-release-complete"
SKIP_NAMES = frozenset({"__pycache__", ".git", ".hg", ".svn", ".venv", ".alien", ".mypy_cache"})
SKIP_SUFFIXES = (".pyc", ".pyo")


def _ignore_for(source_root: Path, area: Area) -> Callable[[str, list[str]], set[str]]:
    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped: set[str] = set()
        for name in names:
            path = Path(directory, name)
            if name in SKIP_NAMES or name.endswith(SKIP_SUFFIXES):
                skipped.add(name)
                continue
            resolved = path.resolve()
            if resolved == area.root or resolved.is_relative_to(area.root):
                skipped.add(name)
            elif path.is_symlink() and not resolved.is_relative_to(source_root):
                raise PlatformError(
                    f"{path} is a symlink leading outside the code directory {source_root}; "
                    "copy the file in instead",
                    field="code.src",
                )
        return skipped

    return ignore


def stage(area: Area, release: str, app_dir: Path, functions: Iterable[FunctionSpec]) -> Path:
    """Copy the functions' code of ``release`` into the area; return the release directory.

    Idempotent: a release staged completely before is reused as is (the agent may apply the same
    release again after a restart); a half-staged one (crash mid-copy) is staged again.
    """
    target = area.release_dir(release)
    if (target / COMPLETE_MARKER).exists():
        return target
    if target.exists():
        area.remove(target)
    app_root = Path(app_dir).resolve()
    try:
        target.mkdir(parents=True, mode=0o700)
        for src in sorted({fn.config.code.src for fn in functions}):
            source = (app_root / src).resolve()
            if not source.is_relative_to(app_root) or not source.is_dir():
                raise PlatformError(
                    f"code directory {src!r} is not a directory inside {app_root}", field="code.src"
                )
            destination = area.inside("releases", release, src)
            shutil.copytree(
                source,
                destination,
                ignore=_ignore_for(source, area),
                dirs_exist_ok=True,  # "." next to "api": copying a parent after a child
            )
        (target / COMPLETE_MARKER).touch()
    except PlatformError:
        area.remove(target)
        raise
    except OSError as exc:
        area.remove(target)
        raise PlatformError(f"cannot stage release {release}: {exc}", field="release") from exc
    return target


def code_dir(area: Area, release: str, fn: FunctionSpec) -> Path:
    """Where function ``fn`` runs from in ``release``."""
    return area.inside("releases", release, fn.config.code.src)


def prune(area: Area, keep: Iterable[str]) -> None:
    """Delete staged releases except ``keep`` (current, previous, anything still running)."""
    kept = set(keep)
    if not area.releases_dir.is_dir():
        return
    for entry in os.scandir(area.releases_dir):
        if entry.name not in kept:
            area.remove(Path(entry.path))
