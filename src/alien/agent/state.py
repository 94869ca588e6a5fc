"""The agent's state directory: who it is, its token, what it runs, and the lock.

Layout (a contract, see docs/ARCHITECTURE.md "Agent state directory")::

    <state-dir>/            0700
      agent.json            AgentState: deployment id/name/group, manager URL, area, releases
      token                 the deployment token (ax_dep_…), 0600, never logged
      agent.lock            flock held by the running agent; holds its pid
      instance              the id of the agent process that last ran here (Alien-Agent-Instance)
      status.json           what runs now, written by the running agent (``alien-deploy status``)
      packages/<release>/   verified, unpacked release packages (the rollback needs them)
      downloads/            packages being downloaded
      area/                 the local platform's isolated area (default)

Everything the agent must know to resume after a restart is here, so ``alien-deploy run
--state-dir`` (or ``up`` again) continues the SAME deployment without the group token. Files are
written atomically (temp file + rename): a crash never leaves half a state file.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError

from alien.errors import Conflict, NotFound, ValidationError
from alien.protocol.agent_channel import AGENT_INSTANCE_PATTERN, new_agent_instance

STATE_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class AgentState(BaseModel):
    """``agent.json``. ``current_release`` is what the agent last brought up successfully here
    (its last good release), ``previous_release`` the one before it."""

    state_version: int = STATE_VERSION
    manager_url: str
    deployment_id: str
    deployment_name: str
    group: str
    platform: str = "local"
    area: str
    current_release: str | None = None
    previous_release: str | None = None
    deleted: bool = False
    onboarded_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def ref(self) -> str:
        return f"{self.group}/{self.deployment_name}"


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only (0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StateDir:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        return f"StateDir({str(self.root)!r})"

    # --- layout ------------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.root / "agent.json"

    @property
    def token_file(self) -> Path:
        return self.root / "token"

    @property
    def lock_file(self) -> Path:
        return self.root / "agent.lock"

    @property
    def instance_file(self) -> Path:
        return self.root / "instance"

    @property
    def status_file(self) -> Path:
        return self.root / "status.json"

    @property
    def packages_dir(self) -> Path:
        return self.root / "packages"

    @property
    def downloads_dir(self) -> Path:
        return self.root / "downloads"

    @property
    def default_area(self) -> Path:
        return self.root / "area"

    def ensure(self) -> None:
        for path in (self.root, self.packages_dir, self.downloads_dir):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root.chmod(0o700)

    def remove_if_blank(self) -> bool:
        """Remove the directory when it holds nothing but what :meth:`ensure` and :meth:`lock`
        made: an ``up`` refused before onboarding must not leave a state dir that later reads as
        "holds no onboarded deployment" somewhere the admin never meant to keep one. Anything
        else in it (a token, a state file, a file of the admin's) keeps it all."""
        made = {self.lock_file, self.packages_dir, self.downloads_dir}
        try:
            entries = set(self.root.iterdir())
            if not entries <= made or any(
                path.is_dir() and any(path.iterdir()) for path in entries
            ):
                return False
            for path in entries:
                path.rmdir() if path.is_dir() else path.unlink()
            self.root.rmdir()
        except OSError:
            return False
        return True

    # --- state and token ---------------------------------------------------------------------

    @property
    def onboarded(self) -> bool:
        return self.state_file.is_file()

    def load(self) -> AgentState:
        try:
            raw = self.state_file.read_bytes()
        except FileNotFoundError:
            raise NotFound(
                f"{self.root} holds no onboarded deployment: run alien-deploy up --token …",
                field="state_dir",
            ) from None
        try:
            return AgentState.model_validate(json.loads(raw))
        except (ValueError, PydanticValidationError) as exc:
            raise ValidationError(
                f"{self.state_file} is corrupt: {exc}", field="state_dir"
            ) from None

    def save(self, state: AgentState) -> None:
        state.updated_at = utcnow()
        self.ensure()
        text = json.dumps(state.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
        write_private(self.state_file, text.encode())

    def read_token(self) -> str:
        try:
            token = self.token_file.read_text().strip()
        except FileNotFoundError:
            raise NotFound(f"{self.token_file} is missing", field="state_dir") from None
        if not token:
            raise ValidationError(f"{self.token_file} is empty", field="state_dir")
        return token

    def write_token(self, token: str) -> None:
        self.ensure()
        write_private(self.token_file, token.encode() + b"\n")

    # --- the agent process's instance id ---------------------------------------------------------

    def new_instance(self) -> str:
        """A fresh id for the agent process starting now, remembered for ``alien-deploy down``,
        which speaks to the manager as the agent that last ran here."""
        instance = new_agent_instance()
        write_private(self.instance_file, instance.encode() + b"\n")
        return instance

    def last_instance(self) -> str | None:
        try:
            value = self.instance_file.read_text().strip()
        except FileNotFoundError:
            return None
        return value if re.fullmatch(AGENT_INSTANCE_PATTERN, value) else None

    # --- status snapshot ---------------------------------------------------------------------

    def write_status(self, snapshot: dict[str, Any]) -> None:
        text = json.dumps(snapshot, indent=2, sort_keys=True, default=str) + "\n"
        write_private(self.status_file, text.encode())

    def read_status(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.status_file.read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    # --- the agent lock ----------------------------------------------------------------------

    def lock(self) -> None:
        """Take the agent lock or fail: two agents on one state dir would fight over it."""
        if self._lock_fd is not None:
            return
        self.ensure()
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise Conflict(
                f"an agent is already running on {self.root} (pid {holder})",
                field="state_dir",
                code="AGENT_RUNNING",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def running_pid(self) -> int | None:
        """The pid of the agent holding the lock, or ``None`` when no agent runs here."""
        try:
            fd = os.open(self.lock_file, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.read(fd, 32).decode(errors="replace").strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)
