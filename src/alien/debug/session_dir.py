"""A private temporary directory for one debug session's credential and config files.

The session's dummy keys, token, kubeconfig and TLS key are written here, never into the user's
own ``~/.aws`` or ``~/.kube``. The directory is 0700 and every file 0600; it is removed when the
session ends, fails, or is interrupted (SIGINT raises ``KeyboardInterrupt``; SIGTERM is turned into
``SystemExit`` while the session is open, if nobody else handles it). A CLI killed outright
(SIGKILL, power loss) cannot clean up, so each directory records its owner's pid and start time,
and the next run sweeps directories whose owner is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from alien.errors import Forbidden, ValidationError

OWNER_FILE = ".owner.json"
DIR_PREFIX = "dbg-"
_FILE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# A directory without a readable owner file is only swept once this old (it may be being created).
_ORPHAN_GRACE_SECONDS = 300


def default_root() -> Path:
    """``$XDG_RUNTIME_DIR/alien-debug`` (per-user, tmpfs) or ``<tmp>/alien-debug-<uid>``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "alien-debug"
    return Path(tempfile.gettempdir()) / f"alien-debug-{os.getuid()}"


def ensure_private_root(root: Path) -> Path:
    """Create ``root`` 0700, or check that an existing one is ours, a real directory and private.

    A shared temp directory lets anyone pre-create our path; we refuse to use one we do not own.
    """
    with contextlib.suppress(FileExistsError):
        os.mkdir(root, 0o700)
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode):
        raise Forbidden(f"{root} is not a directory (a symlink?)", field="root")
    if info.st_uid != os.getuid():
        raise Forbidden(f"{root} belongs to another user", field="root")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(root, 0o700)
    return root


def _process_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing paren.
    fields = stat_line.rpartition(")")[2].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, start_ticks: int | None) -> bool:
    """True if ``pid`` runs and, where we can tell, is the same process that wrote the record."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start_ticks is None:
        return True
    current = _process_start_ticks(pid)
    return current is None or current == start_ticks


def _owner_record() -> dict[str, Any]:
    pid = os.getpid()
    return {"pid": pid, "start_ticks": _process_start_ticks(pid), "created": time.time()}


def _is_stale(path: Path) -> bool:
    try:
        owner = json.loads((path / OWNER_FILE).read_text())
        pid, start = int(owner["pid"]), owner.get("start_ticks")
    except (OSError, ValueError, KeyError, TypeError):
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return False
        return age > _ORPHAN_GRACE_SECONDS
    return not process_alive(pid, start if isinstance(start, int) else None)


def sweep_stale(root: Path | None = None) -> list[Path]:
    """Remove session directories under ``root`` whose owning process is gone; return them."""
    root = root or default_root()
    if not root.is_dir():
        return []
    removed = []
    for entry in root.iterdir():
        ours = entry.name.startswith(DIR_PREFIX) and entry.is_dir() and not entry.is_symlink()
        if ours and _is_stale(entry):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


class SessionDir:
    """One session's private directory. Use as a context manager::

    with SessionDir.create("dbg_123") as files:
        creds = files.write_text("credentials", "...")
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._closed = False
        self._previous_sigterm: Any = None

    @classmethod
    def create(cls, session_id: str, *, root: Path | None = None, sweep: bool = True) -> SessionDir:
        """Make the directory (sweeping stale ones first) and record this process as its owner."""
        root = ensure_private_root(root or default_root())
        if sweep:
            sweep_stale(root)
        safe_id = re.sub(r"[^A-Za-z0-9_-]", "-", session_id)[:40] or "session"
        path = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{safe_id}-", dir=root))
        os.chmod(path, 0o700)
        session = cls(path)
        session.write_text(OWNER_FILE, json.dumps(_owner_record()))
        return session

    def file(self, name: str) -> Path:
        """The path of a file in this directory (``name`` is a plain file name)."""
        if not _FILE_NAME_RE.fullmatch(name) and name != OWNER_FILE:
            raise ValidationError(f"invalid session file name {name!r}", field="name")
        return self.path / name

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Create ``name`` with mode 0600 (never following a symlink) and write ``data``."""
        target = self.file(name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(target, flags, 0o600)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb", closefd=False) as handle:
                handle.write(data)
        finally:
            os.close(fd)
        return target

    def write_text(self, name: str, text: str) -> Path:
        return self.write_bytes(name, text.encode("utf-8"))

    def subdir(self, name: str) -> Path:
        """A 0700 subdirectory (for tools that want a directory, such as gcloud's config)."""
        path = self.file(name)
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    def cleanup(self) -> None:
        """Remove the directory and everything in it (idempotent)."""
        if not self._closed:
            self._closed = True
            shutil.rmtree(self.path, ignore_errors=True)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    def __enter__(self) -> SessionDir:
        in_main_thread = threading.current_thread() is threading.main_thread()
        if in_main_thread and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.cleanup()
        finally:
            if self._previous_sigterm is not None:
                signal.signal(signal.SIGTERM, self._previous_sigterm)
                self._previous_sigterm = None
