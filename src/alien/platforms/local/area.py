"""The local isolated area: one directory per deployment, and nothing outside it is touched.

Every path the local platform reads or writes comes from here, and every one is checked to resolve
inside the area (a resource id like ``../../etc`` or a symlink planted in the tree must not let a
stack reach outside its own directory). The layout is a contract (docs/ARCHITECTURE.md, "Local
isolated area"): the bindings, ``alien dev`` and the agent all find things by it.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from pathlib import Path

from alien.errors import InvalidKey, PlatformError

# Resource and release ids become file names: keep them to a portable, unsurprising alphabet.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(value: str, field: str) -> str:
    """Return ``value`` if it is safe as one path component, else raise ``InvalidKey``."""
    if not isinstance(value, str) or not _NAME.match(value) or value in {".", ".."}:
        raise InvalidKey(f"{value!r} is not a valid name for a file in the area", field=field)
    return value


class Area:
    """Paths of one deployment's area, rooted at ``root`` (created on demand)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"Area({str(self.root)!r})"

    # --- layout -----------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.inside("state.json")

    @property
    def logs_dir(self) -> Path:
        return self.inside("logs")

    def log_file(self, function: str) -> Path:
        return self.inside("logs", f"{check_name(function, 'function')}.log")

    def key_file(self, vault: str) -> Path:
        return self.inside("keys", f"{check_name(vault, 'vault')}.key")

    def storage_dir(self, storage: str) -> Path:
        return self.inside("resources", "storage", check_name(storage, "storage"))

    def events_db(self, storage: str) -> Path:
        return self.inside("resources", "events", f"{check_name(storage, 'storage')}.db")

    def vault_file(self, vault: str) -> Path:
        return self.inside("resources", "vault", f"{check_name(vault, 'vault')}.vault")

    def kv_db(self, kv: str) -> Path:
        return self.inside("resources", "kv", f"{check_name(kv, 'kv')}.db")

    def queue_db(self, queue: str) -> Path:
        return self.inside("resources", "queue", f"{check_name(queue, 'queue')}.db")

    def release_dir(self, release: str) -> Path:
        return self.inside("releases", check_name(release, "release"))

    @property
    def releases_dir(self) -> Path:
        return self.inside("releases")

    @property
    def run_dir(self) -> Path:
        """Ephemeral facts of the running processes: control sockets and ``control.json``."""
        return self.inside("run")

    @property
    def control_file(self) -> Path:
        return self.inside("run", "control.json")

    # --- safety -----------------------------------------------------------------------------

    def inside(self, *parts: str) -> Path:
        """Join ``parts`` under the root and refuse the result if it resolves outside the area.

        ``resolve()`` follows symlinks that already exist, so a link planted inside the area that
        points elsewhere is caught too, not just ``..`` components.
        """
        path = self.root.joinpath(*parts).resolve()
        if path != self.root and not path.is_relative_to(self.root):
            raise InvalidKey(
                f"{'/'.join(parts)!r} resolves outside the area {self.root}", field="path"
            )
        return path

    def ensure(self) -> None:
        """Create the area's skeleton; private to the user running it (0700).

        Directories that exist already are made private too, not only new ones: a root or
        ``logs/`` created loosely beforehand (by hand, by another tool) would leave function
        output and staged code readable by every local user. ``chmod`` also refuses a directory
        this user does not own.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.root.chmod(0o700)
            for sub in ("keys", "logs", "releases", "resources", "run"):
                path = self.inside(sub)
                path.mkdir(exist_ok=True, mode=0o700)
                path.chmod(0o700)
        except OSError as exc:
            raise PlatformError(f"cannot create the area {self.root}: {exc}", field="area") from exc

    def remove(self, path: Path) -> None:
        """Delete a file or directory tree inside the area (missing is fine).

        A symlink is removed itself, never followed: only its parent directory has to resolve
        inside the area.
        """
        target = Path(os.path.abspath(path))
        if target == self.root or not target.parent.resolve().is_relative_to(self.root):
            raise PlatformError(f"refusing to remove {target}: not inside the area", field="path")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)

    def destroy(self) -> None:
        """Delete the whole area (teardown)."""
        shutil.rmtree(self.root, ignore_errors=True)


class AreaLock:
    """An exclusive ``flock`` on ``<area>/.lock``: one platform process per area at a time.

    Two platforms driving the same area (two ``alien dev`` in one app, or an agent restarted
    while its predecessor still runs) would start duplicate functions and fight over state.json.
    The lock dies with the process, so a crash never leaves the area locked.
    """

    def __init__(self, area: Area) -> None:
        self.path = area.inside(".lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise PlatformError(
                f"the area {self.path.parent} is in use by another alien process (pid {holder})",
                field="area",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
