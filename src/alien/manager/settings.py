"""Manager configuration: environment variables ``ALIEN_*``, overridden by explicit arguments.

Kept as a plain frozen dataclass (not a settings framework) because there are few knobs and
``alien serve`` flags map onto them one to one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from alien.errors import ValidationError

DEFAULT_MAX_PACKAGE_BYTES = 2 * 1024**3
DEFAULT_HEARTBEAT_INTERVAL = 15.0
DEFAULT_MAX_WAIT = 60.0


@dataclass(frozen=True)
class ManagerSettings:
    """Everything the manager needs to start.

    ``database_url`` ``None`` means the embedded SQLite file ``<data_dir>/manager.db``.
    ``admin_key`` is a full ``ax_key_…`` token to install as an admin key (``ALIEN_ADMIN_KEY``);
    it is kept out of ``repr`` so it never lands in a log line. ``aws_endpoint_url`` is where
    the manager sends its own AWS calls for deployments a customer onboards itself (an emulator,
    a VPC endpoint); ``None``: AWS, as boto3 resolves it. It comes from the operator only, never
    from a request, so nobody outside can point the manager's signed calls elsewhere.
    """

    data_dir: Path
    database_url: str | None = None
    admin_key: str | None = field(default=None, repr=False)
    max_package_bytes: int = DEFAULT_MAX_PACKAGE_BYTES
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    max_wait: float = DEFAULT_MAX_WAIT
    aws_endpoint_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> ManagerSettings:
        """Read ``ALIEN_DATA_DIR``, ``ALIEN_DATABASE_URL``, ``ALIEN_ADMIN_KEY``,
        ``ALIEN_MAX_PACKAGE_BYTES``, ``ALIEN_AWS_ENDPOINT_URL``; keyword ``overrides`` that are
        not ``None`` win."""
        env = os.environ if env is None else env
        data_dir = env.get("ALIEN_DATA_DIR") or str(Path.home() / ".alien" / "manager")
        settings = cls(
            data_dir=Path(data_dir),
            database_url=env.get("ALIEN_DATABASE_URL") or None,
            admin_key=env.get("ALIEN_ADMIN_KEY") or None,
            max_package_bytes=_int(env, "ALIEN_MAX_PACKAGE_BYTES", DEFAULT_MAX_PACKAGE_BYTES),
            aws_endpoint_url=_url(env, "ALIEN_AWS_ENDPOINT_URL"),
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        if "data_dir" in given:
            given["data_dir"] = Path(str(given["data_dir"]))
        return replace(settings, **given)  # type: ignore[arg-type]

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'manager.db'}"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"{name} must be an integer, got {raw!r}", field=name) from None
    if value <= 0:
        raise ValidationError(f"{name} must be positive", field=name)
    return value


def _url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name) or None
    if raw is not None and not raw.startswith(("http://", "https://")):
        raise ValidationError(f"{name} must be an http(s) URL, got {raw!r}", field=name)
    return raw
